// Small filesystem helpers shared by the stores.
import { promises as fsp } from 'node:fs';
import { join, posix } from 'node:path';
import type { Stats } from 'node:fs';
import { BerthError } from '../util/errors';
import { TEMP_PREFIX } from '../util/atomic';

export function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

export async function statOrUndefined(path: string): Promise<import('node:fs').Stats | undefined> {
  try { return await fsp.stat(path); } catch (err) { if (isNotFound(err)) return undefined; throw err; }
}

export async function exists(path: string): Promise<boolean> {
  return (await statOrUndefined(path)) !== undefined;
}

export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try { return await fsp.readdir(dir); } catch (err) { if (isNotFound(err)) return []; throw err; }
}

/**
 * Temp files left by writeFileAtomic in `dir` (not recursive: layer diffs may hold
 * files that legitimately start with ".tmp-"). `minAgeMs` spares temps that a write
 * in progress may still own.
 */
export async function findTempLeftovers(dir: string, minAgeMs = 0): Promise<string[]> {
  const found: string[] = [];
  const now = Date.now();
  for (const name of await readdirOrEmpty(dir)) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const path = join(dir, name);
    const st = await statOrUndefined(path);
    if (st && now - st.mtimeMs >= minAgeMs) found.push(path);
  }
  return found;
}

/** Same bound as the kernel's MAXSYMLINKS-style loop protection, generous for deep trees. */
const MAX_SYMLINK_HOPS = 255;

/**
 * Joins `unsafePath` onto `root` as if root were `/` for a chrooted process: every existing
 * component is lstat'ed and symlinks are followed (absolute targets restart at root, `..`
 * stops at root), so the result is always inside root. The final component is followed too;
 * callers that must not follow it resolve the parent and append the base name.
 * Components that do not exist are appended as they are.
 */
export async function secureJoin(root: string, unsafePath: string): Promise<string> {
  const pending = unsafePath.split('/');
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') { resolved.pop(); continue; }
    const candidate = posix.join(root, ...resolved, part);
    let st: Stats;
    try {
      st = await fsp.lstat(candidate);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      resolved.push(part);
      continue;
    }
    if (!st.isSymbolicLink()) { resolved.push(part); continue; }
    if (++hops > MAX_SYMLINK_HOPS) {
      throw new BerthError('EUNSAFE', `too many levels of symbolic links resolving ${JSON.stringify(unsafePath)} in the layer`);
    }
    const target = await fsp.readlink(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    pending.unshift(...target.split('/'));
  }
  return posix.join(root, ...resolved);
}

