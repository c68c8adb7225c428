// v2 cpu controller: cpu.weight (from Docker's shares) and cpu.max "quota period".
import { cpuBandwidth } from '../cgroups/limits';
import { readControl, readKeyed, writeControl, type CgroupOps } from '../cgroups/ops';
import type { CgroupLimits } from '../cgroups/types';

/** Maps v1 shares (2..262144) onto v2 weights (1..10000), as runc and crun do. */
export function cpuWeightFromShares(shares: number): number {
  const clamped = Math.min(Math.max(shares, 2), 262144);
  return 1 + Math.floor(((clamped - 2) * 9999) / 262142);
}

export async function applyCpuLimits(ops: CgroupOps, dir: string, limits: CgroupLimits): Promise<void> {
  if (limits.cpuShares && limits.cpuShares > 0) await writeControl(ops, dir, 'cpu.weight', cpuWeightFromShares(limits.cpuShares), 'cpu-shares');
  const bandwidth = cpuBandwidth(limits);
  if (!bandwidth) return;
  let quota: string | undefined = bandwidth.quota === undefined ? undefined : bandwidth.quota < 0 ? 'max' : String(bandwidth.quota);
  if (bandwidth.period === undefined) {
    // A lone value updates the quota and keeps the period.
    await writeControl(ops, dir, 'cpu.max', quota!, 'cpu quota');
    return;
  }
  quota ??= (await readControl(ops, dir, 'cpu.max'))?.split(/\s+/)[0] ?? 'max';
  await writeControl(ops, dir, 'cpu.max', `${quota} ${bandwidth.period}`, 'cpu quota');
}

export async function readCpuUsageNanos(ops: CgroupOps, dir: string): Promise<number> {
  return ((await readKeyed(ops, dir, 'cpu.stat')).usage_usec ?? 0) * 1000;
}
