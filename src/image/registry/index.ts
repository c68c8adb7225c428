// Public surface of the registry client.
export { RegistryClient, DEFAULT_MAX_MANIFEST_BYTES } from './client';
export type { RegistryClientOptions, CallOptions, FetchBlobOptions, ManifestResult, ResolvedImage } from './client';
export { normalizeAuthConfig, parseWwwAuthenticate } from './auth';
export type { AuthConfig, Challenge } from './auth';
export * from './media-types';
