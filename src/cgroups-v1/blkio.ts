// v1 blkio controller: the proportional weight. CFQ offered blkio.weight; kernels since 5.0
// have only BFQ, whose file is blkio.bfq.weight with the same 10..1000 range in use here.
import { join } from 'node:path';
import { writeControl, type CgroupOps } from '../cgroups/ops';
import type { CgroupLimits } from '../cgroups/types';

export async function applyBlkioWeight(ops: CgroupOps, dir: string, limits: CgroupLimits): Promise<void> {
  if (!limits.blkioWeight || limits.blkioWeight <= 0) return;
  const file = await ops.exists(join(dir, 'blkio.weight')) ? 'blkio.weight' : 'blkio.bfq.weight';
  await writeControl(ops, dir, file, limits.blkioWeight, 'blkio-weight');
}
