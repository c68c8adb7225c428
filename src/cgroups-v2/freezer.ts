// v2 freezer: cgroup.freeze (kernel 5.2+). The write starts freezing; cgroup.events says
// "frozen 1" once every task has stopped.
import { readControl, readKeyed, writeControl, type CgroupOps } from '../cgroups/ops';
import { BerthError } from '../util/errors';

async function setFrozen(ops: CgroupOps, dir: string, frozen: boolean, timeoutMs: number): Promise<void> {
  await writeControl(ops, dir, 'cgroup.freeze', frozen ? 1 : 0, frozen ? 'pausing' : 'unpausing');
  const deadline = Date.now() + timeoutMs;
  while ((await readKeyed(ops, dir, 'cgroup.events')).frozen !== (frozen ? 1 : 0)) {
    if (Date.now() >= deadline) {
      if (frozen) await writeControl(ops, dir, 'cgroup.freeze', 0, 'unpausing');
      throw new BerthError('EINTERNAL', `the processes in ${dir} did not ${frozen ? 'freeze' : 'thaw'} within ${timeoutMs} ms`);
    }
    await ops.sleep(10);
  }
}

export function freezeGroup(ops: CgroupOps, dir: string, timeoutMs = 2000): Promise<void> {
  return setFrozen(ops, dir, true, timeoutMs);
}

export function thawGroup(ops: CgroupOps, dir: string, timeoutMs = 2000): Promise<void> {
  return setFrozen(ops, dir, false, timeoutMs);
}

/** undefined when the kernel has no cgroup.freeze. */
export async function readFrozen(ops: CgroupOps, dir: string): Promise<boolean | undefined> {
  const value = await readControl(ops, dir, 'cgroup.freeze');
  return value === undefined ? undefined : value === '1';
}
