// cgroup v1 (legacy and hybrid hosts): one directory per hierarchy, <mount>/<parent>/<id>,
// in every hierarchy of a controller we use, so the container's processes can be counted,
// frozen and killed through any of them.
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { ContainerGroupBase, checkGroupName, isGroupName, checkLimits, parentSegments, supportReport, controllerForLimit } from '../cgroups/common';
import { DEFAULT_DEVICE_RULES, countCpuList } from '../cgroups/limits';
import type { CgroupOps } from '../cgroups/ops';
import { hostOnlineCpus, readSystemCpuNanos } from '../host/proc-stat';
import type { CgroupLimits, CgroupManager, CgroupSetup, CgroupStats, CgroupSupport, ContainerCgroup, LimitKey } from '../cgroups/types';
import { applyBlkioWeight } from './blkio';
import { applyCpuLimits, readCpuUsageNanos } from './cpu';
import { applyCpusetLimits, inheritCpuset, readEffectiveCpus } from './cpuset';
import { applyDeviceRules } from './devices';
import { freezeGroup, readFreezerState, thawGroup } from './freezer';
import { applyMemoryLimits, readMemoryStats, readOomKilled } from './memory';
import { applyPidsLimit, readPidsStats } from './pids';

/** The v1 controllers a container gets a directory in. */
export const V1_USED_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'cpuset', 'pids', 'blkio', 'devices', 'freezer'] as const;
type UsedController = typeof V1_USED_CONTROLLERS[number];

export interface V1ManagerOptions {
  parent: string;
  ops: CgroupOps;
  procRoot: string;
}

interface Hierarchy {
  mount: string;
  controllers: UsedController[];
}

const DEVICES_NOTE = 'device rules are not enforced: this host has no devices cgroup controller (the helper still creates only the listed device nodes)';

export class CgroupV1Manager implements CgroupManager {
  private readonly parent: string[];
  private readonly hierarchies: Hierarchy[];

  constructor(readonly setup: CgroupSetup, private readonly opts: V1ManagerOptions) {
    this.parent = parentSegments(opts.parent);
    // Co-mounted controllers (cpu,cpuacct) share one hierarchy and so one directory.
    const byMount = new Map<string, Hierarchy>();
    for (const controller of V1_USED_CONTROLLERS) {
      const mount = setup.v1Mounts[controller];
      if (!mount) continue;
      const h = byMount.get(mount) ?? { mount, controllers: [] };
      h.controllers.push(controller);
      byMount.set(mount, h);
    }
    this.hierarchies = [...byMount.values()];
  }

  supports(keys: readonly LimitKey[]): CgroupSupport {
    return supportReport(keys, (key) => Boolean(this.setup.v1Mounts[controllerForLimit(key)]), this.setup.v1Mounts.devices ? undefined : DEVICES_NOTE);
  }

  private parentDir(h: Hierarchy): string {
    return join(h.mount, ...this.parent);
  }

  async create(id: string, limits: CgroupLimits): Promise<ContainerCgroup> {
    checkGroupName(id);
    checkLimits(limits, (keys) => this.supports(keys));
    const { ops } = this.opts;
    const created: string[] = [];
    const paths: Partial<Record<UsedController, string>> = {};
    try {
      for (const h of this.hierarchies) {
        await this.ensureParent(h);
        const dir = join(this.parentDir(h), id);
        try {
          await ops.mkdir(dir);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new BerthError('ECONFLICT', `a cgroup for ${id} already exists at ${dir}`, { cause: err });
          throw new BerthError('EINTERNAL', `cannot create cgroup ${dir}: ${(err as Error).message}`, { cause: err });
        }
        created.push(dir);
        for (const c of h.controllers) paths[c] = dir;
        if (h.controllers.includes('cpuset')) await inheritCpuset(ops, h.mount, dir);
      }
      const group = new V1ContainerGroup(id, ops, paths, this.opts.procRoot, (keys) => this.supports(keys));
      await group.write({ ...limits, devices: limits.devices ?? [...DEFAULT_DEVICE_RULES] }, 'create');
      return group;
    } catch (err) {
      for (const dir of created.reverse()) await ops.rmdir(dir).catch(() => undefined);
      throw err;
    }
  }

  /** Creates the parent chain where missing; v1 cpuset parents also need cpus and mems. */
  private async ensureParent(h: Hierarchy): Promise<void> {
    const { ops } = this.opts;
    let dir = h.mount;
    for (const segment of this.parent) {
      dir = join(dir, segment);
      try { await ops.mkdir(dir); } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new BerthError('EINTERNAL', `cannot create cgroup ${dir}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (h.controllers.includes('cpuset')) await inheritCpuset(ops, h.mount, dir);
  }

  async open(id: string): Promise<ContainerCgroup> {
    checkGroupName(id);
    const paths: Partial<Record<UsedController, string>> = {};
    let found = false;
    for (const h of this.hierarchies) {
      const dir = join(this.parentDir(h), id);
      if (!await this.opts.ops.exists(dir)) continue;
      found = true;
      for (const c of h.controllers) paths[c] = dir;
    }
    if (!found) throw new BerthError('ENOTFOUND', `no cgroup for container ${id}`);
    return new V1ContainerGroup(id, this.opts.ops, paths, this.opts.procRoot, (keys) => this.supports(keys));
  }

  async listOwned(): Promise<string[]> {
    const ids = new Set<string>();
    for (const h of this.hierarchies) {
      const names = await this.opts.ops.listDirs(this.parentDir(h)).catch(() => [] as string[]);
      for (const name of names) if (isGroupName(name)) ids.add(name);
    }
    return [...ids].sort();
  }
}

export class V1ContainerGroup extends ContainerGroupBase {
  constructor(
    id: string,
    ops: CgroupOps,
    private readonly paths: Partial<Record<UsedController, string>>,
    private readonly procRoot: string,
    private readonly supports: (keys: readonly LimitKey[]) => CgroupSupport,
  ) {
    super(id, ops, [...new Set(Object.values(paths))]);
  }

  procsFiles(): string[] {
    return this.dirs.map((dir) => join(dir, 'cgroup.procs'));
  }

  async apply(limits: CgroupLimits): Promise<void> {
    checkLimits(limits, this.supports);
    await this.write(limits, 'update');
  }

  /** Writes limits into each controller's directory; unset keys are left alone. */
  async write(limits: CgroupLimits, phase: 'create' | 'update'): Promise<void> {
    const { ops, paths } = this;
    if (paths.memory) await applyMemoryLimits(ops, paths.memory, limits, phase);
    if (paths.cpu) await applyCpuLimits(ops, paths.cpu, limits);
    if (paths.cpuset) await applyCpusetLimits(ops, paths.cpuset, limits);
    if (paths.pids) await applyPidsLimit(ops, paths.pids, limits);
    if (paths.blkio) await applyBlkioWeight(ops, paths.blkio, limits);
    if (paths.devices && limits.devices) await applyDeviceRules(ops, paths.devices, limits.devices);
  }

  async stats(): Promise<CgroupStats> {
    const { ops, paths } = this;
    const hostMemory = totalmem();
    const memory = paths.memory ? await readMemoryStats(ops, paths.memory) : { usage: 0 };
    const cpus = paths.cpuset ? await readEffectiveCpus(ops, paths.cpuset) : undefined;
    return {
      // An unlimited group reports a huge number; Docker shows the host's memory instead.
      memory: { ...memory, limit: memory.limit !== undefined && memory.limit < hostMemory ? memory.limit : hostMemory },
      cpu: {
        usageNanos: paths.cpuacct ? await readCpuUsageNanos(ops, paths.cpuacct) : 0,
        systemNanos: await readSystemCpuNanos(this.procRoot),
        onlineCpus: cpus ? countCpuList(cpus) : hostOnlineCpus(),
      },
      pids: paths.pids ? await readPidsStats(ops, paths.pids) : { current: (await this.pids()).length },
    };
  }

  async oomKilled(): Promise<boolean> {
    return this.paths.memory ? readOomKilled(this.ops, this.paths.memory) : false;
  }

  private freezerDir(): string {
    if (!this.paths.freezer) throw new BerthError('EUNSUPPORTED', 'pausing requested but this host has no freezer cgroup controller');
    return this.paths.freezer;
  }

  async freeze(): Promise<void> { await freezeGroup(this.ops, this.freezerDir()); }
  async thaw(): Promise<void> { await thawGroup(this.ops, this.freezerDir()); }

  protected async isFrozen(): Promise<boolean | undefined> {
    if (!this.paths.freezer) return undefined;
    const state = await readFreezerState(this.ops, this.paths.freezer);
    return state === undefined ? undefined : state !== 'THAWED';
  }
}
