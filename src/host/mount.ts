// Mount-table work for the storage drivers: mount(2), umount2(2), statfs(2) filesystem
// magic, the mount table from /proc/self/mountinfo, and syncfs(2). Device nodes and
// extended attributes live in fsops.ts.
import { promises as fsp, constants as fsc } from 'node:fs';
import { resolve } from 'node:path';
import { libcFunc, syscallError } from './libc';

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;

export const MNT_FORCE = 0x1;
export const MNT_DETACH = 0x2;
export const MNT_EXPIRE = 0x4;
export const UMOUNT_NOFOLLOW = 0x8;

/** The kernel copies mount data into one page; the string plus its NUL must fit. */
export const MOUNT_DATA_MAX = 4095;

export function mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): void {
  const fn = libcFunc('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)');
  if (fn(source, target, fstype, flags, data) !== 0) throw syscallError('mount', target);
}

export function umount2(target: string, flags = 0): void {
  const fn = libcFunc('int umount2(const char *target, int flags)');
  if (fn(target, flags) !== 0) throw syscallError('umount2', target);
}

/** statfs(2) f_type of the filesystem holding `path` (e.g. 0xEF53 for ext2/3/4). */
export async function fsTypeMagic(path: string): Promise<number> {
  const st = await fsp.statfs(path);
  // f_type is a signed long in the C struct; magics with the top bit set come back negative on 32-bit.
  return st.type >>> 0;
}

export interface MountInfo {
  mountId: number;
  parentId: number;
  /** "major:minor" of the mounted filesystem. */
  device: string;
  /** The directory of the filesystem that forms this mount's root. */
  root: string;
  mountPoint: string;
  mountOptions: string;
  fsType: string;
  source: string;
  superOptions: string;
}

// mountinfo escapes space, tab, newline and backslash as \ooo octal.
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses the text of a mountinfo file (proc(5)); tests pass fixtures. */
export function parseMountInfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (separator < 0 || fields.length < separator + 3) continue;
    mounts.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2]!,
      root: unescapeMountField(fields[3]!),
      mountPoint: unescapeMountField(fields[4]!),
      mountOptions: fields[5]!,
      fsType: fields[separator + 1]!,
      source: unescapeMountField(fields[separator + 2]!),
      superOptions: fields[separator + 3] ?? '',
    });
  }
  return mounts;
}

export async function readMountInfo(file = '/proc/self/mountinfo'): Promise<MountInfo[]> {
  return parseMountInfo(await fsp.readFile(file, 'utf8'));
}

// Mount points are listed with symlinks resolved, so compare against the real path.
async function canonical(path: string): Promise<string> {
  try { return await fsp.realpath(path); } catch { return resolve(path); }
}

/** True when something is mounted exactly on `path`. */
export async function isMountpoint(path: string, mounts?: MountInfo[]): Promise<boolean> {
  const target = await canonical(path);
  return (mounts ?? await readMountInfo()).some((m) => m.mountPoint === target);
}

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string, mounts?: MountInfo[]): Promise<string[]> {
  const base = await canonical(dir);
  const prefix = base.endsWith('/') ? base : base + '/';
  const found = (mounts ?? await readMountInfo())
    .map((m) => m.mountPoint)
    .filter((p) => p === base || p.startsWith(prefix));
  return [...new Set(found)].sort((a, b) => b.length - a.length);
}

/** Flushes the whole filesystem holding `path` to disk (cheaper than fsyncing every file). */
export async function syncFilesystem(path: string): Promise<void> {
  const fh = await fsp.open(path, fsc.O_RDONLY);
  try {
    const fn = libcFunc('int syncfs(int fd)');
    if (fn(fh.fd) !== 0) throw syscallError('syncfs', path);
  } finally {
    await fh.close();
  }
}
