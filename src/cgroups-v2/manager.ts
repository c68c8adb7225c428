// cgroup v2 (unified hosts): one directory per container, <mount>/<parent>/<id>. The
// controllers a container needs must be enabled in cgroup.subtree_control of every level
// above it, or their interface files never appear in the container's directory.
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { ContainerGroupBase, checkGroupName, isGroupName, checkLimits, controllerForLimit, parentSegments, supportReport } from '../cgroups/common';
import { countCpuList } from '../cgroups/limits';
import { readControl, readProcs, writeControl, type CgroupOps } from '../cgroups/ops';
import { hostOnlineCpus, readSystemCpuNanos } from '../host/proc-stat';
import type { CgroupLimits, CgroupManager, CgroupSetup, CgroupStats, CgroupSupport, ContainerCgroup, LimitKey } from '../cgroups/types';
import { applyCpuLimits, readCpuUsageNanos } from './cpu';
import { applyCpusetLimits, readEffectiveCpus } from './cpuset';
import { freezeGroup, readFrozen, thawGroup } from './freezer';
import { applyIoWeight } from './io';
import { applyMemoryLimits, readMemoryStats, readOomKilled } from './memory';
import { applyPidsLimit, readPidsStats } from './pids';

/** Controllers enabled for containers when the host offers them. */
export const V2_USED_CONTROLLERS = ['cpu', 'cpuset', 'io', 'memory', 'pids'] as const;

/**
 * cgroup v2 filters devices with an eBPF program attached to the group, not with files.
 * berth does not load one: the native helper creates only Docker's device nodes (plus
 * --device ones), and the container has no CAP_MKNOD-free way to reach others.
 */
export const V2_DEVICES_NOTE = 'device rules are not enforced on cgroup v2 (that needs an eBPF device program, which berth does not load); the helper creates only the listed device nodes';

export interface V2ManagerOptions {
  parent: string;
  ops: CgroupOps;
  procRoot: string;
}

function v2ControllerForLimit(key: LimitKey): string {
  const name = controllerForLimit(key);
  return name === 'blkio' ? 'io' : name;
}

export class CgroupV2Manager implements CgroupManager {
  private readonly parent: string[];
  private readonly mount: string;
  /** Controllers the last parent set-up could not enable, with why (shown instead of "no such file"). */
  private blocked = new Map<string, string>();

  constructor(readonly setup: CgroupSetup, private readonly opts: V2ManagerOptions) {
    if (!setup.v2Mount) throw new BerthError('EINTERNAL', 'a cgroup v2 manager needs the cgroup2 mount point');
    this.mount = setup.v2Mount;
    this.parent = parentSegments(opts.parent);
  }

  supports(keys: readonly LimitKey[]): CgroupSupport {
    return this.supportFor(keys, this.blocked);
  }

  private supportFor(keys: readonly LimitKey[], blocked: ReadonlyMap<string, string>): CgroupSupport {
    const usable = (controller: string): boolean => this.setup.v2Controllers.includes(controller) && !blocked.has(controller);
    return supportReport(keys, (key) => usable(v2ControllerForLimit(key)), V2_DEVICES_NOTE, (missing) => {
      const controllers = [...new Set(missing.map(v2ControllerForLimit))];
      const reasons = [...new Set(controllers.map((c) => blocked.get(c)).filter((r): r is string => !!r))];
      return reasons.length ? reasons.join('; ') : `no ${controllers.join('/')} controller in its cgroup2 hierarchy`;
    });
  }

  private parentDir(): string {
    return join(this.mount, ...this.parent);
  }

  async create(id: string, limits: CgroupLimits): Promise<ContainerCgroup> {
    checkGroupName(id);
    // What the host offers first; what the parent chain refused is known after ensureParent
    // (an earlier refusal may have been fixed since, so it is not held against this one).
    checkLimits(limits, (keys) => this.supportFor(keys, new Map()));
    const { ops } = this.opts;
    await this.ensureParent();
    checkLimits(limits, (keys) => this.supports(keys));
    const dir = join(this.parentDir(), id);
    try {
      await ops.mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new BerthError('ECONFLICT', `a cgroup for ${id} already exists at ${dir}`, { cause: err });
      throw new BerthError('EINTERNAL', `cannot create cgroup ${dir}: ${(err as Error).message}`, { cause: err });
    }
    const group = new V2ContainerGroup(id, ops, dir, this.opts.procRoot, (keys) => this.supports(keys));
    try {
      await group.write(limits, 'create');
      return group;
    } catch (err) {
      await ops.rmdir(dir).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Creates the parent chain and turns on our controllers at each level. A refused enable
   * only matters to containers whose limits need that controller, so it is recorded
   * (see supports()) rather than thrown.
   */
  private async ensureParent(): Promise<void> {
    const { ops } = this.opts;
    // Swapped in whole at the end so a concurrent create never sees half a set-up.
    const blocked = new Map<string, string>();
    let dir = this.mount;
    await this.enableControllers(dir, blocked);
    for (const segment of this.parent) {
      dir = join(dir, segment);
      try { await ops.mkdir(dir); } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new BerthError('EINTERNAL', `cannot create cgroup ${dir}: ${(err as Error).message}`, { cause: err });
      }
      await this.enableControllers(dir, blocked);
    }
    this.blocked = blocked;
  }

  private async enableControllers(dir: string, blocked: Map<string, string>): Promise<void> {
    const { ops } = this.opts;
    // Only the root may both hold processes and delegate. Below it the kernel refuses memory
    // and io there, and enabling cpu, cpuset or pids makes the level a thread root whose
    // new children are "domain invalid" and take no processes: the container could not start.
    if (dir !== this.mount) {
      const pids = await readProcs(ops, dir);
      if (pids.length) {
        throw new BerthError('ECONFLICT', `cannot set up container cgroups under ${dir}: it holds processes (pids ${pids.join(' ')}), and a cgroup v2 group with processes of its own cannot give controllers to child groups; berth's cgroup parent must hold no processes (move them out or use another parent)`);
      }
    }
    const available = ((await readControl(ops, dir, 'cgroup.controllers')) ?? '').split(/\s+/);
    const enabled = ((await readControl(ops, dir, 'cgroup.subtree_control')) ?? '').split(/\s+/);
    for (const controller of V2_USED_CONTROLLERS) {
      if (blocked.has(controller)) continue;
      if (!available.includes(controller)) {
        // Not delegated to this level: our enable failed above, or the root's owner withholds it.
        if (dir !== this.mount && this.setup.v2Controllers.includes(controller)) blocked.set(controller, `the ${controller} controller not delegated to ${dir}`);
        continue;
      }
      if (enabled.includes(controller)) continue;
      try {
        await ops.writeFile(join(dir, 'cgroup.subtree_control'), `+${controller}`);
      } catch (err) {
        blocked.set(controller, `the ${controller} controller refused in ${join(dir, 'cgroup.subtree_control')} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      }
    }
  }

  async open(id: string): Promise<ContainerCgroup> {
    checkGroupName(id);
    const dir = join(this.parentDir(), id);
    if (!await this.opts.ops.exists(dir)) throw new BerthError('ENOTFOUND', `no cgroup for container ${id}`);
    return new V2ContainerGroup(id, this.opts.ops, dir, this.opts.procRoot, (keys) => this.supports(keys));
  }

  async listOwned(): Promise<string[]> {
    const names = await this.opts.ops.listDirs(this.parentDir()).catch(() => [] as string[]);
    return names.filter(isGroupName).sort();
  }
}

export class V2ContainerGroup extends ContainerGroupBase {
  constructor(
    id: string,
    ops: CgroupOps,
    private readonly dir: string,
    private readonly procRoot: string,
    private readonly supports: (keys: readonly LimitKey[]) => CgroupSupport,
  ) {
    super(id, ops, [dir]);
  }

  procsFiles(): string[] {
    return [join(this.dir, 'cgroup.procs')];
  }

  async apply(limits: CgroupLimits): Promise<void> {
    checkLimits(limits, this.supports);
    await this.write(limits, 'update');
  }

  async write(limits: CgroupLimits, phase: 'create' | 'update'): Promise<void> {
    const { ops, dir } = this;
    await applyMemoryLimits(ops, dir, limits, phase);
    await applyCpuLimits(ops, dir, limits);
    await applyCpusetLimits(ops, dir, limits);
    await applyPidsLimit(ops, dir, limits);
    await applyIoWeight(ops, dir, limits);
  }

  async stats(): Promise<CgroupStats> {
    const { ops, dir } = this;
    const hostMemory = totalmem();
    const memory = await readMemoryStats(ops, dir);
    const cpus = await readEffectiveCpus(ops, dir);
    return {
      memory: { ...memory, limit: memory.limit !== undefined && memory.limit < hostMemory ? memory.limit : hostMemory },
      cpu: {
        usageNanos: await readCpuUsageNanos(ops, dir),
        systemNanos: await readSystemCpuNanos(this.procRoot),
        onlineCpus: cpus ? countCpuList(cpus) : hostOnlineCpus(),
      },
      pids: await ops.exists(join(dir, 'pids.current')) ? await readPidsStats(ops, dir) : { current: (await this.pids()).length },
    };
  }

  oomKilled(): Promise<boolean> { return readOomKilled(this.ops, this.dir); }
  freeze(): Promise<void> { return freezeGroup(this.ops, this.dir); }
  thaw(): Promise<void> { return thawGroup(this.ops, this.dir); }
  protected isFrozen(): Promise<boolean | undefined> { return readFrozen(this.ops, this.dir); }

  /** cgroup.kill (kernel 5.14+) SIGKILLs the whole subtree at once, with no fork race. */
  protected override async killAtOnce(): Promise<boolean> {
    if (!await this.ops.exists(join(this.dir, 'cgroup.kill'))) return false;
    await writeControl(this.ops, this.dir, 'cgroup.kill', 1, 'killing the container');
    return true;
  }
}
