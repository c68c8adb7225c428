// The one place that loads libc through koffi. Other src/host/ modules declare the
// functions they need from here. Loaded lazily: the CLI never touches it, and a
// machine without koffi's prebuilt binary (MIPS) fails only when a syscall is needed.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BerthError } from '../util/errors';

type Koffi = typeof import('koffi');
let koffiModule: Koffi | undefined;
let libcHandle: ReturnType<Koffi['load']> | undefined;

export function koffi(): Koffi {
  if (!koffiModule) {
    try {
      // A single binary (Node SEA) cannot load koffi's .node from its blob: the build ships it
      // in koffi/<triplet>/ beside the executable, where koffi looks when process.resourcesPath
      // is set (its hook for packaged apps).
      const execDir = dirname(process.execPath);
      const proc = process as NodeJS.Process & { resourcesPath?: string };
      if (proc.resourcesPath === undefined && existsSync(join(execDir, 'koffi'))) proc.resourcesPath = execDir;
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      koffiModule = require('koffi') as Koffi;
    } catch (err) {
      throw new BerthError('EUNSUPPORTED', `native calls are unavailable on this machine (koffi): ${(err as Error).message}`, { cause: err });
    }
  }
  return koffiModule;
}

const LIBC_CANDIDATES = ['libc.so.6', 'libc.so', '/lib/ld-musl-x86_64.so.1', '/lib/ld-musl-aarch64.so.1', '/lib/ld-musl-armhf.so.1', '/lib/ld-musl-mipsel-sf.so.1', '/lib/ld-musl-mips-sf.so.1'];

export function libc(): ReturnType<Koffi['load']> {
  if (libcHandle) return libcHandle;
  const k = koffi();
  let lastErr: unknown;
  for (const name of LIBC_CANDIDATES) {
    try { libcHandle = k.load(name); return libcHandle; } catch (err) { lastErr = err; }
  }
  throw new BerthError('EUNSUPPORTED', `cannot load the C library: ${(lastErr as Error)?.message}`);
}

/** Declares a libc function once and caches it. `proto` is a C prototype string. */
const cache = new Map<string, (...args: any[]) => any>();
export function libcFunc(proto: string): (...args: any[]) => any {
  let fn = cache.get(proto);
  if (!fn) { fn = libc().func(proto) as (...args: any[]) => any; cache.set(proto, fn); }
  return fn;
}

/** errno of the last failed libc call on this thread. */
export function errno(): number {
  return koffi().errno();
}

const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 20: 'ENOTDIR', 22: 'EINVAL', 28: 'ENOSPC', 30: 'EROFS', 36: 'ENAMETOOLONG', 38: 'ENOSYS', 61: 'ENODATA', 95: 'EOPNOTSUPP' };

/** A Node-style error for a failed syscall, so callers can test err.code like fs errors. */
export function syscallError(call: string, target: string, e = errno()): NodeJS.ErrnoException {
  const name = ERRNO_NAMES[e] ?? `errno ${e}`;
  const err = new Error(`${call} ${target}: ${name}`) as NodeJS.ErrnoException;
  err.code = ERRNO_NAMES[e] ?? String(e);
  err.errno = -e;
  err.syscall = call;
  err.path = target;
  return err;
}
