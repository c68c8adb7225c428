// Unpacked layers: layers/<chain hex>/diff/ plus layer.json. layer.json is written last
// and removed first, so "layer.json exists" is the one test for "this layer is complete".
// A layer may also hold tar-split (see tar-split.ts): once layer.json says it rebuilds the
// layer's tar exactly (`tarSplit`), the compressed blob is no longer needed.
import { promises as fsp } from 'node:fs';
import { join, relative, isAbsolute, resolve } from 'node:path';
import { lru } from 'tiny-lru';
import { BerthError } from '../util/errors';
import { fsyncDir, renameDurable, writeFileAtomic, writeJsonAtomic, readJsonIfExists } from '../util/atomic';
import { logger } from '../util/log';
import { assertDigest, hexOf, isDigest, isHex64 } from './chain';
import { digestOfReassembly, reassembleTar } from './tar-split';
import { isNotFound, readdirOrEmpty, statOrUndefined } from './fsutil';
import { KeyedMutex, type SharedExclusiveLock } from './lock';
import type { Digest, LayerRecord } from './types';

const log = logger('graph');
export const LAYER_RECORD = 'layer.json';
export const LAYER_DIFF = 'diff';
export const LAYER_TAR_SPLIT = 'tar-split';

export interface CommitCreateOptions {
  /**
   * fsync every file and directory of the extracted tree before it is published
   * (default true). Without it a power cut after layer.json is durable can leave
   * empty files in a layer that looks complete. Tests may turn it off for speed.
   */
  sync?: boolean;
  /**
   * The layer's tar-split record (TarSplitWriter), stored durably before layer.json.
   * Unverified until verifyTarSplit: only that lets the layer's blob go.
   */
  tarSplit?: Buffer;
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

  tarSplitPath(chainId: Digest): string {
    return join(this.dirOf(chainId), LAYER_TAR_SPLIT);
  }

  /**
   * True when the layer's tar can be rebuilt without its blob: its record says the
   * tar-split was verified against the diff_id, and the file is there.
   */
  async canRebuildTar(chainId: Digest): Promise<boolean> {
    const record = await this.get(chainId).catch(() => undefined);
    if (!record?.tarSplit) return false;
    return (await statOrUndefined(this.tarSplitPath(chainId)))?.isFile() ?? false;
  }

  /** The layer's exact uncompressed tar, rebuilt from tar-split and diff/ (ECORRUPT when it cannot be read). */
  reassemble(chainId: Digest): AsyncGenerator<Buffer> {
    return reassembleTar(this.tarSplitPath(chainId), this.diffPath(chainId));
  }

  /**
   * Rebuilds the layer's tar from its tar-split and compares it with the diff_id. On a
   * match layer.json records it (from then on the blob may go); otherwise the tar-split
   * is dropped and the blob stays the layer's source. Returns whether it matched.
   */
  async verifyTarSplit(chainId: Digest): Promise<boolean> {
    // Held for the whole rebuild: gc (exclusive) must not delete the layer under it, and a
    // layer re-created meanwhile must not lose its tar-split to this one's failure path.
    return this.commitLocks.run(chainId, () => this.storeLock.shared(async () => {
      const record = await this.get(chainId);
      if (!record) return false;
      if (record.tarSplit) return true;
      const path = this.tarSplitPath(chainId);
      if (!(await statOrUndefined(path))) return false;
      let why: string;
      try {
        const rebuilt = await digestOfReassembly(path, this.diffPath(chainId));
        if (rebuilt.digest === record.diffId) {
          const updated: LayerRecord = { ...record, tarSplit: { tarSize: rebuilt.size } };
          await writeJsonAtomic(this.recordPath(chainId), updated);
          this.records.set(chainId, updated);
          return true;
        }
        why = `rebuilt tar hashes to ${rebuilt.digest}, not ${record.diffId}`;
      } catch (err) {
        why = (err as Error).message;
      }
      // Duplicate paths, sparse files and the like: the layer's files are right, only the
      // tar cannot be rebuilt from them. Keeping the blob is the fix.
      log.info('layer tar cannot be rebuilt from its files; keeping its blob', { chainId, reason: why });
      await fsp.rm(path, { force: true });
      return false;
    }));
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
      if (opts.tarSplit) await writeFileAtomic(this.tarSplitPath(chainId), opts.tarSplit);
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
