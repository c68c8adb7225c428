// File-system calls Node does not expose: device nodes and extended attributes. All of
// them act on the path itself, never on a symlink's target (the l* variants), because
// their callers build trees from untrusted archives.
import { libcFunc, errno, syscallError } from './libc';

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

const ERANGE = 34;
const ENODATA = 61;
const EOPNOTSUPP = 95;

/** Linux dev_t for (major, minor), with the same bit layout as glibc's gnu_dev_makedev. */
export function makedev(major: number, minor: number): bigint {
  const maj = BigInt(major >>> 0);
  const min = BigInt(minor >>> 0);
  return ((maj & 0xfffn) << 8n)
    | ((maj & 0xfffff000n) << 32n)
    | (min & 0xffn)
    | ((min & 0xffffff00n) << 12n);
}

/** Inverse of makedev, for checking what was created (fs.Stats.rdev). */
export function splitDev(dev: number | bigint): { major: number; minor: number } {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & 0xfffff000n);
  const minor = (d & 0xffn) | ((d >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

type MknodCall = (path: string, mode: number, dev: bigint) => number;
let mknodCall: MknodCall | undefined;

function resolveMknod(): MknodCall {
  if (mknodCall) return mknodCall;
  try {
    const fn = libcFunc('int mknod(const char *path, uint32_t mode, uint64_t dev)');
    mknodCall = (path, mode, dev) => fn(path, mode, dev) as number;
  } catch {
    // glibc before 2.33 exports mknod only as __xmknod(version, ...); version 0 is
    // _MKNOD_VER_LINUX on every architecture we ship for.
    const fn = libcFunc('int __xmknod(int ver, const char *path, uint32_t mode, const uint64_t *dev)');
    mknodCall = (path, mode, dev) => fn(0, path, mode, BigUint64Array.of(dev)) as number;
  }
  return mknodCall;
}

/** mknod(2). `mode` includes the file type (S_IFCHR, S_IFBLK, S_IFIFO) and permission bits. */
export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  if (resolveMknod()(path, mode, makedev(major, minor)) !== 0) throw syscallError('mknod', path);
}

export function lsetxattr(path: string, name: string, value: Buffer): void {
  const fn = libcFunc('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)');
  if (fn(path, name, value, value.length, 0) !== 0) throw syscallError('lsetxattr', `${path} ${name}`);
}

/** The attribute's value, or undefined when the file has none or the file system has no xattrs. */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  const fn = libcFunc('intptr_t lgetxattr(const char *path, const char *name, _Out_ void *value, size_t size)');
  // Size first, then fetch; retry if the value grew in between (ERANGE).
  for (let attempt = 0; attempt < 5; attempt++) {
    const size = Number(fn(path, name, null, 0));
    if (size < 0) {
      const e = errno();
      if (e === ENODATA || e === EOPNOTSUPP) return undefined;
      throw syscallError('lgetxattr', `${path} ${name}`, e);
    }
    const buf = Buffer.alloc(size);
    if (size === 0) return buf;
    const got = Number(fn(path, name, buf, size));
    if (got >= 0) return buf.subarray(0, got);
    const e = errno();
    if (e === ERANGE) continue;
    if (e === ENODATA) return undefined;
    throw syscallError('lgetxattr', `${path} ${name}`, e);
  }
  throw syscallError('lgetxattr', `${path} ${name}`, ERANGE);
}

/** Names of the path's extended attributes ([] when the file system has none). */
export function llistxattr(path: string): string[] {
  const fn = libcFunc('intptr_t llistxattr(const char *path, _Out_ void *list, size_t size)');
  for (let attempt = 0; attempt < 5; attempt++) {
    const size = Number(fn(path, null, 0));
    if (size < 0) {
      const e = errno();
      if (e === EOPNOTSUPP) return [];
      throw syscallError('llistxattr', path, e);
    }
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = Number(fn(path, buf, size));
    if (got >= 0) return buf.subarray(0, got).toString('utf8').split('\0').filter((n) => n.length > 0);
    const e = errno();
    if (e !== ERANGE) throw syscallError('llistxattr', path, e);
  }
  throw syscallError('llistxattr', path, ERANGE);
}
