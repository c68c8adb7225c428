// v1 cpuset controller. A new v1 cpuset group starts with empty cpus and mems, and the
// kernel refuses tasks in it until both are set, so new groups copy their parent's.
import { dirname } from 'node:path';
import { readControl, writeControl, type CgroupOps } from '../cgroups/ops';
import type { CgroupLimits } from '../cgroups/types';

const FILES = ['cpuset.cpus', 'cpuset.mems'] as const;

/**
 * Fills empty cpus/mems of `dir` and of its ancestors below `mount`, top down, from the
 * level above. Only empty values are written, so existing groups keep their settings.
 */
export async function inheritCpuset(ops: CgroupOps, mount: string, dir: string): Promise<void> {
  const chain: string[] = [];
  for (let d = dir; d !== mount && d.startsWith(mount + '/'); d = dirname(d)) chain.unshift(d);
  for (const d of chain) {
    for (const file of FILES) {
      if ((await readControl(ops, d, file)) !== '') continue;
      const inherited = await readControl(ops, dirname(d), file);
      if (inherited) await writeControl(ops, d, file, inherited, file);
    }
  }
}

export async function applyCpusetLimits(ops: CgroupOps, dir: string, limits: CgroupLimits): Promise<void> {
  if (limits.cpusetCpus?.trim()) await writeControl(ops, dir, 'cpuset.cpus', limits.cpusetCpus.trim(), 'cpuset-cpus');
  if (limits.cpusetMems?.trim()) await writeControl(ops, dir, 'cpuset.mems', limits.cpusetMems.trim(), 'cpuset-mems');
}

export async function readEffectiveCpus(ops: CgroupOps, dir: string): Promise<string | undefined> {
  return (await readControl(ops, dir, 'cpuset.effective_cpus')) || (await readControl(ops, dir, 'cpuset.cpus')) || undefined;
}
