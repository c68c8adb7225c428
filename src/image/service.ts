// The image service: what the API (and later the fleet agent) calls. It owns name
// resolution (docker references <-> the graph's normalised strings), Docker's rules for
// untagging and deleting, and the shapes Docker clients read back.
import type { Readable, Writable } from 'node:stream';
import type { Graph } from '../minimal-graph';
import type { Digest, ImageRecord, Platform } from '../minimal-graph/types';
import { BerthError } from '../util/errors';
import { loadArchive, saveArchive, type SaveItem } from './archive';
import { noProgress, type ProgressSink, shortId } from './progress';
import { pullImage, type PullResult } from './pull';
import { familiarString, formatReference, parseReference, repositoryName, type Reference } from './reference';
import { hostPlatform, parsePlatform } from './platform';
import type { AuthConfig, RegistryClient } from './registry';

export interface ImageServiceOptions {
  graph: Graph;
  registry: RegistryClient;
  whiteoutFormat: 'overlay' | 'none';
  storageDriverName: string;
  maxConcurrentDownloads?: number;
  maxLayerSize?: number;
  platform?: Platform;
  /** Set by the engine: the container using an image, if any, for Docker's 409s. */
  imageUser?: (id: Digest) => string | undefined;
}

export type DeleteResponseItem = { Untagged: string } | { Deleted: string };

/** A name the user typed, without a tag or digest ("busybox", "127.0.0.1:5000/x"). */
function isNameOnly(input: string): boolean {
  const lastSlash = input.lastIndexOf('/');
  return !input.includes('@') && !input.slice(lastSlash + 1).includes(':');
}

/** How dockerd names a missing image: the familiar reference with its tag ("nope:latest"); IDs as given. */
function missingImageName(input: string): string {
  if (/^(sha256:)?[0-9a-f]{64}$/.test(input)) return input;
  try { return familiarString(parseReference(input)); } catch { return input; }
}

const toUnix = (iso?: string) => (iso ? Math.floor(Date.parse(iso) / 1000) || 0 : 0);

export class ImageService {
  readonly graph: Graph;
  private readonly opts: ImageServiceOptions;
  private readonly inflight = new Map<string, Promise<void>>();
  /** Pulls and loads hold this shared; GC holds it exclusively so it never eats a pull's blobs. */
  private activeWriters = 0;
  private gcWaiters: Array<() => void> = [];
  private gcRunning: Promise<void> | undefined;

  constructor(opts: ImageServiceOptions) {
    this.opts = opts;
    this.graph = opts.graph;
  }

  get platform(): Platform { return this.opts.platform ?? hostPlatform(); }

  private async asWriter<T>(fn: () => Promise<T>): Promise<T> {
    while (this.gcRunning) await this.gcRunning;
    this.activeWriters++;
    try { return await fn(); } finally {
      this.activeWriters--;
      if (this.activeWriters === 0) this.gcWaiters.splice(0).forEach((w) => w());
    }
  }

  private async collectGarbage(): Promise<void> {
    while (this.gcRunning) await this.gcRunning;
    if (this.activeWriters > 0) return; // a pull is running: its blobs must stay; the next rmi or prune collects.
    let done!: () => void;
    this.gcRunning = new Promise<void>((r) => { done = r; });
    try { await this.graph.gc(); } finally { this.gcRunning = undefined; done(); }
  }

  async count(): Promise<number> {
    return (await this.graph.listImages()).length;
  }

  async pull(name: string, opts: { tag?: string; platform?: string; auth?: AuthConfig }, progress: ProgressSink = noProgress): Promise<PullResult> {
    let ref = parseReference(name);
    if (opts.tag && !ref.digest) {
      ref = opts.tag.startsWith('sha256:') ? { ...ref, tag: undefined, digest: opts.tag } : { ...ref, tag: opts.tag };
      ref = parseReference(formatReference(ref));
    }
    const platform = opts.platform ? parsePlatform(opts.platform) : this.platform;
    return this.asWriter(() => pullImage({
      graph: this.graph, registry: this.opts.registry, whiteoutFormat: this.opts.whiteoutFormat,
      maxConcurrentDownloads: this.opts.maxConcurrentDownloads ?? 3, maxLayerSize: this.opts.maxLayerSize, inflight: this.inflight,
    }, ref, platform, opts.auth, progress));
  }

  /** Finds an image by reference, repo@digest, full ID or unique ID prefix. ENOIMAGE otherwise. */
  async resolve(name: string): Promise<ImageRecord> {
    const found = await this.tryResolve(name);
    if (!found) throw new BerthError('ENOIMAGE', `No such image: ${missingImageName(name)}`);
    return found;
  }

  private async tryResolve(name: string): Promise<ImageRecord | undefined> {
    if (/^(sha256:)?[0-9a-f]{64}$/.test(name) || /^[0-9a-f]{1,63}$/.test(name)) {
      const byId = await this.graph.findImageById(name).catch((err) => { if (err instanceof BerthError && err.code === 'EINVAL') throw err; return undefined; });
      if (byId) return byId;
    }
    let ref: Reference;
    try { ref = parseReference(name); } catch { return undefined; }
    const key = ref.digest ? `${repositoryName(ref)}@${ref.digest}` : formatReference(ref);
    const id = await this.graph.resolveRef(key);
    if (id) return this.graph.getImage(id);
    // A digest pull may have been recorded under its index digest only; compare image manifests too.
    if (ref.digest) {
      for (const img of await this.graph.listImages()) if (img.manifestDigest === ref.digest || img.platformManifestDigest === ref.digest) return img;
    }
    return undefined;
  }

  private familiarTags(id: Digest): string[] {
    return this.graph.tagsOf(id).map((t) => familiarString(parseReference(t)));
  }

  private familiarDigests(id: Digest): string[] {
    return this.graph.digestRefsOf(id).map((d) => familiarString(parseReference(d)));
  }

  async list(opts: { all?: boolean; danglingOnly?: boolean; reference?: string } = {}): Promise<any[]> {
    const images = await this.graph.listImages();
    const out = [];
    for (const img of images) {
      const tags = this.familiarTags(img.id);
      if (opts.danglingOnly && tags.length) continue;
      if (opts.reference) {
        const pattern = opts.reference;
        // A repository name matches all its tags; "host:port/name" holds a colon that is no tag.
        if (!tags.some((t) => t === pattern || t.slice(0, t.lastIndexOf(':')) === pattern)) continue;
      }
      const config = await this.graph.readConfig(img.id);
      out.push({
        Id: img.id, ParentId: '', RepoTags: tags, RepoDigests: this.familiarDigests(img.id),
        Created: toUnix(img.created), Size: img.size, SharedSize: -1, VirtualSize: img.size,
        Labels: config?.config?.Labels ?? null, Containers: -1,
      });
    }
    out.sort((a, b) => b.Created - a.Created);
    return out;
  }

  async inspect(name: string): Promise<any> {
    const img = await this.resolve(name);
    const config = await this.graph.readConfig(img.id);
    return {
      Id: img.id,
      RepoTags: this.familiarTags(img.id),
      RepoDigests: this.familiarDigests(img.id),
      Parent: '',
      Comment: config.comment ?? '',
      Created: img.created ?? new Date(0).toISOString(),
      DockerVersion: config.docker_version ?? '',
      Author: config.author ?? '',
      Config: config.config ?? {},
      Architecture: img.platform.architecture,
      ...(img.platform.variant ? { Variant: img.platform.variant } : {}),
      Os: img.platform.os,
      Size: img.size,
      GraphDriver: { Name: this.opts.storageDriverName, Data: null },
      RootFS: { Type: 'layers', Layers: img.layers.map((l) => l.diffId) },
      Metadata: { LastTagTime: img.addedAt },
    };
  }

  async history(name: string): Promise<any[]> {
    const img = await this.resolve(name);
    const config = await this.graph.readConfig(img.id);
    const history: any[] = Array.isArray(config.history) ? config.history : [];
    const layerSizes: number[] = [];
    for (const l of img.layers) layerSizes.push((await this.graph.layers.get(l.chainId))?.size ?? 0);
    let layerIndex = 0;
    const rows = history.map((h) => ({
      Id: '<missing>',
      Created: toUnix(h.created),
      CreatedBy: h.created_by ?? '',
      Tags: null as string[] | null,
      Size: h.empty_layer ? 0 : (layerSizes[layerIndex++] ?? 0),
      Comment: h.comment ?? '',
    }));
    if (rows.length === 0) rows.push({ Id: '<missing>', Created: toUnix(img.created), CreatedBy: '', Tags: null, Size: img.size, Comment: '' });
    rows.reverse();
    rows[0]!.Id = img.id;
    rows[0]!.Tags = this.familiarTags(img.id);
    return rows;
  }

  async tag(source: string, repo: string, tag?: string): Promise<void> {
    const img = await this.resolve(source);
    if (!repo) throw new BerthError('EINVAL', 'repository name must not be empty');
    const target = parseReference(tag ? `${repo}:${tag}` : repo);
    if (target.digest) throw new BerthError('EINVAL', 'refusing to create a tag with a digest reference');
    await this.graph.setTag(formatReference(target), img.id);
  }

  /** Docker's image delete: untag by reference, delete by ID, 409 where Docker says so. */
  async remove(name: string, opts: { force?: boolean; noprune?: boolean } = {}): Promise<DeleteResponseItem[]> {
    const img = await this.resolve(name);
    const result: DeleteResponseItem[] = [];
    const byId = img.id === name || img.id === `sha256:${name}` || (/^[0-9a-f]{1,64}$/.test(name) && img.id.startsWith(`sha256:${name}`));
    const user = this.opts.imageUser?.(img.id);
    const tags = this.graph.tagsOf(img.id);
    const digests = this.graph.digestRefsOf(img.id);

    if (!byId) {
      let ref = parseReference(name);
      const key = ref.digest ? `${repositoryName(ref)}@${ref.digest}` : formatReference(ref);
      const remainingRefs = tags.length + digests.length - 1;
      if (user && remainingRefs === 0 && !opts.force) {
        throw new BerthError('ECONFLICT', `conflict: unable to remove repository reference "${name}" (must force) - container ${shortId(user)} is using its referenced image ${shortId(img.id)}`);
      }
      if (ref.digest) await this.graph.removeDigestRef(key); else await this.graph.removeTag(key);
      result.push({ Untagged: familiarString(ref) });
      ref = parseReference(name);
      // Like Docker: the last tag gone takes the repo digests with it and deletes the image.
      if (this.graph.tagsOf(img.id).length > 0) return result;
      for (const d of this.graph.digestRefsOf(img.id)) {
        await this.graph.removeDigestRef(d);
        result.push({ Untagged: familiarString(parseReference(d)) });
      }
      if (user) return result;
    } else {
      const repos = new Set([...tags, ...digests].map((r) => repositoryName(parseReference(r))));
      if (repos.size > 1 && !opts.force) {
        throw new BerthError('ECONFLICT', `conflict: unable to delete ${shortId(img.id)} (must be forced) - image is referenced in multiple repositories`);
      }
      if (user && !opts.force) {
        throw new BerthError('ECONFLICT', `conflict: unable to delete ${shortId(img.id)} (must be forced) - image is being used by stopped container ${shortId(user)}`);
      }
      for (const t of tags) { await this.graph.removeTag(t); result.push({ Untagged: familiarString(parseReference(t)) }); }
      for (const d of digests) { await this.graph.removeDigestRef(d); result.push({ Untagged: familiarString(parseReference(d)) }); }
      if (user) return result;
    }
    await this.graph.deleteImageRecord(img.id);
    result.push({ Deleted: img.id });
    if (!opts.noprune) await this.collectGarbage();
    return result;
  }

  /** POST /images/prune: dangling images by default, every unused one with dangling=false. */
  async prune(opts: { all?: boolean } = {}): Promise<{ ImagesDeleted: DeleteResponseItem[] | null; SpaceReclaimed: number }> {
    const deleted: DeleteResponseItem[] = [];
    let reclaimed = 0;
    for (const img of await this.graph.listImages()) {
      if (this.opts.imageUser?.(img.id)) continue;
      const tags = this.graph.tagsOf(img.id);
      if (tags.length && !opts.all) continue;
      for (const t of tags) { await this.graph.removeTag(t); deleted.push({ Untagged: familiarString(parseReference(t)) }); }
      for (const d of this.graph.digestRefsOf(img.id)) { await this.graph.removeDigestRef(d); deleted.push({ Untagged: familiarString(parseReference(d)) }); }
      await this.graph.deleteImageRecord(img.id);
      deleted.push({ Deleted: img.id });
    }
    if (deleted.length) {
      while (this.gcRunning) await this.gcRunning;
      if (this.activeWriters === 0) {
        let done!: () => void;
        this.gcRunning = new Promise<void>((r) => { done = r; });
        try { reclaimed = (await this.graph.gc()).bytesFreed; } finally { this.gcRunning = undefined; done(); }
      }
    }
    return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  /** Streams a save archive; every name is resolved before the first byte is written. */
  async save(names: string[], out: Writable): Promise<void> {
    const items = await this.planSave(names);
    await this.asWriter(() => saveArchive(this.graph, items, out));
  }

  /** Resolves names for a save: ENOIMAGE here, while an HTTP error can still be sent. */
  async planSave(names: string[]): Promise<SaveItem[]> {
    if (names.length === 0) throw new BerthError('EINVAL', 'no image names given to save');
    const byId = new Map<Digest, SaveItem>();
    for (const name of names) {
      const nameOnly = isNameOnly(name) && !/^(sha256:)?[0-9a-f]{12,64}$/.test(name);
      if (nameOnly) {
        // Docker saves every tag of a repository named without a tag.
        const repo = repositoryName(parseReference(name));
        const matches = (await this.graph.listImages()).flatMap((img) => this.graph.tagsOf(img.id).filter((t) => repositoryName(parseReference(t)) === repo).map((t) => ({ img, t })));
        if (matches.length === 0) throw new BerthError('ENOIMAGE', `No such image: ${name}`);
        for (const { img, t } of matches) {
          const item = byId.get(img.id) ?? { image: img, tags: [] };
          if (!item.tags.includes(t)) item.tags.push(t);
          byId.set(img.id, item);
        }
        continue;
      }
      const img = await this.resolve(name);
      const item = byId.get(img.id) ?? { image: img, tags: [] };
      const ref = (() => { try { return parseReference(name); } catch { return undefined; } })();
      if (ref?.tag && !/^(sha256:)?[0-9a-f]{12,64}$/.test(name) && this.graph.tagsOf(img.id).includes(formatReference(ref)) && !item.tags.includes(formatReference(ref))) item.tags.push(formatReference(ref));
      byId.set(img.id, item);
    }
    return [...byId.values()];
  }

  async saveItems(items: SaveItem[], out: Writable): Promise<void> {
    await this.asWriter(() => saveArchive(this.graph, items, out));
  }

  async load(input: Readable, progress: ProgressSink = noProgress): Promise<string[]> {
    return this.asWriter(() => loadArchive({ graph: this.graph, whiteoutFormat: this.opts.whiteoutFormat, maxLayerSize: this.opts.maxLayerSize, platform: this.platform }, input, progress));
  }
}
