// Behaviour both cgroup versions share: names, the remove/kill protocol, pid listing.
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { readProcs, type CgroupOps } from './ops';
import { requestedLimitKeys, validateLimits } from './limits';
import type { CgroupLimits, CgroupStats, CgroupSupport, ContainerCgroup, LimitKey, RemoveOptions } from './types';

// Ids become directory names under cgroupfs: no separators, no dot-dot, nothing exotic.
const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function isGroupName(name: string): boolean {
  return GROUP_NAME.test(name);
}

export function checkGroupName(id: string, what = 'container id'): void {
  if (!isGroupName(id)) throw new BerthError('EINVAL', `invalid ${what} for a cgroup: "${id}"`);
}

/** "berth" or "berth/sub": each segment must be a plain name. */
export function parentSegments(parent: string): string[] {
  const segments = parent.split('/').filter(Boolean);
  if (segments.length === 0) throw new BerthError('EINVAL', 'the cgroup parent must not be empty');
  for (const s of segments) checkGroupName(s, 'cgroup parent');
  return segments;
}

/**
 * Support report for limit keys, given which keys this host can enforce. Device rules are
 * never fatal: where no cgroup enforces them the helper's device list is the control.
 */
export function supportReport(keys: readonly LimitKey[], enforceable: (key: LimitKey) => boolean, devicesNote?: string, hostLacks?: (unsupported: LimitKey[]) => string): CgroupSupport {
  const unsupported: LimitKey[] = [];
  const notes: string[] = [];
  for (const key of new Set(keys)) {
    if (key === 'devices') { if (devicesNote) notes.push(devicesNote); continue; }
    if (!enforceable(key)) unsupported.push(key);
  }
  const report: CgroupSupport = { ok: unsupported.length === 0, unsupported, notes };
  if (unsupported.length) {
    const lacks = hostLacks?.(unsupported) ?? `no ${[...new Set(unsupported.map(controllerForLimit))].join('/')} cgroup controller`;
    report.message = `${unsupported.map(describeLimit).join(', ')} requested but this host has ${lacks}`;
  }
  return report;
}

/** Validates `limits` and throws EUNSUPPORTED naming what the host cannot enforce. */
export function checkLimits(limits: CgroupLimits, supports: (keys: readonly LimitKey[]) => CgroupSupport): void {
  validateLimits(limits);
  const report = supports(requestedLimitKeys(limits));
  if (!report.ok) throw new BerthError('EUNSUPPORTED', report.message!);
}

const LIMIT_NAMES: Record<LimitKey, string> = {
  memory: 'memory limit', memorySwap: 'memory-swap limit', cpuShares: 'cpu-shares', nanoCpus: 'cpus limit',
  cpuQuota: 'cpu-quota', cpuPeriod: 'cpu-period', cpusetCpus: 'cpuset-cpus', cpusetMems: 'cpuset-mems',
  pidsLimit: 'pids limit', blkioWeight: 'blkio-weight', devices: 'device rules',
};

export function describeLimit(key: LimitKey): string { return LIMIT_NAMES[key]; }

/** The controller that enforces a limit, named as v1 names them (v2 calls blkio "io"). */
export function controllerForLimit(key: LimitKey): string {
  switch (key) {
    case 'memory': case 'memorySwap': return 'memory';
    case 'cpuShares': case 'nanoCpus': case 'cpuQuota': case 'cpuPeriod': return 'cpu';
    case 'cpusetCpus': case 'cpusetMems': return 'cpuset';
    case 'pidsLimit': return 'pids';
    case 'blkioWeight': return 'blkio';
    case 'devices': return 'devices';
  }
}

export function emptyStats(onlineCpus: number, memoryLimit: number): CgroupStats {
  return { memory: { usage: 0, limit: memoryLimit }, cpu: { usageNanos: 0, onlineCpus }, pids: { current: 0 } };
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

/**
 * The parts of a container group that do not depend on the cgroup version. `dirs` are the
 * container's own directories (one per v1 hierarchy, one on v2); nothing above them is
 * ever removed.
 */
export abstract class ContainerGroupBase implements ContainerCgroup {
  constructor(readonly id: string, protected readonly ops: CgroupOps, protected readonly dirs: readonly string[]) {}

  abstract procsFiles(): string[];
  abstract apply(limits: CgroupLimits): Promise<void>;
  abstract stats(): Promise<CgroupStats>;
  abstract oomKilled(): Promise<boolean>;
  abstract freeze(): Promise<void>;
  abstract thaw(): Promise<void>;
  /** undefined when the host has no freezer. */
  protected abstract isFrozen(): Promise<boolean | undefined>;
  /** Kills everything in one kernel operation when the host can (cgroup.kill); false otherwise. */
  protected async killAtOnce(): Promise<boolean> { return false; }

  async pids(): Promise<number[]> {
    const all = new Set<number>();
    for (const dir of this.dirs) await this.collectPids(dir, all);
    return [...all].sort((a, b) => a - b);
  }

  /**
   * cgroup.procs lists only a group's own members, so processes a (privileged) container
   * moved into child groups would escape top, signals and the no-cgroup.kill path.
   */
  private async collectPids(dir: string, into: Set<number>): Promise<void> {
    for (const pid of await readProcs(this.ops, dir)) into.add(pid);
    let children: string[];
    try { children = await this.ops.listDirs(dir); } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw err;
    }
    for (const child of children) await this.collectPids(join(dir, child), into);
  }

  async killAll(signal: NodeJS.Signals | number = 'SIGKILL'): Promise<void> {
    const isKill = signal === 'SIGKILL' || signal === 9;
    if (isKill && await this.killAtOnce()) return;
    // Freezing first stops the group from forking new processes between listing and signalling.
    const wasFrozen = await this.isFrozen();
    let froze = false;
    if (wasFrozen === false) {
      try { await this.freeze(); froze = true; } catch { /* signal what we can without it */ }
    }
    try {
      for (const pid of await this.pids()) {
        try { this.ops.kill(pid, signal); } catch (err) { if (errnoOf(err) !== 'ESRCH') throw err; }
      }
    } finally {
      // Frozen tasks take a SIGKILL only once thawed; other signals leave a paused container paused.
      if (froze || (wasFrozen && isKill)) await this.thaw();
    }
  }

  async remove(opts: RemoveOptions = {}): Promise<void> {
    if (opts.killLeftovers) await this.killAll('SIGKILL');
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    for (const dir of this.dirs) await this.removeTree(dir, deadline);
  }

  /** Removes `dir` and any child groups the container made inside it, deepest first. */
  private async removeTree(dir: string, deadline: number): Promise<void> {
    let children: string[];
    try { children = await this.ops.listDirs(dir); } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw err;
    }
    for (const child of children) await this.removeTree(join(dir, child), deadline);
    for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
      try {
        await this.ops.rmdir(dir);
        return;
      } catch (err) {
        const code = errnoOf(err);
        if (code === 'ENOENT') return;
        // EBUSY while exiting processes drain out of the group.
        if (code !== 'EBUSY' || Date.now() >= deadline) {
          const left = await readProcs(this.ops, dir).catch(() => []);
          throw new BerthError(code === 'EBUSY' ? 'ECONFLICT' : 'EINTERNAL',
            `cannot remove cgroup ${dir}: ${code}${left.length ? ` (processes still inside: ${left.join(' ')})` : ''}`, { cause: err });
        }
        await this.ops.sleep(delay);
      }
    }
  }
}
