// Public surface of the flat-file image graph. Everything else in this folder is internal.
export type { CheckProblem, Descriptor, Digest, ImageRecord, LayerRecord, LayerRef, Platform, RepositoriesFile } from './types';
export { chainIds, isDigest, hexOf, assertDigest, digestOfBytes, digestOfFile } from './chain';
export { Graph, type Lease, type DeleteImageResult, type GraphOptions } from './graph';
export { ContentStore, type CommitIngestOptions } from './content';
export { LayerStore, type CommitCreateOptions } from './layers';
export { TarSplitWriter, type TarSplitSink } from './tar-split';
export { type GcOptions, type GcResult, DEFAULT_INGEST_MIN_AGE_MS } from './gc';
export { type CheckOptions } from './check';
