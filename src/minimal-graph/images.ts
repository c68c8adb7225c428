// Image records: images/<id hex>.json. An in-memory index of what each image
// references (derived from the records at open, updated on every put/delete) answers
// refcount and prefix questions without reading every record; full records and
// parsed configs sit in small LRU caches.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { lru } from 'tiny-lru';
import { BerthError } from '../util/errors';
import { fsyncDir, readJsonIfExists, writeJsonAtomic } from '../util/atomic';
import { logger } from '../util/log';
import { assertDigest, hexOf, isDigest } from './chain';
import { isNotFound, readdirOrEmpty } from './fsutil';
import type { Digest, ImageRecord } from './types';

const log = logger('graph');
const RECORD_SUFFIX = '.json';

/** What an image keeps alive: the basis for gc and reference counts. */
export interface ImageRefs {
  /** Config and manifests: always kept. */
  blobs: Digest[];
  chainIds: Digest[];
  /** Layer blobs, which gc may drop once their layer can rebuild its tar (see gc.ts). */
  layerBlobs: Array<{ blobDigest: Digest; chainId: Digest }>;
}

export function refsOfImage(record: ImageRecord): ImageRefs {
  const blobs = [record.id];
  if (record.manifestDigest) blobs.push(record.manifestDigest);
  if (record.platformManifestDigest) blobs.push(record.platformManifestDigest);
  return {
    blobs,
    chainIds: record.layers.map((layer) => layer.chainId),
    layerBlobs: record.layers.map((layer) => ({ blobDigest: layer.blobDigest, chainId: layer.chainId })),
  };
}

export class ImageStore {
  readonly imagesDir: string;
  private readonly index = new Map<Digest, ImageRefs>();
  private readonly records = lru<ImageRecord>(64);
  /** Record files that could not be parsed at load; check() reports them. */
  readonly unreadable = new Map<string, string>();

  /** @internal built by Graph.open */
  constructor(root: string) {
    this.imagesDir = join(root, 'images');
  }

  recordPath(id: Digest): string {
    return join(this.imagesDir, `${hexOf(id)}${RECORD_SUFFIX}`);
  }

  /** @internal reads every record once to build the index. */
  async load(): Promise<void> {
    // Built aside and swapped in at the end so concurrent readers never see a half index.
    const index = new Map<Digest, ImageRefs>();
    const unreadable = new Map<string, string>();
    for (const name of await readdirOrEmpty(this.imagesDir)) {
      if (!name.endsWith(RECORD_SUFFIX)) continue;
      const id = `sha256:${name.slice(0, -RECORD_SUFFIX.length)}`;
      if (!isDigest(id)) continue;
      const path = join(this.imagesDir, name);
      try {
        const record = await readJsonIfExists<ImageRecord>(path);
        if (!record) continue;
        validateRecord(record);
        if (record.id !== id) throw new Error(`record names ${record.id}`);
        index.set(id, refsOfImage(record));
      } catch (err) {
        unreadable.set(path, (err as Error).message);
        log.error('image record unreadable, image ignored', { path, error: (err as Error).message });
      }
    }
    this.records.clear();
    this.index.clear();
    for (const [id, refs] of index) this.index.set(id, refs);
    this.unreadable.clear();
    for (const [path, detail] of unreadable) this.unreadable.set(path, detail);
  }

  ids(): Digest[] {
    return [...this.index.keys()];
  }

  hasImage(id: Digest): boolean {
    return this.index.has(id);
  }

  refsOf(id: Digest): ImageRefs | undefined {
    return this.index.get(id);
  }

  entries(): IterableIterator<[Digest, ImageRefs]> {
    return this.index.entries();
  }

  async get(id: Digest): Promise<ImageRecord | undefined> {
    assertDigest(id, 'image ID');
    if (!this.index.has(id)) return undefined;
    const cached = this.records.get(id);
    if (cached) return structuredClone(cached);
    const record = await readJsonIfExists<ImageRecord>(this.recordPath(id));
    if (!record) return undefined;
    this.records.set(id, record);
    return structuredClone(record);
  }

  /** @internal Graph checks referenced content first and holds the store lock. */
  async write(record: ImageRecord): Promise<void> {
    const copy = structuredClone(record);
    await writeJsonAtomic(this.recordPath(copy.id), copy);
    this.records.set(copy.id, copy);
    this.index.set(copy.id, refsOfImage(copy));
  }

  /** @internal */
  async remove(id: Digest): Promise<boolean> {
    const had = this.index.delete(id);
    this.records.delete(id);
    try {
      await fsp.unlink(this.recordPath(id));
    } catch (err) {
      if (isNotFound(err)) return had;
      throw err;
    }
    await fsyncDir(this.imagesDir);
    return true;
  }

  /** @internal remove a record file that could not be parsed (check --repair). */
  async removeUnreadable(path: string): Promise<void> {
    await fsp.rm(path, { force: true });
    this.unreadable.delete(path);
    await fsyncDir(this.imagesDir);
  }
}

/** Shape check for records: everything used in a path must be a strict digest. */
export function validateRecord(record: ImageRecord): void {
  if (typeof record !== 'object' || record === null) throw new BerthError('EINVAL', 'image record is not an object');
  assertDigest(record.id, 'image ID');
  if (record.manifestDigest !== undefined) assertDigest(record.manifestDigest, 'manifest digest');
  if (record.platformManifestDigest !== undefined) assertDigest(record.platformManifestDigest, 'platform manifest digest');
  if (!Array.isArray(record.layers)) throw new BerthError('EINVAL', 'image record has no layers array');
  for (const layer of record.layers) {
    assertDigest(layer?.blobDigest, 'layer blob digest');
    assertDigest(layer.diffId, 'diff ID');
    assertDigest(layer.chainId, 'chain ID');
  }
}
