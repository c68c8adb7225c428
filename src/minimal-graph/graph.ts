// The image graph: one object over a data root that callers use for every image,
// blob, layer and tag question. It never parses docker references; src/image hands it
// normalised strings ("docker.io/library/busybox:latest").
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { lru } from 'tiny-lru';
import { BerthError } from '../util/errors';
import { logger } from '../util/log';
import { assertDigest, chainIds, isDigest, isHex64 } from './chain';
import { ContentStore } from './content';
import { LayerStore, LAYER_RECORD } from './layers';
import { ImageStore, validateRecord } from './images';
import { Repositories } from './repositories';
import { Mutex, SharedExclusiveLock } from './lock';
import { findTempLeftovers, readdirOrEmpty, statOrUndefined } from './fsutil';
import { runDropBlobs, runGc, type GcOptions, type GcResult } from './gc';
import { runCheck, type CheckOptions } from './check';
import type { CheckProblem, Digest, ImageRecord } from './types';

const log = logger('graph');

/** Protects digests (blobs and/or chain IDs) from gc while a pull or load is assembling an image. */
export interface Lease {
  readonly id: string;
  add(...digests: Digest[]): void;
  release(): void;
}

export interface GraphOptions {
  /**
   * Keep compressed layer blobs after extraction (daemon option keep-layer-blobs). By
   * default a blob goes once its layer's tar-split rebuilds the exact tar.
   */
  keepLayerBlobs?: boolean;
}

export interface DeleteImageResult {
  untagged: string[];
  deleted: Digest[];
  gc: GcResult;
}

export class Graph {
  readonly root: string;
  readonly content: ContentStore;
  readonly layers: LayerStore;
  /** @internal use the Graph methods */
  readonly imageStore: ImageStore;
  /** @internal use the Graph methods */
  readonly repositories: Repositories;
  /** @internal writers take it shared; gc and check take it exclusive. */
  readonly storeLock = new SharedExclusiveLock();
  /** What open() cleaned up after an unclean shutdown (all `repaired: true`). */
  startupRepairs: CheckProblem[] = [];
  /** See GraphOptions.keepLayerBlobs. */
  keepLayerBlobs = false;

  private readonly configs = lru<unknown>(32);
  private readonly holds = new Map<string, Set<Digest>>();
  private readonly leases = new Map<string, Set<Digest>>();
  private readonly settleQueue = new Mutex();

  private constructor(root: string) {
    this.root = root;
    this.content = new ContentStore(root, this.storeLock, (digest) => this.configs.delete(digest));
    this.layers = new LayerStore(root, this.storeLock);
    this.imageStore = new ImageStore(root);
    this.repositories = new Repositories(root);
  }

  static async open(root: string, opts: GraphOptions = {}): Promise<Graph> {
    const graph = new Graph(resolve(root));
    graph.keepLayerBlobs = opts.keepLayerBlobs === true;
    for (const dir of [join('blobs', 'sha256'), 'ingest', 'images', 'layers', 'tmp']) {
      await fsp.mkdir(join(graph.root, dir), { recursive: true });
    }
    graph.startupRepairs = await graph.cleanLeftovers();
    for (const p of graph.startupRepairs) log.info('removed leftover from unclean shutdown', { path: p.path, kind: p.kind });
    await graph.repositories.load();
    await graph.imageStore.load();
    return graph;
  }

  /** Nothing else runs yet, so everything temporary is debris. */
  private async cleanLeftovers(): Promise<CheckProblem[]> {
    const removed: CheckProblem[] = [];
    for (const name of await readdirOrEmpty(this.layers.tmpDir)) {
      const path = join(this.layers.tmpDir, name);
      await fsp.rm(path, { recursive: true, force: true });
      removed.push({ kind: 'temp-leftover', path, detail: 'scratch entry in tmp/', repaired: true });
    }
    const tempDirs = [this.root, this.content.blobsDir, this.content.ingestDir, this.imageStore.imagesDir, this.layers.layersDir];
    for (const hex of await this.layers.listDirs()) tempDirs.push(join(this.layers.layersDir, hex));
    for (const dir of tempDirs) {
      for (const path of await findTempLeftovers(dir)) {
        await fsp.rm(path, { recursive: true, force: true });
        removed.push({ kind: 'temp-leftover', path, detail: 'unfinished atomic write', repaired: true });
      }
    }
    for (const hex of await this.layers.listDirs()) {
      const dir = join(this.layers.layersDir, hex);
      if (await statOrUndefined(join(dir, LAYER_RECORD))) continue;
      await fsp.rm(dir, { recursive: true, force: true });
      removed.push({ kind: 'layer-incomplete', path: dir, detail: 'layer without layer.json (extraction interrupted)', repaired: true });
    }
    return removed;
  }

  // ---- images ----

  /** Publishes an image. Refuses (ECORRUPT) unless its config blob and every layer are present. */
  async putImage(record: ImageRecord): Promise<void> {
    validateRecord(record);
    const expected = chainIds(record.layers.map((layer) => layer.diffId));
    record.layers.forEach((layer, i) => {
      if (layer.chainId !== expected[i]) {
        throw new BerthError('EINVAL', `layer ${i} of ${record.id}: chain ID ${layer.chainId} does not follow from its diff IDs (want ${expected[i]})`);
      }
    });
    await this.storeLock.shared(async () => {
      if (!(await this.content.has(record.id))) {
        throw new BerthError('ECORRUPT', `cannot record image ${record.id}: its config blob is not in the store`);
      }
      for (const layer of record.layers) {
        if (!(await this.layers.has(layer.chainId))) {
          throw new BerthError('ECORRUPT', `cannot record image ${record.id}: layer ${layer.chainId} is not in the store`);
        }
      }
      await this.imageStore.write(record);
    });
  }

  getImage(id: Digest): Promise<ImageRecord | undefined> {
    return this.imageStore.get(id);
  }

  async listImages(): Promise<ImageRecord[]> {
    const out: ImageRecord[] = [];
    for (const id of this.imageStore.ids().sort()) {
      const record = await this.imageStore.get(id);
      if (record) out.push(record);
    }
    return out;
  }

  /** The parsed config blob of image `id` (a fresh copy each call; callers may mutate it). */
  async readConfig(id: Digest): Promise<any> {
    assertDigest(id, 'image ID');
    const cached = this.configs.get(id);
    if (cached !== undefined) return structuredClone(cached);
    let bytes: Buffer;
    try {
      bytes = await this.content.readBlob(id);
    } catch (err) {
      if (this.imageStore.hasImage(id)) throw new BerthError('ECORRUPT', `config blob of image ${id} is missing`, { cause: err });
      throw new BerthError('ENOIMAGE', `No such image: ${id}`, { cause: err });
    }
    let config: unknown;
    try {
      config = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new BerthError('ECORRUPT', `config blob ${id} is not valid JSON`, { cause: err });
    }
    this.configs.set(id, config);
    return structuredClone(config);
  }

  /** Removes only the record; tags and content stay (see deleteImage for the whole job). */
  async deleteImageRecord(id: Digest): Promise<boolean> {
    assertDigest(id, 'image ID');
    return this.storeLock.shared(() => this.imageStore.remove(id));
  }

  /**
   * Full ID ("sha256:<hex>"), bare 64 hex, or a unique hex prefix of either, as
   * `docker image inspect` accepts. Undefined when nothing matches.
   */
  async findImageById(prefixOrId: string): Promise<ImageRecord | undefined> {
    const hex = prefixOrId.startsWith('sha256:') ? prefixOrId.slice('sha256:'.length) : prefixOrId;
    if (!/^[0-9a-f]{1,64}$/.test(hex)) return undefined;
    if (isHex64(hex)) return this.imageStore.get(`sha256:${hex}`);
    const matches = this.imageStore.ids().filter((id) => id.startsWith(`sha256:${hex}`));
    if (matches.length > 1) throw new BerthError('EINVAL', `multiple IDs found with provided prefix: ${prefixOrId}`);
    return matches.length === 1 ? this.imageStore.get(matches[0]!) : undefined;
  }

  /**
   * Untags `id` everywhere, removes its record, then collects whatever nothing else
   * uses. Without `force` it refuses (ECONFLICT) while a holder (container) holds the
   * image's top layer; docker's "several tags" and "used by a stopped container"
   * rules are the caller's.
   */
  async deleteImage(id: Digest, opts: { force?: boolean } = {}): Promise<DeleteImageResult> {
    assertDigest(id, 'image ID');
    const refs = this.imageStore.refsOf(id);
    if (!refs) throw new BerthError('ENOIMAGE', `No such image: ${id}`);
    const top = refs.chainIds[refs.chainIds.length - 1];
    if (!opts.force && top !== undefined) {
      for (const [owner, held] of this.holds) {
        if (held.has(top)) throw new BerthError('ECONFLICT', `unable to delete ${id} (must be forced) - image is being used by ${owner}`);
      }
    }
    // Record first: a tag call racing with us then fails its existence guard, and a
    // crash in between leaves dangling tags, which check() repairs at start.
    await this.deleteImageRecord(id);
    const removedRefs = await this.repositories.removeAllRefsTo(id);
    const gc = await this.gc();
    return { untagged: [...removedRefs.tags, ...removedRefs.digests], deleted: [id], gc };
  }

  // ---- repositories ----

  async setTag(ref: string, id: Digest): Promise<void> {
    assertDigest(id, 'image ID');
    await this.repositories.setTag(ref, id, () => this.assertImageExists(id));
  }

  removeTag(ref: string): Promise<boolean> {
    return this.repositories.removeTag(ref);
  }

  getTag(ref: string): Digest | undefined {
    return this.repositories.getTag(ref);
  }

  async addDigestRef(repoAtDigest: string, id: Digest): Promise<void> {
    assertDigest(id, 'image ID');
    await this.repositories.addDigestRef(repoAtDigest, id, () => this.assertImageExists(id));
  }

  removeDigestRef(repoAtDigest: string): Promise<boolean> {
    return this.repositories.removeDigestRef(repoAtDigest);
  }

  tagsOf(id: Digest): string[] {
    return this.repositories.tagsOf(id);
  }

  digestRefsOf(id: Digest): string[] {
    return this.repositories.digestRefsOf(id);
  }

  /** Exact tag or repo@digest string -> image ID. */
  resolveRef(ref: string): Digest | undefined {
    return this.repositories.resolveRef(ref);
  }

  private assertImageExists(id: Digest): void {
    if (!this.imageStore.hasImage(id)) throw new BerthError('ENOIMAGE', `No such image: ${id}`);
  }

  // ---- references from outside the graph ----

  /** Replaces what `owner` (a container ID) holds; held layers survive gc. */
  holdLayers(owner: string, chainIdList: Digest[]): void {
    for (const id of chainIdList) assertDigest(id, 'chain ID');
    this.holds.set(owner, new Set(chainIdList));
  }

  releaseLayers(owner: string): void {
    this.holds.delete(owner);
  }

  /** Restores every holder at daemon start (the engine knows its containers). */
  setExternalHolds(holds: Map<string, Digest[]>): void {
    this.holds.clear();
    for (const [owner, list] of holds) this.holdLayers(owner, list);
  }

  /**
   * Per chain ID: how many images list it plus how many holders hold it. Derived on
   * each call, so nothing can drift after a crash.
   */
  layerRefCounts(): Map<Digest, number> {
    const counts = new Map<Digest, number>();
    const bump = (id: Digest) => counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const [, refs] of this.imageStore.entries()) new Set(refs.chainIds).forEach(bump);
    for (const held of this.holds.values()) held.forEach(bump);
    return counts;
  }

  /**
   * Take a lease before the first blob of a pull is committed and release it after
   * putImage (or on failure): gc spares leased blobs, layers and ingest partials.
   */
  createLease(digests: Digest[] = []): Lease {
    const id = randomBytes(8).toString('hex');
    const set = new Set<Digest>();
    this.leases.set(id, set);
    const lease: Lease = {
      id,
      add: (...more) => { for (const d of more) set.add(assertDigest(d)); },
      release: () => { this.leases.delete(id); },
    };
    lease.add(...digests);
    return lease;
  }

  /** @internal digests gc must keep: leases and holds. */
  protectedDigests(): { leased: Set<Digest>; held: Set<Digest> } {
    const leased = new Set<Digest>();
    for (const set of this.leases.values()) set.forEach((d) => leased.add(d));
    const held = new Set<Digest>();
    for (const set of this.holds.values()) set.forEach((d) => held.add(d));
    return { leased, held };
  }

  /** @internal forget cached parses after repair or gc removed files. */
  forgetCached(digest: Digest): void {
    if (isDigest(digest)) { this.configs.delete(digest); this.layers.forget(digest); }
  }

  // ---- maintenance ----

  gc(opts: GcOptions = {}): Promise<GcResult> {
    return this.storeLock.exclusive(() => runGc(this, opts));
  }

  /**
   * After a pull or load has published its image and released its lease: removes those
   * layer blobs that gc would now remove (their layers rebuild their tars), and nothing else.
   */
  dropLayerBlobs(digests: Digest[]): Promise<GcResult> {
    return this.storeLock.exclusive(() => runDropBlobs(this, digests));
  }

  /**
   * In the background after a pull or load (and at daemon start for all images): verifies
   * each layer's tar-split by rebuilding its tar, then drops the layer blobs gc's rule now
   * allows. One at a time, so a router spends one core on it; failures only cost space.
   */
  settleLayerBlobs(imageIds?: Digest[]): Promise<void> {
    return this.settleQueue.run(async () => {
      const images = imageIds ? (await Promise.all(imageIds.map((id) => this.getImage(id)))) : await this.listImages();
      for (const image of images) {
        if (!image) continue;
        for (const layer of image.layers) {
          await this.layers.verifyTarSplit(layer.chainId).catch((err) => log.warn('cannot verify a layer tar-split', { chainId: layer.chainId, error: (err as Error).message }));
        }
        if (this.keepLayerBlobs) continue;
        await this.dropLayerBlobs(image.layers.map((layer) => layer.blobDigest)).catch((err) => {
          log.warn('could not remove redundant layer blobs', { image: image.id, error: (err as Error).message });
        });
      }
    });
  }

  /**
   * Waits out a gc or blob drop already running (or queued): those chose what to delete
   * before a lease taken just now existed. Take the lease first, then call this.
   */
  leasesInForce(): Promise<void> {
    return this.storeLock.shared(async () => {});
  }

  /** Resolves once the background work queued by settleLayerBlobs so far is done. */
  layerBlobsSettled(): Promise<void> {
    return this.settleQueue.run(async () => {});
  }

  check(opts: CheckOptions = {}): Promise<CheckProblem[]> {
    return this.storeLock.exclusive(() => runCheck(this, opts));
  }
}
