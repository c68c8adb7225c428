// v1 cpu and cpuacct controllers (often co-mounted as cpu,cpuacct): shares, CFS bandwidth
// and the usage counter.
import type { CgroupOps } from '../cgroups/ops';
import { readNumber, writeControl } from '../cgroups/ops';
import { cpuBandwidth } from '../cgroups/limits';
import type { CgroupLimits } from '../cgroups/types';

export async function applyCpuLimits(ops: CgroupOps, dir: string, limits: CgroupLimits): Promise<void> {
  if (limits.cpuShares && limits.cpuShares > 0) await writeControl(ops, dir, 'cpu.shares', limits.cpuShares, 'cpu-shares');
  const bandwidth = cpuBandwidth(limits);
  if (!bandwidth) return;
  // Period first: the quota is checked against the period in force when it is written.
  if (bandwidth.period !== undefined) await writeControl(ops, dir, 'cpu.cfs_period_us', bandwidth.period, 'cpu-period');
  if (bandwidth.quota !== undefined) await writeControl(ops, dir, 'cpu.cfs_quota_us', bandwidth.quota, bandwidth.quota > 0 ? 'cpu quota' : 'removing the cpu quota');
}

/** Total CPU time of the group in nanoseconds (cpuacct.usage). */
export async function readCpuUsageNanos(ops: CgroupOps, cpuacctDir: string): Promise<number> {
  return await readNumber(ops, cpuacctDir, 'cpuacct.usage') ?? 0;
}
