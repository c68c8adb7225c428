// The cgroup entry points for the engine: detect the host's layout once, then make a
// manager for it. v1 (legacy and hybrid hosts), v2 (unified) and 'none' share one interface.
import { CgroupV1Manager } from '../cgroups-v1/manager';
import { CgroupV2Manager } from '../cgroups-v2/manager';
import { NoCgroupManager } from './none';
import { nodeCgroupOps, type CgroupOps } from './ops';
import type { CgroupManager, CgroupSetup } from './types';

export { detectCgroups, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC, DEFAULT_CGROUP_ROOT, type DetectOptions } from './detect';
export { DEFAULT_DEVICE_RULES, DEFAULT_CPU_PERIOD_US, MIN_MEMORY_BYTES, requestedLimitKeys, validateLimits } from './limits';
export { nodeCgroupOps, type CgroupOps } from './ops';
export type * from './types';

export const DEFAULT_CGROUP_PARENT = 'berth';

export interface CgroupManagerOptions {
  /** Group under each hierarchy's root that holds the container groups; default 'berth'. */
  parent?: string;
  /** File operations; tests pass fakes that emulate cgroupfs in a fixture directory. */
  ops?: CgroupOps;
  /** Where /proc is, for system_cpu_usage; default /proc. */
  procRoot?: string;
}

export function createCgroupManager(setup: CgroupSetup, opts: CgroupManagerOptions = {}): CgroupManager {
  const options = { parent: opts.parent ?? DEFAULT_CGROUP_PARENT, ops: opts.ops ?? nodeCgroupOps, procRoot: opts.procRoot ?? '/proc' };
  switch (setup.version) {
    case 1: return new CgroupV1Manager(setup, options);
    case 2: return new CgroupV2Manager(setup, options);
    default: return new NoCgroupManager(setup);
  }
}
