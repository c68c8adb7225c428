// v2 cpuset controller. Unlike v1, an empty cpuset.cpus means "inherit", so nothing needs copying.
import { readControl, writeControl, type CgroupOps } from '../cgroups/ops';
import type { CgroupLimits } from '../cgroups/types';

export async function applyCpusetLimits(ops: CgroupOps, dir: string, limits: CgroupLimits): Promise<void> {
  if (limits.cpusetCpus?.trim()) await writeControl(ops, dir, 'cpuset.cpus', limits.cpusetCpus.trim(), 'cpuset-cpus');
  if (limits.cpusetMems?.trim()) await writeControl(ops, dir, 'cpuset.mems', limits.cpusetMems.trim(), 'cpuset-mems');
}

export async function readEffectiveCpus(ops: CgroupOps, dir: string): Promise<string | undefined> {
  return (await readControl(ops, dir, 'cpuset.cpus.effective')) || undefined;
}
