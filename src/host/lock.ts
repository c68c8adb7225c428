// The data-root lock: one daemon per data root. flock() rather than a pid file alone,
// because the kernel drops the lock when the holder dies, so a SIGKILLed or power-cut
// daemon never leaves a lock that blocks the next start.
import { openSync, closeSync, ftruncateSync, writeSync, readFileSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { libcFunc, errno, syscallError } from './libc';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
// EWOULDBLOCK equals EAGAIN (11) on every Linux architecture we target, MIPS included.
const EWOULDBLOCK = 11;
const EINTR = 4;

export const LOCK_FILE_NAME = 'berth.lock';

export interface DataRootLock {
  readonly path: string;
  release(): void;
}

function flock(fd: number, operation: number): number {
  return libcFunc('int flock(int fd, int operation)')(fd, operation) as number;
}

/** The pid recorded by the current holder, if the file holds one. */
export function readLockHolderPid(lockPath: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock on <dataRoot>/berth.lock without waiting and records our pid in it.
 * Throws ELOCKED naming the holder's pid when another process has it.
 */
export function lockDataRoot(dataRoot: string, pid = process.pid): DataRootLock {
  const path = join(dataRoot, LOCK_FILE_NAME);
  // Node opens with O_CLOEXEC, so helpers the daemon spawns never inherit the lock.
  const fd = openSync(path, fsc.O_RDWR | fsc.O_CREAT, 0o600);
  let rc: number;
  let err = 0;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
    if (rc !== 0) err = errno();
  } while (rc !== 0 && err === EINTR);
  if (rc !== 0) {
    closeSync(fd);
    if (err === EWOULDBLOCK) {
      const holder = readLockHolderPid(path);
      throw new BerthError('ELOCKED', `data root ${dataRoot} is in use by another daemon (pid ${holder ?? 'unknown'})`);
    }
    throw new BerthError('EINTERNAL', `cannot lock ${path}`, { cause: syscallError('flock', path, err) });
  }
  // Only the holder writes, so truncate-then-write cannot interleave with another writer.
  ftruncateSync(fd, 0);
  writeSync(fd, `${pid}\n`, 0);

  let held = true;
  return {
    path,
    release(): void {
      if (!held) return;
      held = false;
      try { ftruncateSync(fd, 0); } catch { /* the lock matters, not the pid text */ }
      flock(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}
