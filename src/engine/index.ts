// The container engine's public surface: openEngine() for the daemon, the Engine type for the API.
export { ContainerEngine, openEngine, loopbackNetwork, type EngineDeps, type NetworkHook } from './engine';
export type * from './types';
