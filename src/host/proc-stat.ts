// /proc parsing lives in src/host. Host-wide CPU figures for the Docker stats API: system_cpu_usage is the host's total CPU
// time (the "cpu" line of /proc/stat), against which clients compute a container's share.
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

// /proc/stat counts in USER_HZ, which Linux fixes at 100 for user space on every architecture.
const NANOS_PER_TICK = 1e9 / 100;

/** Sums user, nice, system, idle, iowait, irq and softirq, as Docker does. */
export function parseSystemCpuNanos(procStat: string): number | undefined {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  const ticks = line.trim().split(/\s+/).slice(1, 8).map(Number);
  if (ticks.length < 7 || ticks.some((t) => !Number.isFinite(t))) return undefined;
  return ticks.reduce((a, b) => a + b, 0) * NANOS_PER_TICK;
}

export async function readSystemCpuNanos(procRoot = '/proc'): Promise<number | undefined> {
  try { return parseSystemCpuNanos(await readFile(join(procRoot, 'stat'), 'utf8')); } catch { return undefined; }
}

export function hostOnlineCpus(): number {
  return availableParallelism();
}
