// v1 memory controller: memory.limit_in_bytes and, with swap accounting, memory.memsw.*.
import { join } from 'node:path';
import { memoryPlusSwap } from '../cgroups/limits';
import { readKeyed, readNumber, writeControl, type CgroupOps } from '../cgroups/ops';
import type { CgroupLimits, CgroupStats } from '../cgroups/types';
import { BerthError } from '../util/errors';

const LIMIT = 'memory.limit_in_bytes';
const MEMSW = 'memory.memsw.limit_in_bytes';

export async function applyMemoryLimits(ops: CgroupOps, dir: string, limits: CgroupLimits, phase: 'create' | 'update'): Promise<void> {
  const memory = limits.memory && limits.memory > 0 ? limits.memory : undefined;
  let memsw = memoryPlusSwap(limits, phase);
  // Without swap accounting (swapaccount=0, or no swap support) there is no memsw file.
  if (memsw !== undefined && !await ops.exists(join(dir, MEMSW))) {
    const explicit = limits.memorySwap !== undefined && limits.memorySwap > 0;
    if (explicit) throw new BerthError('EUNSUPPORTED', `memory-swap limit requested but this host's memory cgroup has no swap accounting (${MEMSW})`);
    memsw = undefined;
  }
  if (memsw === undefined) {
    if (memory !== undefined) await writeControl(ops, dir, LIMIT, memory, 'memory limit');
    return;
  }
  // The kernel keeps memsw >= memory at every step: raise memsw first, lower it last.
  const currentMemsw = await readNumber(ops, dir, MEMSW);
  const raising = memsw === -1 || currentMemsw === undefined || memsw >= currentMemsw;
  if (raising) await writeControl(ops, dir, MEMSW, memsw, 'memory-swap limit');
  if (memory !== undefined) await writeControl(ops, dir, LIMIT, memory, 'memory limit');
  if (!raising) await writeControl(ops, dir, MEMSW, memsw, 'memory-swap limit');
}

export async function readMemoryStats(ops: CgroupOps, dir: string): Promise<Omit<CgroupStats['memory'], 'limit'> & { limit?: number }> {
  const stat = await readKeyed(ops, dir, 'memory.stat');
  return {
    usage: await readNumber(ops, dir, 'memory.usage_in_bytes') ?? 0,
    limit: await readNumber(ops, dir, LIMIT),
    // total_* include child groups, which is what the container as a whole uses.
    cache: stat.total_cache ?? stat.cache,
    failcnt: await readNumber(ops, dir, 'memory.failcnt'),
    stat,
  };
}

/** The oom_kill counter in memory.oom_control (kernel 4.13+) counts kills in this group. */
export async function readOomKilled(ops: CgroupOps, dir: string): Promise<boolean> {
  const control = await readKeyed(ops, dir, 'memory.oom_control');
  return (control.oom_kill ?? 0) > 0;
}
