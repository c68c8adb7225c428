// Storage (graph) drivers: turn unpacked image layers into a container's root filesystem.
export type { LowerLayer, StorageDriver, DriverName } from './driver';
export { OverlayDriver, planOverlayMount, shortLinkName } from './overlay';
export type { OverlayOptions, OverlayMountPlan } from './overlay';
export { CopyDriver, applyLayerByCopy } from './copy';
export type { CopyOptions } from './copy';
export { selectDriver, probeOverlay, backingFsName, normaliseDriverName } from './detect';
export type { OverlayProbe } from './detect';
export { ChangeKind, type Change } from './changes';
