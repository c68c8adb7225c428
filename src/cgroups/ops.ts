// cgroupfs is driven by plain file operations. They go through this small interface so
// unit tests can run the managers against fixture directories (which have no kernel to
// create interface files on mkdir) and record what was written.
import { promises as fsp, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../util/errors';

export interface CgroupOps {
  readFile(path: string): Promise<string>;
  /** Writes into an existing interface file; never creates one. */
  writeFile(path: string, value: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** Creates one directory level; fails with EEXIST when it is there. */
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  /** Names of the subdirectories (child groups) of `path`. */
  listDirs(path: string): Promise<string[]>;
  kill(pid: number, signal: NodeJS.Signals | number): void;
  sleep(ms: number): Promise<void>;
}

export const nodeCgroupOps: CgroupOps = {
  readFile: (path) => fsp.readFile(path, 'utf8'),
  async writeFile(path, value) {
    // O_TRUNC without O_CREAT, as runc does: a missing file must fail, not be created, and
    // the kernel takes each write() as one command, so the value goes in a single write.
    const fh = await fsp.open(path, fsc.O_WRONLY | fsc.O_TRUNC);
    try { await fh.write(value); } finally { await fh.close(); }
  },
  async exists(path) {
    try { await fsp.access(path); return true; } catch { return false; }
  },
  mkdir: (path) => fsp.mkdir(path),
  rmdir: (path) => fsp.rmdir(path),
  async listDirs(path) {
    const entries = await fsp.readdir(path, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  },
  kill: (pid, signal) => { process.kill(pid, signal); },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

/**
 * Writes one value into a cgroup interface file. `what` names the limit for messages:
 * a missing file means the host cannot enforce it (EUNSUPPORTED); a refused value is the
 * caller's (EINVAL), e.g. a memory limit below what the group already uses.
 */
export async function writeControl(ops: CgroupOps, dir: string, file: string, value: string | number, what: string): Promise<void> {
  const path = join(dir, file);
  try {
    await ops.writeFile(path, String(value));
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') throw new BerthError('EUNSUPPORTED', `${what} requested but this host's cgroup has no ${file}`, { cause: err });
    if (code === 'EINVAL' || code === 'EBUSY' || code === 'ERANGE' || code === 'EOVERFLOW') {
      throw new BerthError('EINVAL', `the kernel refused ${what}: ${file} = ${value} (${code})`, { cause: err });
    }
    throw new BerthError('EINTERNAL', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Contents of an interface file without the trailing newline, or undefined when it is missing. */
export async function readControl(ops: CgroupOps, dir: string, file: string): Promise<string | undefined> {
  try {
    return (await ops.readFile(join(dir, file))).trim();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENODEV') return undefined;
    throw new BerthError('EINTERNAL', `cannot read ${join(dir, file)}: ${(err as Error).message}`, { cause: err });
  }
}

/** A number from a single-value file; 'max' and missing files give undefined. */
export async function readNumber(ops: CgroupOps, dir: string, file: string): Promise<number | undefined> {
  const text = await readControl(ops, dir, file);
  if (text === undefined || text === '' || text === 'max') return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** Parses "key value" lines (memory.stat, memory.events, cpu.stat, memory.oom_control). */
export function parseKeyedValues(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && Number.isFinite(Number(value))) out[key] = Number(value);
  }
  return out;
}

export async function readKeyed(ops: CgroupOps, dir: string, file: string): Promise<Record<string, number>> {
  return parseKeyedValues(await readControl(ops, dir, file));
}

/** Pids listed in a cgroup.procs file. */
export async function readProcs(ops: CgroupOps, dir: string): Promise<number[]> {
  const text = await readControl(ops, dir, 'cgroup.procs');
  return (text ?? '').split('\n').map((l) => Number(l.trim())).filter((n) => Number.isInteger(n) && n > 0);
}
