// The public shape of the flat-file image graph. Everything under the data root that
// describes images goes through these interfaces; callers never build store paths.
//
// On disk (all JSON written atomically):
//   blobs/sha256/<hex>            verified content: manifests, indexes, configs, layer blobs
//   ingest/<hex>.partial          a download in progress, keyed by its expected digest
//   images/<hex>.json             ImageRecord, <hex> = image ID = config digest
//   repositories.json             RepositoriesFile: tags and repo digests -> image ID
//   layers/<hex>/diff/            an unpacked layer, <hex> = chain ID
//   layers/<hex>/tar-split        how to rebuild the layer's tar from diff/ (gzip; see tar-split.ts)
//   layers/<hex>/layer.json       LayerRecord, written only after diff/ is complete
//   tmp/                          scratch for extraction; emptied at start

export type Digest = string; // "sha256:<64 hex>"

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface LayerRef {
  /**
   * Digest of the blob as pulled or loaded (compressed or not). The blob itself may be
   * gone from blobs/ once the layer can rebuild its tar (LayerRecord.tarSplit).
   */
  blobDigest: Digest;
  mediaType: string;
  blobSize: number;
  /** sha256 of the uncompressed tar (config rootfs.diff_ids[i]). */
  diffId: Digest;
  /** Chain ID of this layer: ChainID(L0)=DiffID(L0); ChainID(Ln)=sha256(ChainID(Ln-1)+" "+DiffID(Ln)). */
  chainId: Digest;
}

export interface ImageRecord {
  /** Image ID: the config blob's digest. */
  id: Digest;
  /** Manifest digest this image was pulled or loaded as, when known. */
  manifestDigest?: Digest;
  manifestMediaType?: string;
  /** For images pulled through an index: the chosen platform's own manifest. */
  platformManifestDigest?: Digest;
  /** Bottom layer first. */
  layers: LayerRef[];
  platform: Platform;
  /** Image config's `created`, RFC 3339. */
  created?: string;
  /** Sum of unpacked layer sizes in bytes. */
  size: number;
  /** When this record was written (RFC 3339). */
  addedAt: string;
}

export interface RepositoriesFile {
  /** "docker.io/library/busybox:latest" -> image ID */
  tags: Record<string, Digest>;
  /** "docker.io/library/busybox@sha256:..." -> image ID */
  digests: Record<string, Digest>;
}

export interface LayerRecord {
  chainId: Digest;
  diffId: Digest;
  parent?: Digest;
  /** Bytes of the unpacked diff (sum of regular file sizes). */
  size: number;
  /**
   * Paths (relative, no leading slash) this layer deletes from the layers below, and
   * directories it makes opaque. Recorded always, because a copy-driver data root may
   * not be able to hold overlay's in-tree markers (char 0:0 devices, trusted.overlay.opaque).
   */
  whiteouts: string[];
  opaques: string[];
  /** 'overlay' when diff/ also holds overlay's in-tree whiteout markers. */
  whiteoutFormat: 'overlay' | 'none';
  /**
   * Present once layers/<hex>/tar-split has been checked to rebuild a tar hashing to
   * diffId; `tarSize` is that tar's length. Only then may the layer's blob be removed.
   */
  tarSplit?: { tarSize: number };
}

export interface CheckProblem {
  kind: 'blob-digest' | 'blob-missing' | 'image-config-missing' | 'layer-missing' | 'layer-incomplete' | 'layer-corrupt' | 'tag-dangling' | 'temp-leftover' | 'record-unreadable';
  path: string;
  detail: string;
  /** True when `check({ repair: true })` removed or fixed it. */
  repaired?: boolean;
}
