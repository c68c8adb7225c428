// Power-cut safe writes: temp file in the same directory, fsync, rename, fsync the
// directory. A reader sees the old content or the new one, never a torn file.
import { promises as fsp, constants as fsc, openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Temp files carry this prefix so start-up checks can recognise and remove leftovers. */
export const TEMP_PREFIX = '.tmp-';

export function tempPathFor(target: string): string {
  return join(dirname(target), `${TEMP_PREFIX}${basename(target)}.${randomBytes(6).toString('hex')}`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try { await fh.sync(); } finally { await fh.close(); }
}

export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempPathFor(target);
  const fh = await fsp.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(target));
}

export async function writeJsonAtomic(target: string, value: unknown, mode = 0o644): Promise<void> {
  await writeFileAtomic(target, JSON.stringify(value), mode);
}

/** Synchronous variant for the few places that must finish before the process exits. */
export function writeFileAtomicSync(target: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempPathFor(target);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, target);
  const dfd = openSync(dirname(target), fsc.O_RDONLY | fsc.O_DIRECTORY);
  try { fsyncSync(dfd); } finally { closeSync(dfd); }
}

/** Renames src to dst (same filesystem) and makes the rename durable. */
export async function renameDurable(src: string, dst: string): Promise<void> {
  await fsp.rename(src, dst);
  await fsyncDir(dirname(dst));
  if (dirname(src) !== dirname(dst)) await fsyncDir(dirname(src));
}

export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fsp.readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
