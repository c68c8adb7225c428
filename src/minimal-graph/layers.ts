// Unpacked layers: layers/<chain hex>/diff/ plus layer.json. layer.json is written last
// and removed first, so "layer.json exists" is the one test for "this layer is complete".
import { promises as fsp } from 'node:fs';
import { join, relative, isAbsolute, resolve } from 'node:path';
import { lru } from 'tiny-lru';
import { BerthError } from '../util/errors';
import { fsyncDir, renameDurable, writeJsonAtomic, readJsonIfExists } from '../util/atomic';
import { logger } from '../util/log';
import { assertDigest, hexOf, isDigest, isHex64 } from './chain';
import { isNotFound, readdirOrEmpty, statOrUndefined } from './fsutil';
import { KeyedMutex, type SharedExclusiveLock } from './lock';
import type { Digest, LayerRecord } from './types';

const log = logger('graph');
export const LAYER_RECORD = 'layer.json';
export const LAYER_DIFF = 'diff';

export interface CommitCreateOptions {
  /**
   * fsync every file and directory of the extracted tree before it is published
   * (default true). Without it a power cut after layer.json is durable can leave
   * empty files in a layer that looks complete. Tests may turn it off for speed.
   */
  sync?: boolean;
}

export class LayerStore {
  readonly layersDir: string;
  readonly tmpDir: string;
  private readonly records = lru<LayerRecord>(256);
  private readonly commitLocks = new KeyedMutex();
  /** Extraction dirs handed out by beginCreate and not yet committed or aborted. */
  private readonly activeTemps = new Set<string>();

  /** @internal built by Graph.open */
  constructor(root: string, private readonly storeLock: SharedExclusiveLock) {
    this.layersDir = join(root, 'layers');
    this.tmpDir = join(root, 'tmp');
  }

  dirOf(chainId: Digest): string {
    return join(this.layersDir, hexOf(chainId));
  }

  diffPath(chainId: Digest): string {
    return join(this.dirOf(chainId), LAYER_DIFF);
  }

  recordPath(chainId: Digest): string {
    return join(this.dirOf(chainId), LAYER_RECORD);
  }

  async has(chainId: Digest): Promise<boolean> {
    if (this.records.has(chainId)) return true;
    return (await statOrUndefined(this.recordPath(chainId)))?.isFile() ?? false;
  }

  async get(chainId: Digest): Promise<LayerRecord | undefined> {
    const cached = this.records.get(chainId);
    if (cached) return { ...cached };
    const record = await readJsonIfExists<LayerRecord>(this.recordPath(chainId));
    if (record === undefined) return undefined;
    if (record.chainId !== chainId) {
      throw new BerthError('ECORRUPT', `layer record ${this.recordPath(chainId)} names ${record.chainId}`);
    }
    this.records.set(chainId, record);
    return { ...record };
  }

  /** A fresh, empty directory to extract a layer into. */
  async beginCreate(): Promise<string> {
    const dir = await fsp.mkdtemp(join(this.tmpDir, 'layer-'));
    // mkdtemp makes 0700; a layer whose tar has no "./" entry keeps its root's mode, and a
    // container's / must be traversable by non-root users, as Docker's 0755 root is.
    await fsp.chmod(dir, 0o755);
    this.activeTemps.add(dir);
    return dir;
  }

  /** @internal check() must not remove an extraction that is still running. */
  isActiveTemp(path: string): boolean {
    return this.activeTemps.has(path);
  }

  /**
   * Publishes an extracted tree as layer `record.chainId`. If that layer already exists
   * (another pull won the race) the tree is discarded and the existing layer kept.
   */
  async commitCreate(tempDir: string, record: LayerRecord, opts: CommitCreateOptions = {}): Promise<void> {
    this.assertOwnTemp(tempDir);
    const chainId = assertDigest(record.chainId, 'chain ID');
    assertDigest(record.diffId, 'diff ID');
    if (record.parent !== undefined) assertDigest(record.parent, 'parent chain ID');
    if (opts.sync !== false) await syncTree(tempDir);
    await this.commitLocks.run(chainId, () => this.storeLock.shared(async () => {
      if (await this.has(chainId)) {
        await this.abortCreate(tempDir);
        return;
      }
      const layerDir = this.dirOf(chainId);
      const diffDir = this.diffPath(chainId);
      // A diff/ without layer.json here is debris from an earlier failed commit.
      await fsp.rm(layerDir, { recursive: true, force: true });
      await fsp.mkdir(layerDir);
      await fsyncDir(this.layersDir);
      await renameDurable(tempDir, diffDir);
      this.activeTemps.delete(tempDir);
      await writeJsonAtomic(this.recordPath(chainId), record);
      this.records.set(chainId, { ...record });
    }));
  }

  async abortCreate(tempDir: string): Promise<void> {
    this.assertOwnTemp(tempDir);
    await fsp.rm(tempDir, { recursive: true, force: true });
    this.activeTemps.delete(tempDir);
  }

  async remove(chainId: Digest): Promise<boolean> {
    return this.storeLock.shared(() => this.removeUnlocked(chainId));
  }

  /** @internal for gc/check, which already hold the store lock exclusively. */
  async removeUnlocked(chainId: Digest): Promise<boolean> {
    const layerDir = this.dirOf(chainId);
    if (!(await statOrUndefined(layerDir))) return false;
    this.records.delete(chainId);
    // Record first: from here on the layer counts as incomplete, whatever happens next.
    await fsp.rm(this.recordPath(chainId), { force: true });
    await fsyncDir(layerDir).catch(() => {});
    // Moving the tree into tmp/ first makes the removal look instant; if the daemon
    // dies during the slow recursive delete, open() finishes it by emptying tmp/.
    const doomed = join(this.tmpDir, `removing-${hexOf(chainId)}-${process.pid}-${Date.now()}`);
    try {
      await fsp.rename(layerDir, doomed);
      await fsyncDir(this.layersDir);
    } catch (err) {
      log.warn('could not move layer aside before removal', { chainId, error: String(err) });
      await fsp.rm(layerDir, { recursive: true, force: true });
      return true;
    }
    await fsp.rm(doomed, { recursive: true, force: true });
    return true;
  }

  /** Chain IDs of complete layers. */
  async list(): Promise<Digest[]> {
    const out: Digest[] = [];
    for (const name of await readdirOrEmpty(this.layersDir)) {
      if (!isHex64(name)) continue;
      const chainId = `sha256:${name}`;
      if (await this.has(chainId)) out.push(chainId);
    }
    return out;
  }

  /** @internal every layers/<hex> dir, complete or not. */
  async listDirs(): Promise<string[]> {
    return (await readdirOrEmpty(this.layersDir)).filter(isHex64);
  }

  /** @internal drop cached records (after repair removes files behind our back). */
  forget(chainId: Digest): void {
    if (isDigest(chainId)) this.records.delete(chainId);
  }

  private assertOwnTemp(tempDir: string): void {
    // abortCreate deletes recursively: only ever inside our own tmp/.
    const rel = relative(this.tmpDir, resolve(tempDir));
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel) || rel.includes('/')) {
      throw new BerthError('EINVAL', `not a layer extraction directory: ${tempDir}`);
    }
  }
}

/** fsync every regular file and directory below `root`, children before parents. */
async function syncTree(root: string): Promise<void> {
  const entries = await fsp.readdir(root, { withFileTypes: true });
  for (const entry of entries) {
    const path = join(root, entry.name);
    if (entry.isDirectory()) await syncTree(path);
    else if (entry.isFile()) await syncPath(path);
  }
  await syncPath(root);
}

async function syncPath(path: string): Promise<void> {
  let fh;
  try {
    fh = await fsp.open(path, 'r');
  } catch (err) {
    // A mode-000 file when not running as root: nothing we can do, and not fatal.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || isNotFound(err)) return;
    throw err;
  }
  try { await fh.sync(); } finally { await fh.close(); }
}
