// v2 memory controller: memory.max, memory.swap.max (swap alone, where Docker's
// --memory-swap is memory plus swap), memory.events for OOM kills.
import { join } from 'node:path';
import { memoryPlusSwap } from '../cgroups/limits';
import { readKeyed, readNumber, writeControl, type CgroupOps } from '../cgroups/ops';
import type { CgroupLimits, CgroupStats } from '../cgroups/types';
import { BerthError } from '../util/errors';

/** Docker's --memory-swap (memory + swap, -1 unlimited) as memory.swap.max. */
export function swapMaxValue(memory: number | undefined, memoryPlusSwapBytes: number): string {
  if (memoryPlusSwapBytes === -1) return 'max';
  return String(Math.max(0, memoryPlusSwapBytes - (memory ?? 0)));
}

export async function applyMemoryLimits(ops: CgroupOps, dir: string, limits: CgroupLimits, phase: 'create' | 'update'): Promise<void> {
  const memory = limits.memory && limits.memory > 0 ? limits.memory : undefined;
  // Swap first, as runc does: lowering memory.max makes the kernel reclaim at once, and
  // under the old swap.max it could push out more than the new limit allows (pages
  // already in swap stay there when swap.max drops later).
  const total = memoryPlusSwap(limits, phase);
  if (total !== undefined) {
    if (await ops.exists(join(dir, 'memory.swap.max'))) {
      await writeControl(ops, dir, 'memory.swap.max', swapMaxValue(memory, total), 'memory-swap limit');
    } else if (limits.memorySwap !== undefined && limits.memorySwap > 0) {
      // Kernels without swap support have no memory.swap.max; only an explicit request fails.
      throw new BerthError('EUNSUPPORTED', 'memory-swap limit requested but this host\'s memory cgroup has no swap control (memory.swap.max)');
    }
  }
  if (memory !== undefined) await writeControl(ops, dir, 'memory.max', memory, 'memory limit');
}

export async function readMemoryStats(ops: CgroupOps, dir: string): Promise<Omit<CgroupStats['memory'], 'limit'> & { limit?: number }> {
  const stat = await readKeyed(ops, dir, 'memory.stat');
  const events = await readKeyed(ops, dir, 'memory.events');
  return {
    usage: await readNumber(ops, dir, 'memory.current') ?? 0,
    limit: await readNumber(ops, dir, 'memory.max'),
    cache: stat.file,
    // Times the group hit memory.max: the closest v2 has to v1's failcnt.
    failcnt: events.max,
    stat,
  };
}

export async function readOomKilled(ops: CgroupOps, dir: string): Promise<boolean> {
  return ((await readKeyed(ops, dir, 'memory.events')).oom_kill ?? 0) > 0;
}
