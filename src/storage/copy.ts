// The copy driver: each container gets a full copy of its image's layers, applied bottom
// to top. Slow and space-hungry, but it works on any filesystem, including data roots
// that overlayfs cannot use (an overlayfs /overlay, jffs2, ubifs without xattrs).
//
// <root>/storage/copy/<id>/rootfs
import { promises as fsp, constants as fsc, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { tempPathFor, fsyncDir, renameDurable } from '../util/atomic';
import { logger } from '../util/log';
import { syncFilesystem } from '../host/mount';
import { mknod, splitDev, llistxattr, lgetxattr, lsetxattr } from '../host/fsops';
import { assertValidId, relativeComponents, type LowerLayer, type StorageDriver } from './driver';
import { copyChanges, type Change } from './changes';
import { discardDir, isTempName, pathExists, removeTree, treeSize } from './fsutil';

const log = logger('storage/copy');

export interface CopyOptions {
  /** Backing filesystem name for status(), e.g. 'jffs2'. */
  backingFs: string;
}

async function lstatIfExists(path: string): Promise<BigIntStats | undefined> {
  try { return await fsp.lstat(path, { bigint: true }); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The path of `components` inside `root`, or undefined when it does not exist in the
 * tree as layered so far. Every ancestor must be a real directory: a symlink on the way
 * could point anywhere, including outside the rootfs.
 */
async function existingPathInside(root: string, components: string[]): Promise<string | undefined> {
  let path = root;
  for (let i = 0; i < components.length; i++) {
    path = join(path, components[i]!);
    const st = await lstatIfExists(path);
    if (!st) return undefined;
    if (i < components.length - 1 && !st.isDirectory()) return undefined;
  }
  return path;
}

async function emptyDirectory(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) await fsp.rm(join(dir, name), { recursive: true, force: true });
}

/** overlayfs's in-tree whiteout: a character device 0:0. */
function isWhiteoutMarker(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

function seconds(ns: bigint): number {
  return Number(ns) / 1e9;
}

const XATTR_UNSUPPORTED = new Set(['EOPNOTSUPP', 'ENOTSUP', '95']);

/** Copies one layer's diff onto a rootfs; remembers its hardlinks so they stay hardlinks. */
class LayerCopier {
  /** "dev:ino" of a multiply-linked source file -> its first copy in the rootfs. */
  private readonly firstCopyOfInode = new Map<string, string>();

  constructor(private readonly onXattrUnsupported: (name: string, path: string) => void) {}

  async copyDirectory(src: string, dst: string, srcStat: BigIntStats): Promise<void> {
    for (const name of await fsp.readdir(src)) {
      const from = join(src, name);
      const to = join(dst, name);
      const st = await fsp.lstat(from, { bigint: true });
      if (isWhiteoutMarker(st)) continue;
      const existing = await lstatIfExists(to);
      if (st.isDirectory()) {
        // Directory over directory keeps the lower content and takes the new metadata.
        if (existing && !existing.isDirectory()) await fsp.rm(to, { recursive: true, force: true });
        if (!existing?.isDirectory()) await fsp.mkdir(to, { mode: 0o700 });
        await this.copyDirectory(from, to, st);
      } else {
        if (existing) await fsp.rm(to, { recursive: true, force: true });
        await this.copyNonDirectory(from, to, st);
      }
    }
    // Last, so creating the children does not overwrite the directory's mtime.
    await this.copyMetadata(src, dst, srcStat);
  }

  private async copyNonDirectory(from: string, to: string, st: BigIntStats): Promise<void> {
    const inode = `${st.dev}:${st.ino}`;
    if (st.nlink > 1n) {
      const first = this.firstCopyOfInode.get(inode);
      if (first) { await fsp.link(first, to); return; }
    }
    if (st.isFile()) {
      // EXCL: never write through something unexpected; FICLONE: share blocks where the fs can.
      await fsp.copyFile(from, to, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
    } else if (st.isSymbolicLink()) {
      await fsp.symlink(await fsp.readlink(from), to);
    } else {
      // Devices, fifos and sockets: recreated, never opened.
      const { major, minor } = splitDev(st.rdev);
      mknod(to, Number(st.mode), major, minor);
    }
    if (st.nlink > 1n) this.firstCopyOfInode.set(inode, to);
    await this.copyMetadata(from, to, st);
  }

  private async copyMetadata(from: string, to: string, st: BigIntStats): Promise<void> {
    await fsp.lchown(to, Number(st.uid), Number(st.gid));
    // After chown, which clears setuid/setgid bits; Linux has no mode on symlinks.
    if (!st.isSymbolicLink()) await fsp.chmod(to, Number(st.mode) & 0o7777);
    // After chown too, which clears security.capability.
    for (const name of llistxattr(from)) {
      if (name.startsWith('trusted.overlay.')) continue; // overlayfs's own bookkeeping
      const value = lgetxattr(from, name);
      if (value === undefined) continue;
      try {
        lsetxattr(to, name, value);
      } catch (err) {
        if (!XATTR_UNSUPPORTED.has(String((err as NodeJS.ErrnoException).code))) throw err;
        this.onXattrUnsupported(name, to);
      }
    }
    await fsp.lutimes(to, seconds(st.atimeNs), seconds(st.mtimeNs));
  }
}

/**
 * Applies one layer onto `rootfs`: hides opaque directories' lower content, deletes the
 * layer's whiteouts, then copies its diff over. Exported for tests.
 */
export async function applyLayerByCopy(rootfs: string, layer: LowerLayer, onXattrUnsupported: (name: string, path: string) => void = () => {}): Promise<void> {
  for (const opaque of layer.opaques) {
    const dir = await existingPathInside(rootfs, relativeComponents(opaque, true));
    if (dir && (await fsp.lstat(dir)).isDirectory()) await emptyDirectory(dir);
  }
  for (const whiteout of layer.whiteouts) {
    const path = await existingPathInside(rootfs, relativeComponents(whiteout));
    if (path) await fsp.rm(path, { recursive: true, force: true });
  }
  const rootStat = await fsp.lstat(layer.diffPath, { bigint: true });
  if (!rootStat.isDirectory()) throw new BerthError('ECORRUPT', `layer ${layer.diffPath} is not a directory`);
  await new LayerCopier(onXattrUnsupported).copyDirectory(layer.diffPath, rootfs, rootStat);
}

export class CopyDriver implements StorageDriver {
  readonly name = 'copy' as const;
  readonly whiteoutFormat = 'none' as const;
  private readonly home: string;
  private readonly warnedXattrs = new Set<string>();

  constructor(root: string, private readonly options: CopyOptions) {
    this.home = join(root, 'storage', 'copy');
  }

  private dir(id: string): string {
    assertValidId(id);
    return join(this.home, id);
  }

  private readonly warnXattr = (name: string, path: string): void => {
    if (this.warnedXattrs.has(name)) return;
    this.warnedXattrs.add(name);
    log.warn('the data root cannot store an extended attribute; dropping it', { name, path });
  };

  async create(id: string, lowers: LowerLayer[]): Promise<void> {
    const dir = this.dir(id);
    if (await pathExists(dir)) throw new BerthError('ECONFLICT', `storage for ${id} already exists`);
    await fsp.mkdir(this.home, { recursive: true });
    const staging = tempPathFor(dir);
    try {
      await fsp.mkdir(staging, { mode: 0o700 });
      const rootfs = join(staging, 'rootfs');
      await fsp.mkdir(rootfs, { mode: 0o755 });
      for (const lower of lowers) await applyLayerByCopy(rootfs, lower, this.warnXattr);
      // One filesystem flush instead of an fsync per copied file, before the rename publishes it.
      await syncFilesystem(staging);
      await fsyncDir(staging);
      await renameDurable(staging, dir);
    } catch (err) {
      await removeTree(staging).catch(() => {});
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new BerthError('ECONFLICT', `storage for ${id} already exists`, { cause: err });
      throw err;
    }
  }

  async mount(id: string): Promise<string> {
    const dir = this.dir(id);
    if (!await pathExists(dir)) throw new BerthError('ENOCONTAINER', `no storage for container ${id}`);
    return join(dir, 'rootfs');
  }

  async unmount(id: string): Promise<void> {
    this.dir(id);
  }

  async remove(id: string): Promise<void> {
    await discardDir(this.dir(id));
  }

  async exists(id: string): Promise<boolean> {
    return pathExists(this.dir(id));
  }

  async diffSize(id: string): Promise<number> {
    const dir = this.dir(id);
    if (!await pathExists(dir)) throw new BerthError('ENOCONTAINER', `no storage for container ${id}`);
    return treeSize(join(dir, 'rootfs'));
  }

  async changes(id: string, lowers: LowerLayer[]): Promise<Change[]> {
    const dir = this.dir(id);
    if (!await pathExists(dir)) throw new BerthError('ENOCONTAINER', `no storage for container ${id}`);
    return copyChanges(join(dir, 'rootfs'), lowers);
  }

  status(): Array<[string, string]> {
    return [['Backing Filesystem', this.options.backingFs]];
  }

  async cleanup(knownIds: Set<string>): Promise<void> {
    if (!await pathExists(this.home)) return;
    for (const name of await fsp.readdir(this.home)) {
      if (!isTempName(name) && knownIds.has(name)) continue;
      log.info('removing leftover container storage', { name, reason: isTempName(name) ? 'unfinished' : 'unknown container' });
      await removeTree(join(this.home, name));
    }
  }
}
