// File-tree helpers shared by both drivers.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { TEMP_PREFIX, tempPathFor, fsyncDir } from '../util/atomic';
import { umount2, mountsUnder, isMountpoint, MNT_DETACH } from '../host/mount';
import { logger } from '../util/log';

const log = logger('storage');

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

export async function pathExists(path: string): Promise<boolean> {
  try { await fsp.lstat(path); return true; } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Unmounts `target` until nothing is mounted on it. A busy mount is detached instead,
 * so the directory can still be removed; the kernel frees it when the last user goes.
 */
export async function unmountAll(target: string): Promise<void> {
  for (let i = 0; i < 16 && await isMountpoint(target); i++) {
    try {
      umount2(target, 0);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EINVAL' || code === 'ENOENT') return; // already gone
      if (code !== 'EBUSY') throw err;
      log.warn('mount is busy, detaching it', { target });
      umount2(target, MNT_DETACH);
    }
  }
}

/**
 * Deletes a tree that may still have mounts inside (a crashed container's rootfs).
 * Mounts are detached first: a recursive delete would otherwise reach through them
 * into whatever they show (image layers, host directories).
 */
export async function removeTree(dir: string): Promise<void> {
  if (!await pathExists(dir)) return;
  for (const mountPoint of await mountsUnder(dir)) {
    try { umount2(mountPoint, MNT_DETACH); } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'ENOENT') throw err;
    }
  }
  if ((await mountsUnder(dir)).length > 0) throw new Error(`cannot unmount everything under ${dir}`);
  await fsp.rm(dir, { recursive: true, force: true });
}

/**
 * Removes a container's directory so that a crash half-way leaves only a temp-named
 * directory (which cleanup removes), never a half-deleted one under the real name.
 */
export async function discardDir(dir: string): Promise<void> {
  if (!await pathExists(dir)) return;
  for (const mountPoint of await mountsUnder(dir)) await unmountAll(mountPoint);
  const doomed = tempPathFor(dir);
  await fsp.rename(dir, doomed);
  await fsyncDir(join(doomed, '..'));
  await removeTree(doomed);
}

/** Bytes in regular files and symlinks below `dir`, each hardlinked inode once. */
export async function treeSize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    for (const entry of await fsp.readdir(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) { await walk(child); continue; }
      const st = await fsp.lstat(child);
      if (!st.isFile() && !st.isSymbolicLink()) continue;
      if (st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      total += st.size;
    }
  };
  if (await pathExists(dir)) await walk(dir);
  return total;
}

/** Runs operations on the same key one after another (mount and unmount of one container). */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, op: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(op, op);
    const tail = result.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return result;
  }
}
