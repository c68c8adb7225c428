// Garbage collection by reachability: whatever no image record, holder or lease
// reaches goes. Computed from scratch each time, never from stored counters.
// A layer blob that image records name is reachable only while its layer still needs it:
// once the layer can rebuild its tar from tar-split (and the graph is not told to keep
// layer blobs), the compressed copy is redundant, as in Docker.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../util/log';
import { isHex64 } from './chain';
import { readdirOrEmpty, statOrUndefined } from './fsutil';
import type { Graph } from './graph';
import type { Digest } from './types';

const log = logger('graph');

/** Partials touched within this window may belong to a running download. */
export const DEFAULT_INGEST_MIN_AGE_MS = 60 * 60 * 1000;

export interface GcOptions {
  /** Ingest partials to keep regardless of age (downloads the caller knows are running). */
  keepIngest?: Set<Digest>;
  /** Only remove ingest partials not modified for this long (default one hour; 0 = all unprotected). */
  olderThanMs?: number;
}

export interface GcResult {
  blobsRemoved: number;
  layersRemoved: number;
  ingestRemoved: number;
  bytesFreed: number;
}

/** Blobs that leases or image records still need (layer blobs only while their layer cannot rebuild its tar). */
async function liveBlobSet(graph: Graph, leased: Set<Digest>): Promise<Set<Digest>> {
  const live = new Set<Digest>(leased);
  const rebuildable = new Map<Digest, boolean>();
  for (const [, refs] of graph.imageStore.entries()) {
    refs.blobs.forEach((d) => live.add(d));
    for (const { blobDigest, chainId } of refs.layerBlobs) {
      if (live.has(blobDigest)) continue;
      if (graph.keepLayerBlobs) { live.add(blobDigest); continue; }
      let ok = rebuildable.get(chainId);
      if (ok === undefined) { ok = await graph.layers.canRebuildTar(chainId); rebuildable.set(chainId, ok); }
      if (!ok) live.add(blobDigest);
    }
  }
  return live;
}

/**
 * @internal Graph.dropLayerBlobs: removes those of `candidates` that gc would remove,
 * by the same reachability rule, without touching anything else (ingest partials,
 * unreferenced layers) that a full gc would.
 */
export async function runDropBlobs(graph: Graph, candidates: Digest[]): Promise<GcResult> {
  const result: GcResult = { blobsRemoved: 0, layersRemoved: 0, ingestRemoved: 0, bytesFreed: 0 };
  const live = await liveBlobSet(graph, graph.protectedDigests().leased);
  for (const digest of new Set(candidates)) {
    if (live.has(digest)) continue;
    // Only blobs some image names as a layer: an unreferenced blob is full gc's business.
    if (![...graph.imageStore.entries()].some(([, refs]) => refs.layerBlobs.some((l) => l.blobDigest === digest))) continue;
    const size = (await graph.content.size(digest)) ?? 0;
    if (await graph.content.deleteUnlocked(digest)) {
      result.blobsRemoved++;
      result.bytesFreed += size;
    }
  }
  if (result.blobsRemoved) log.info('removed layer blobs that their layers can rebuild', { ...result });
  return result;
}

/** @internal callers go through Graph.gc, which holds the store lock exclusively. */
export async function runGc(graph: Graph, opts: GcOptions): Promise<GcResult> {
  const result: GcResult = { blobsRemoved: 0, layersRemoved: 0, ingestRemoved: 0, bytesFreed: 0 };
  const { leased, held } = graph.protectedDigests();

  const liveBlobs = await liveBlobSet(graph, leased);
  const liveLayers = new Set<Digest>([...leased, ...held]);
  for (const [, refs] of graph.imageStore.entries()) refs.chainIds.forEach((d) => liveLayers.add(d));
  // A live layer keeps its parents: an overlay mount needs the whole stack, even
  // when a holder only named its top.
  const pending = [...liveLayers];
  while (pending.length > 0) {
    const record = await graph.layers.get(pending.pop()!).catch(() => undefined);
    if (record?.parent && !liveLayers.has(record.parent)) {
      liveLayers.add(record.parent);
      pending.push(record.parent);
    }
  }

  for (const digest of await graph.content.list()) {
    if (liveBlobs.has(digest)) continue;
    const size = (await graph.content.size(digest)) ?? 0;
    if (await graph.content.deleteUnlocked(digest)) {
      result.blobsRemoved++;
      result.bytesFreed += size;
    }
  }

  for (const hex of await graph.layers.listDirs()) {
    const chainId = `sha256:${hex}`;
    if (liveLayers.has(chainId)) continue;
    const record = await graph.layers.get(chainId).catch(() => undefined);
    if (await graph.layers.removeUnlocked(chainId)) {
      result.layersRemoved++;
      result.bytesFreed += record?.size ?? 0;
    }
  }

  const minAge = opts.olderThanMs ?? DEFAULT_INGEST_MIN_AGE_MS;
  const now = Date.now();
  for (const name of await readdirOrEmpty(graph.content.ingestDir)) {
    const path = join(graph.content.ingestDir, name);
    const hex = name.endsWith('.partial') ? name.slice(0, -'.partial'.length) : '';
    const digest = isHex64(hex) ? `sha256:${hex}` : undefined;
    if (digest && (leased.has(digest) || opts.keepIngest?.has(digest))) continue;
    const st = await statOrUndefined(path);
    if (!st) continue;
    // A partial whose blob is already stored is redundant whatever its age.
    const redundant = digest !== undefined && await graph.content.has(digest);
    if (!redundant && now - st.mtimeMs < minAge) continue;
    await fsp.rm(path, { recursive: true, force: true });
    result.ingestRemoved++;
    result.bytesFreed += st.size;
  }

  if (result.blobsRemoved || result.layersRemoved || result.ingestRemoved) log.info('gc', { ...result });
  return result;
}
