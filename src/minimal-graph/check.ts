// fsck for the graph: re-hash every blob, make sure images, layers and tags hang
// together, find debris. With repair it removes only what is already broken or
// temporary, never valid data.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../util/log';
import { digestOfFile, isHex64 } from './chain';
import { findTempLeftovers, readdirOrEmpty, statOrUndefined } from './fsutil';
import { LAYER_DIFF, LAYER_RECORD, LAYER_TAR_SPLIT } from './layers';
import { digestOfReassembly } from './tar-split';
import type { Graph } from './graph';
import type { CheckProblem, Digest, LayerRecord } from './types';

const log = logger('graph');

/** Temp files younger than this may belong to a write that is still running (tags are written outside the store lock). */
const TEMP_GRACE_MS = 60_000;

export interface CheckOptions {
  repair?: boolean;
  /**
   * Re-hash every blob, and rebuild the tar of every layer that has a verified tar-split
   * (default true). The daemon's start-up check skips it: blobs are verified and fsynced
   * before they are renamed into place, and hashing a whole store on a router CPU at
   * every boot would delay the containers.
   */
  verifyBlobs?: boolean;
}

/** Why the layer's tar-split no longer rebuilds its diff_id, or undefined when it does. */
async function tarSplitDamage(graph: Graph, chainId: Digest, record: LayerRecord): Promise<string | undefined> {
  const path = join(graph.layers.dirOf(chainId), LAYER_TAR_SPLIT);
  if (!(await statOrUndefined(path))) return 'tar-split missing; the layer tar cannot be rebuilt for save';
  try {
    const rebuilt = await digestOfReassembly(path, graph.layers.diffPath(chainId));
    if (rebuilt.digest === record.diffId) return undefined;
    return `files in diff/ were changed: the rebuilt tar hashes to ${rebuilt.digest}; remove the images using it and pull them again`;
  } catch (err) {
    return `${(err as Error).message}; remove the images using it and pull them again`;
  }
}

/** @internal callers go through Graph.check, which holds the store lock exclusively. */
export async function runCheck(graph: Graph, opts: CheckOptions): Promise<CheckProblem[]> {
  const repair = opts.repair === true;
  const problems: CheckProblem[] = [];
  const report = (problem: CheckProblem) => {
    problems.push(problem);
    log.warn('check', { kind: problem.kind, path: problem.path, detail: problem.detail, repaired: problem.repaired ?? false });
  };

  // Blobs first: a config removed here as corrupt then shows up as a broken image below.
  for (const digest of opts.verifyBlobs === false ? [] : await graph.content.list()) {
    const path = graph.content.path(digest);
    let actual: Digest;
    try {
      actual = (await digestOfFile(path)).digest;
    } catch (err) {
      report({ kind: 'blob-digest', path, detail: `unreadable: ${(err as Error).message}` });
      continue;
    }
    if (actual === digest) continue;
    const problem: CheckProblem = { kind: 'blob-digest', path, detail: `content hashes to ${actual}, not ${digest}` };
    if (repair) { await graph.content.deleteUnlocked(digest); graph.forgetCached(digest); problem.repaired = true; }
    report(problem);
  }

  for (const hex of await graph.layers.listDirs()) {
    const chainId: Digest = `sha256:${hex}`;
    const dir = join(graph.layers.layersDir, hex);
    graph.forgetCached(chainId);
    let trouble: CheckProblem | undefined;
    let record: LayerRecord | undefined;
    try {
      record = await graph.layers.get(chainId);
    } catch (err) {
      trouble = { kind: 'record-unreadable', path: join(dir, LAYER_RECORD), detail: (err as Error).message };
    }
    if (!trouble && !record) {
      trouble = { kind: 'layer-incomplete', path: dir, detail: 'no layer.json (extraction never finished)' };
    } else if (!trouble && !(await statOrUndefined(join(dir, LAYER_DIFF)))?.isDirectory()) {
      trouble = { kind: 'layer-incomplete', path: dir, detail: 'layer.json present but diff/ missing' };
    }
    if (!trouble) {
      // A layer whose blob may be gone must still rebuild its exact tar, or save breaks.
      // Reported, never repaired: the unpacked files may still run containers.
      if (record?.tarSplit && opts.verifyBlobs !== false) {
        const damage = await tarSplitDamage(graph, chainId, record);
        if (damage) report({ kind: 'layer-corrupt', path: dir, detail: `layer ${chainId} (diff_id ${record.diffId}): ${damage}` });
      }
      continue;
    }
    if (repair) { await graph.layers.removeUnlocked(chainId); trouble.repaired = true; }
    report(trouble);
  }

  // Re-read the records: the index from open() may not match what is on disk now.
  await graph.imageStore.load();
  for (const [path, detail] of [...graph.imageStore.unreadable]) {
    const problem: CheckProblem = { kind: 'record-unreadable', path, detail };
    if (repair) { await graph.imageStore.removeUnreadable(path); problem.repaired = true; }
    report(problem);
  }
  if (graph.repositories.loadProblem) {
    report({ kind: 'record-unreadable', ...graph.repositories.loadProblem, repaired: true });
    if (repair) graph.repositories.loadProblem = undefined;
  }

  for (const id of graph.imageStore.ids()) {
    const record = await graph.imageStore.get(id);
    if (!record) continue;
    const recordPath = graph.imageStore.recordPath(id);
    const fatal: CheckProblem[] = [];
    if (!(await graph.content.has(id))) {
      fatal.push({ kind: 'image-config-missing', path: recordPath, detail: `config blob ${id} missing` });
    }
    for (const layer of record.layers) {
      if (!(await graph.layers.has(layer.chainId))) {
        fatal.push({ kind: 'layer-missing', path: recordPath, detail: `layer ${layer.chainId} missing` });
      }
    }
    // Without a manifest or compressed layer blob the image still runs; only save/push
    // would miss them, and a re-pull restores them. Reported, never "repaired".
    // A layer blob is not even wanted once its layer rebuilds the tar from tar-split.
    const layerBlobs: Digest[] = [];
    for (const layer of record.layers) {
      if (!(await graph.layers.canRebuildTar(layer.chainId))) layerBlobs.push(layer.blobDigest);
    }
    const optional = [record.manifestDigest, record.platformManifestDigest, ...layerBlobs];
    for (const digest of optional) {
      if (digest && !(await graph.content.has(digest))) {
        report({ kind: 'blob-missing', path: recordPath, detail: `blob ${digest} missing` });
      }
    }
    // An image that cannot run is removed whole; its tags go as dangling just below.
    if (fatal.length > 0 && repair) {
      await graph.imageStore.remove(id);
      fatal.forEach((p) => { p.repaired = true; });
    }
    fatal.forEach(report);
  }

  const refs = graph.repositories.snapshot();
  const isDangling = (id: Digest) => !graph.imageStore.hasImage(id);
  const danglingRefs = [...Object.entries(refs.tags), ...Object.entries(refs.digests)].filter(([, id]) => isDangling(id));
  if (danglingRefs.length > 0 && repair) await graph.repositories.removeWhere(isDangling);
  for (const [ref, id] of danglingRefs) {
    report({ kind: 'tag-dangling', path: graph.repositories.path, detail: `${ref} -> ${id} (no such image)`, repaired: repair || undefined });
  }

  const leftovers: string[] = [];
  for (const name of await readdirOrEmpty(graph.layers.tmpDir)) {
    const path = join(graph.layers.tmpDir, name);
    if (!graph.layers.isActiveTemp(path)) leftovers.push(path);
  }
  const tempDirs = [graph.root, graph.content.blobsDir, graph.content.ingestDir, graph.imageStore.imagesDir, graph.layers.layersDir];
  for (const hex of await graph.layers.listDirs()) tempDirs.push(join(graph.layers.layersDir, hex));
  for (const dir of tempDirs) leftovers.push(...await findTempLeftovers(dir, TEMP_GRACE_MS));
  for (const name of await readdirOrEmpty(graph.content.ingestDir)) {
    const hex = name.endsWith('.partial') ? name.slice(0, -'.partial'.length) : '';
    const path = join(graph.content.ingestDir, name);
    if (!isHex64(hex) && !leftovers.includes(path) && !name.startsWith('.tmp-')) leftovers.push(path);
  }
  for (const path of leftovers) {
    const problem: CheckProblem = { kind: 'temp-leftover', path, detail: 'temporary file or directory' };
    if (repair) { await fsp.rm(path, { recursive: true, force: true }); problem.repaired = true; }
    report(problem);
  }

  return problems;
}
