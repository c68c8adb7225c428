// The cgroup interface the engine sees. The v1 and v2 implementations and the 'none'
// fallback all satisfy it, so the engine never branches on the host's cgroup layout.

export type CgroupMode = 'unified' | 'hybrid' | 'legacy' | 'none';

/** What detectCgroups found. Hybrid hosts are driven through their v1 controllers. */
export interface CgroupSetup {
  mode: CgroupMode;
  version: 1 | 2 | 0;
  /** v1 controller name -> mount point; co-mounted controllers share a path. */
  v1Mounts: Record<string, string>;
  /** The cgroup2 mount: the root on unified hosts, e.g. <root>/unified on hybrid ones. */
  v2Mount?: string;
  /** Controllers the cgroup2 root offers (its cgroup.controllers). */
  v2Controllers: string[];
}

/** One device cgroup rule, as in the OCI spec's linux.resources.devices. */
export interface DeviceRule {
  allow: boolean;
  /** 'a' matches every device; then major/minor are ignored. */
  type: 'a' | 'c' | 'b';
  major: number | '*';
  minor: number | '*';
  /** Some of 'r', 'w', 'm'. */
  access: string;
}

/** Resource limits with Docker's HostConfig meanings. Unset keys are left as they are. */
export interface CgroupLimits {
  /** Bytes. */
  memory?: number;
  /** Memory plus swap in bytes; -1 is unlimited. Unset with `memory` set means twice `memory`. */
  memorySwap?: number;
  cpuShares?: number;
  /** --cpus in units of 1e-9 CPUs. */
  nanoCpus?: number;
  /** Microseconds per period; -1 removes the quota. */
  cpuQuota?: number;
  /** Microseconds. */
  cpuPeriod?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  /** <= 0 is unlimited. */
  pidsLimit?: number;
  /** 10..1000 */
  blkioWeight?: number;
  /** Unset at create time means Docker's default rules. */
  devices?: DeviceRule[];
}

export type LimitKey = keyof CgroupLimits;

/** The figures the Docker stats API needs. */
export interface CgroupStats {
  memory: {
    usage: number;
    limit: number;
    cache?: number;
    failcnt?: number;
    /** memory.stat as numbers, for memory_stats.stats. */
    stat?: Record<string, number>;
  };
  cpu: {
    usageNanos: number;
    /** Host CPU time since boot (/proc/stat), for system_cpu_usage. */
    systemNanos?: number;
    onlineCpus: number;
  };
  pids: { current: number; limit?: number };
}

export interface CgroupSupport {
  /** True when every requested limit can be enforced here. */
  ok: boolean;
  unsupported: LimitKey[];
  /** Limits that are accepted but not enforced by a cgroup (devices on cgroup v2). */
  notes: string[];
  /** The EUNSUPPORTED message create() and apply() give for these limits. */
  message?: string;
}

export interface RemoveOptions {
  /** SIGKILL whatever is still inside before removing. */
  killLeftovers?: boolean;
  /** How long to wait for processes to leave; default 5000 ms. */
  timeoutMs?: number;
}

export interface ContainerCgroup {
  readonly id: string;
  /** The cgroup.procs files the native helper writes the container's pid into. */
  procsFiles(): string[];
  /** Changes limits of a live container (docker update). */
  apply(limits: CgroupLimits): Promise<void>;
  stats(): Promise<CgroupStats>;
  oomKilled(): Promise<boolean>;
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  pids(): Promise<number[]>;
  killAll(signal?: NodeJS.Signals | number): Promise<void>;
  /** Waits for the group to empty, then removes every directory this container owns. */
  remove(opts?: RemoveOptions): Promise<void>;
}

export interface CgroupManager {
  readonly setup: CgroupSetup;
  create(id: string, limits: CgroupLimits): Promise<ContainerCgroup>;
  /** Re-adopts a container's cgroup after a daemon restart; ENOTFOUND when it has none. */
  open(id: string): Promise<ContainerCgroup>;
  /** Container ids that have a group under our parent (start-up cleanup of leftovers). */
  listOwned(): Promise<string[]>;
  supports(keys: readonly LimitKey[]): CgroupSupport;
}
