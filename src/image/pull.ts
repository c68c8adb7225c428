// Pull as a chain of small steps, each safe to interrupt: resolve the manifest, store
// it, fetch the config, download layers concurrently into ingest/ (resuming partial
// files), extract them bottom-up into temp dirs, and only when every piece is in
// place write the image record and its tags. A crash anywhere leaves only ingest
// partials (resumed next time) and temp dirs (removed at start).
import { Transform, type TransformCallback } from 'node:stream';
import type { Graph, Lease } from '../minimal-graph';
import { chainIds } from '../minimal-graph';
import type { Descriptor, Digest, ImageRecord, LayerRef, Platform } from '../minimal-graph/types';
import { BerthError } from '../util/errors';
import { logger } from '../util/log';
import { registerLayer } from './layer-register';
import { ProgressSink, renderBar, shortId, throttled } from './progress';
import { familiarString, formatReference, repositoryName, type Reference } from './reference';
import { platformString } from './platform';
import type { AuthConfig, RegistryClient, ResolvedImage } from './registry';
import { TransportError } from './registry/http';

const log = logger('pull');

export interface PullDeps {
  graph: Graph;
  registry: RegistryClient;
  whiteoutFormat: 'overlay' | 'none';
  maxConcurrentDownloads: number;
  maxLayerSize?: number;
  /** Shares one download or extraction between concurrent pulls of the same content. */
  inflight: Map<string, Promise<void>>;
}

export interface PullResult {
  id: Digest;
  reference: string;
  downloaded: boolean;
}

/** Runs `fn` unless the same key is already running, in which case waits for that run. */
async function once(inflight: Map<string, Promise<void>>, key: string, fn: () => Promise<void>): Promise<void> {
  const running = inflight.get(key);
  if (running) return running;
  const p = fn().finally(() => inflight.delete(key));
  inflight.set(key, p);
  return p;
}

/** A tiny counting semaphore for bounded concurrent downloads. */
function limiter(max: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: Array<() => void> = [];
  return async (fn) => {
    if (active >= max) await new Promise<void>((resolve) => queue.push(resolve));
    active++;
    try { return await fn(); } finally { active--; queue.shift()?.(); }
  };
}

export async function pullImage(deps: PullDeps, ref: Reference, platform: Platform, auth: AuthConfig | undefined, progress: ProgressSink): Promise<PullResult> {
  const { graph, registry } = deps;
  // Announce only once the manifest is known (as dockerd does): a missing image or denied
  // access then fails before the stream starts, as a plain HTTP error the CLI prints
  // as "Error response from daemon: ...".
  const resolved = await registry.resolveImage(ref, platform, { auth });
  progress({ status: `Pulling from ${ref.path}`, id: ref.digest ?? ref.tag ?? 'latest' });
  // The lease keeps a graph.gc() started elsewhere (system prune, check --repair) off
  // the blobs and layers this pull has committed but no image record references yet.
  const lease = graph.createLease();
  const aborter = new AbortController();
  let result: PullResult;
  try {
    result = await pullResolved(deps, ref, platform, auth, progress, resolved, lease, aborter);
  } finally {
    aborter.abort();
    lease.release();
  }
  // With the image published and the lease gone: verify the new layers' tar-splits and
  // drop the blobs they make redundant, off the pull's clock (it reads every layer again).
  void graph.settleLayerBlobs([result.id]);
  return result;
}

async function pullResolved(
  deps: PullDeps, ref: Reference, platform: Platform, auth: AuthConfig | undefined, progress: ProgressSink,
  resolved: ResolvedImage, lease: Lease, aborter: AbortController,
): Promise<PullResult> {
  const { graph } = deps;
  const { signal } = aborter;
  const familiar = familiarString(ref);
  if (resolved.indexDigest && resolved.indexBody) {
    lease.add(resolved.indexDigest);
    await graph.content.writeBlob(resolved.indexBody, resolved.indexDigest);
  }
  lease.add(resolved.manifestDigest);
  await graph.content.writeBlob(resolved.manifestBody, resolved.manifestDigest);

  const configDesc = resolved.config;
  lease.add(configDesc.digest);
  await fetchToStore(deps, ref, configDesc, auth, signal);
  const config = parseConfig(await graph.content.readBlob(configDesc.digest), familiar);
  const diffIds: Digest[] = config.rootfs?.diff_ids ?? [];
  if (!Array.isArray(diffIds) || diffIds.length !== resolved.layers.length) {
    throw new BerthError('EINVAL', `image config of ${familiar} lists ${Array.isArray(diffIds) ? diffIds.length : 0} diff_ids for ${resolved.layers.length} layers`);
  }
  if (config.os && config.architecture) {
    const got = platformString({ os: config.os, architecture: config.architecture, variant: config.variant });
    if (config.os !== platform.os || config.architecture !== platform.architecture) {
      log.warn('image platform differs from the requested one', { image: familiar, image_platform: got, requested: platformString(platform) });
    }
  }
  const chains = chainIds(diffIds);
  const layerIds = resolved.layers.map((l: Descriptor) => shortId(l.digest));
  lease.add(...chains, ...resolved.layers.map((l) => l.digest));
  // A blob drop already under way chose before this lease: let it finish before has().
  await graph.leasesInForce();
  const existing = await graph.getImage(configDesc.digest);

  // A present layer needs no download when it can rebuild its tar (save's source) from
  // tar-split, or when its blob is stored. A layer unpacked for another image may have
  // come from a different blob (zstd vs gzip, or an uncompressed tar from `load`): then
  // reuse the other image's; only when neither is left is the blob fetched.
  const layers: LayerRef[] = resolved.layers.map((desc, i) => ({ blobDigest: desc.digest, mediaType: desc.mediaType, blobSize: desc.size, diffId: diffIds[i]!, chainId: chains[i]! }));
  const present: boolean[] = [];
  for (let i = 0; i < layers.length; i++) {
    present[i] = false;
    if (!(await graph.layers.has(chains[i]!))) continue;
    if (await graph.content.has(layers[i]!.blobDigest)) { present[i] = true; continue; }
    if (await graph.layers.canRebuildTar(chains[i]!)) { present[i] = true; continue; }
    const substitute = await storedBlobFor(graph, chains[i]!);
    if (substitute) { layers[i] = substitute; lease.add(substitute.blobDigest); present[i] = true; }
  }
  for (let i = 0; i < layers.length; i++) progress({ status: present[i] ? 'Already exists' : 'Pulling fs layer', id: layerIds[i] });

  let downloadedSomething = false;
  const limit = limiter(Math.max(1, deps.maxConcurrentDownloads));
  const downloads = resolved.layers.map((desc: Descriptor, i: number) => {
    if (present[i]) return Promise.resolve();
    const id = layerIds[i];
    const report = throttled(progress);
    if (deps.maxConcurrentDownloads < resolved.layers.length) progress({ status: 'Waiting', id });
    return limit(async () => {
      if (await graph.content.has(desc.digest)) {
        progress({ status: 'Download complete', id });
        return;
      }
      downloadedSomething = true;
      try {
        await fetchToStore(deps, ref, desc, auth, signal, (current, total) => {
          report({ status: 'Downloading', id, progressDetail: { current, total }, progress: renderBar(current, total) }, current === total);
        }, () => progress({ status: 'Verifying Checksum', id }));
      } catch (err) {
        throw await describeDownloadError(err, graph, desc, `layer ${id} of ${familiar}`);
      }
      progress({ status: 'Download complete', id });
    });
  });
  // Keep every download's rejection observed even if an earlier layer fails first.
  downloads.forEach((p) => p.catch(() => {}));

  let size = 0;
  try {
    for (let i = 0; i < resolved.layers.length; i++) {
      const desc = resolved.layers[i] as Descriptor;
      await downloads[i];
      if (!present[i]) {
        downloadedSomething = true;
        const report = throttled(progress);
        await extractLayer(deps, desc, diffIds[i]!, chains[i]!, i > 0 ? chains[i - 1] : undefined, (current, total) => {
          report({ status: 'Extracting', id: layerIds[i], progressDetail: { current, total }, progress: renderBar(current, total) }, current === total);
        }).catch((err) => {
          // Layer-apply errors name the entry, not the image: say which layer of what.
          if (err instanceof BerthError) throw new BerthError(err.code, `failed to register layer ${layerIds[i]} of ${familiar}: ${err.message}`, { cause: err });
          throw err;
        });
        progress({ status: 'Pull complete', id: layerIds[i] });
      }
      const rec = await graph.layers.get(chains[i]!);
      size += rec?.size ?? 0;
    }
  } catch (err) {
    // Stop the other downloads (their partials stay for a retry to resume) and let them
    // settle, so nothing of this pull is still writing when the caller sees the error.
    aborter.abort();
    await Promise.allSettled(downloads);
    throw err;
  }

  const id = configDesc.digest;
  const previous = ref.tag ? graph.getTag(formatReference(ref)) : undefined;
  const record: ImageRecord = {
    id,
    manifestDigest: resolved.indexDigest ?? resolved.manifestDigest,
    ...(resolved.indexDigest ? { platformManifestDigest: resolved.manifestDigest } : {}),
    manifestMediaType: resolved.indexDigest ? undefined : resolved.mediaType,
    layers,
    platform: { os: config.os ?? platform.os, architecture: config.architecture ?? platform.architecture, ...(config.variant ? { variant: config.variant } : {}) },
    created: config.created,
    size,
    addedAt: new Date().toISOString(),
  };
  if (!existing) await graph.putImage(record);
  const pulledDigest = resolved.indexDigest ?? resolved.manifestDigest;
  await graph.addDigestRef(`${repositoryName(ref)}@${pulledDigest}`, id);
  if (ref.tag) await graph.setTag(formatReference(ref), id);

  progress({ status: `Digest: ${pulledDigest}` });
  // A tag is up to date when it already named this image; a digest when the image was here.
  const upToDate = !downloadedSomething && (ref.tag ? previous === id : existing !== undefined);
  progress({ status: upToDate ? `Status: Image is up to date for ${familiar}` : `Status: Downloaded newer image for ${familiar}` });
  return { id, reference: formatReference(ref), downloaded: !upToDate };
}

/** A cut connection is worth retrying: say what was kept, so users know a retry resumes. */
async function describeDownloadError(err: unknown, graph: Graph, desc: Descriptor, what: string): Promise<unknown> {
  if (!(err instanceof TransportError)) return err;
  const kept = await graph.content.ingestSize(desc.digest);
  const resume = kept > 0 ? `; ${kept} of ${desc.size} bytes kept, pull again to resume` : '';
  return new BerthError('EREGISTRY', `download of ${what} failed: ${err.message}${resume}`, { cause: err });
}

function parseConfig(bytes: Buffer, familiar: string): any {
  let config: unknown;
  try { config = JSON.parse(bytes.toString('utf8')); } catch (err) {
    throw new BerthError('EINVAL', `image config of ${familiar} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw new BerthError('EINVAL', `image config of ${familiar} is not a JSON object`);
  return config;
}

/** A stored blob that some image record already uses for the layer `chainId`. */
async function storedBlobFor(graph: Graph, chainId: Digest): Promise<LayerRef | undefined> {
  for (const image of await graph.listImages()) {
    for (const layer of image.layers) {
      if (layer.chainId === chainId && await graph.content.has(layer.blobDigest)) return { ...layer };
    }
  }
  return undefined;
}

const isAbort = (err: unknown) => (err as Error | undefined)?.name === 'AbortError';

async function fetchToStore(
  deps: PullDeps, ref: Reference, desc: Descriptor, auth: AuthConfig | undefined, signal: AbortSignal,
  onProgress?: (current: number, total: number) => void, onVerify?: () => void,
): Promise<void> {
  const { graph, registry } = deps;
  for (;;) {
    if (await graph.content.has(desc.digest)) return;
    try {
      await once(deps.inflight, `blob:${desc.digest}`, async () => {
        if (await graph.content.has(desc.digest)) return;
        await registry.fetchBlob(ref, desc, graph.content.ingestPath(desc.digest), { auth, onProgress, signal });
        onVerify?.();
        await graph.content.commitIngest(desc.digest, { verified: true, expectedSize: desc.size });
      });
      return;
    } catch (err) {
      // A concurrent pull we were sharing this download with gave up: fetch it ourselves
      // (the partial it left is resumed).
      if (isAbort(err) && !signal.aborted) continue;
      throw err;
    }
  }
}

/** Counts the bytes flowing through, for extraction progress. */
function byteCounter(onBytes: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      total += chunk.length;
      onBytes(total);
      callback(null, chunk);
    },
  });
}

async function extractLayer(
  deps: PullDeps, desc: Descriptor, diffId: Digest, chainId: Digest, parent: Digest | undefined,
  onProgress: (current: number, total: number) => void,
): Promise<void> {
  const { graph } = deps;
  await once(deps.inflight, `layer:${chainId}`, async () => {
    if (await graph.layers.has(chainId)) return;
    const source = graph.content.openRead(desc.digest);
    const input = source.pipe(byteCounter((read) => onProgress(read, desc.size)));
    source.on('error', (err) => input.destroy(err));
    await registerLayer(graph, input, { chainId, diffId, parent, whiteoutFormat: deps.whiteoutFormat, maxBytes: deps.maxLayerSize });
  });
}
