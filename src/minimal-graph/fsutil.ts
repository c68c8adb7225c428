// Small filesystem helpers shared by the stores.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
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
