// Hosts without cgroups (small-flash OpenWrt builds): containers without limits still run;
// any limit is refused with a clear EUNSUPPORTED rather than silently ignored.
import { totalmem } from 'node:os';
import { BerthError } from '../util/errors';
import { checkGroupName, checkLimits, emptyStats, supportReport } from './common';
import { hostOnlineCpus } from '../host/proc-stat';
import type { CgroupLimits, CgroupManager, CgroupSetup, CgroupStats, CgroupSupport, ContainerCgroup, LimitKey } from './types';

const DEVICES_NOTE = 'device rules are not enforced: this host has no cgroups (the helper still creates only the listed device nodes)';

export class NoCgroupManager implements CgroupManager {
  constructor(readonly setup: CgroupSetup) {}

  supports(keys: readonly LimitKey[]): CgroupSupport {
    return supportReport(keys, () => false, DEVICES_NOTE, () => 'no cgroups mounted');
  }

  async create(id: string, limits: CgroupLimits): Promise<ContainerCgroup> {
    checkGroupName(id);
    checkLimits(limits, (keys) => this.supports(keys));
    return new NoCgroup(id, (keys) => this.supports(keys));
  }

  async open(id: string): Promise<ContainerCgroup> {
    checkGroupName(id);
    return new NoCgroup(id, (keys) => this.supports(keys));
  }

  async listOwned(): Promise<string[]> { return []; }
}

/** Stands in for a cgroup: nothing to write, nothing to remove; the engine tracks the pid itself. */
class NoCgroup implements ContainerCgroup {
  constructor(readonly id: string, private readonly supports: (keys: readonly LimitKey[]) => CgroupSupport) {}
  procsFiles(): string[] { return []; }
  async apply(limits: CgroupLimits): Promise<void> { checkLimits(limits, this.supports); }
  async stats(): Promise<CgroupStats> { return emptyStats(hostOnlineCpus(), totalmem()); }
  async oomKilled(): Promise<boolean> { return false; }
  async freeze(): Promise<void> { throw new BerthError('EUNSUPPORTED', 'pausing requested but this host has no cgroups mounted (no freezer)'); }
  async thaw(): Promise<void> { throw new BerthError('EUNSUPPORTED', 'unpausing requested but this host has no cgroups mounted (no freezer)'); }
  async pids(): Promise<number[]> { return []; }
  async killAll(): Promise<void> { /* no group to find processes by: the engine signals the pid it knows */ }
  async remove(): Promise<void> { /* nothing was created */ }
}
