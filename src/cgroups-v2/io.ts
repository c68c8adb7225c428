// v2 io controller: Docker's blkio weight. With the BFQ scheduler the weight that counts is
// io.bfq.weight, which takes the blkio range as is; otherwise io.weight on its 1..10000 scale.
import { join } from 'node:path';
import { writeControl, type CgroupOps } from '../cgroups/ops';
import type { CgroupLimits } from '../cgroups/types';

/** Maps blkio weights (10..1000) onto io.weight (1..10000), as runc does. */
export function ioWeightFromBlkioWeight(weight: number): number {
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

export async function applyIoWeight(ops: CgroupOps, dir: string, limits: CgroupLimits): Promise<void> {
  if (!limits.blkioWeight || limits.blkioWeight <= 0) return;
  if (await ops.exists(join(dir, 'io.bfq.weight'))) {
    await writeControl(ops, dir, 'io.bfq.weight', limits.blkioWeight, 'blkio-weight');
  } else {
    await writeControl(ops, dir, 'io.weight', ioWeightFromBlkioWeight(limits.blkioWeight), 'blkio-weight');
  }
}
