// v2 pids controller: same files as v1 (pids.max with "max" for unlimited, pids.current).
import { readNumber, writeControl, type CgroupOps } from '../cgroups/ops';
import type { CgroupLimits, CgroupStats } from '../cgroups/types';

export async function applyPidsLimit(ops: CgroupOps, dir: string, limits: CgroupLimits): Promise<void> {
  if (limits.pidsLimit === undefined) return;
  await writeControl(ops, dir, 'pids.max', limits.pidsLimit > 0 ? limits.pidsLimit : 'max', 'pids limit');
}

export async function readPidsStats(ops: CgroupOps, dir: string): Promise<CgroupStats['pids']> {
  return { current: await readNumber(ops, dir, 'pids.current') ?? 0, limit: await readNumber(ops, dir, 'pids.max') };
}
