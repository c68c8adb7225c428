// v1 freezer controller: freezer.state. FREEZING is a transient state; a task stuck in an
// uninterruptible wait can hold it there, so freezing polls and re-asks with a deadline.
import { readControl, writeControl, type CgroupOps } from '../cgroups/ops';
import { BerthError } from '../util/errors';

export async function readFreezerState(ops: CgroupOps, dir: string): Promise<string | undefined> {
  return readControl(ops, dir, 'freezer.state');
}

export async function freezeGroup(ops: CgroupOps, dir: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (attempt % 10 === 0) await writeControl(ops, dir, 'freezer.state', 'FROZEN', 'pausing');
    if (await readFreezerState(ops, dir) === 'FROZEN') return;
    if (Date.now() >= deadline) {
      await thawGroup(ops, dir);
      throw new BerthError('EINTERNAL', `the processes in ${dir} did not freeze within ${timeoutMs} ms`);
    }
    await ops.sleep(10);
  }
}

export async function thawGroup(ops: CgroupOps, dir: string): Promise<void> {
  await writeControl(ops, dir, 'freezer.state', 'THAWED', 'unpausing');
}
