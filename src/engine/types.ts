// The engine's public shape: what the API routes (and later the fleet agent) call.
// Inputs and outputs use Docker Engine API field names, because that is what every
// client speaks; the engine owns the rules (config merge, state machine, policies).
import type { AttachStream, ExitInfo } from '../runtime/types';
import type { HealthConfig, HealthState } from './health';

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

/** POST /containers/create body (Docker's Config with HostConfig and NetworkingConfig). Unknown fields are ignored. */
export interface CreateRequest {
  Image: string;
  Cmd?: string[] | string | null;
  Entrypoint?: string[] | string | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  Hostname?: string;
  Domainname?: string;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  StopSignal?: string;
  StopTimeout?: number;
  Healthcheck?: HealthConfig | null;
  HostConfig?: HostConfig;
  NetworkingConfig?: { EndpointsConfig?: Record<string, unknown> };
  [unknown: string]: unknown;
}

export interface HostConfig {
  Binds?: string[] | null;
  Mounts?: Array<{ Type: 'bind' | 'volume' | 'tmpfs'; Source?: string; Target: string; ReadOnly?: boolean; TmpfsOptions?: { SizeBytes?: number; Mode?: number } }> | null;
  Tmpfs?: Record<string, string> | null;
  PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null;
  NetworkMode?: string;
  RestartPolicy?: { Name?: '' | 'no' | 'always' | 'on-failure' | 'unless-stopped'; MaximumRetryCount?: number };
  AutoRemove?: boolean;
  Memory?: number;
  MemorySwap?: number;
  NanoCpus?: number;
  CpuShares?: number;
  CpuQuota?: number;
  CpuPeriod?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  PidsLimit?: number | null;
  BlkioWeight?: number;
  Privileged?: boolean;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  ReadonlyRootfs?: boolean;
  Dns?: string[] | null;
  DnsSearch?: string[] | null;
  ExtraHosts?: string[] | null;
  LogConfig?: { Type?: string; Config?: Record<string, string> };
  Init?: boolean | null;
  GroupAdd?: string[] | null;
  Ulimits?: Array<{ Name: string; Soft: number; Hard: number }> | null;
  Devices?: Array<{ PathOnHost: string; PathInContainer?: string; CgroupPermissions?: string }> | null;
  DeviceCgroupRules?: string[] | null;
  [unknown: string]: unknown;
}

export interface ContainerState {
  Status: ContainerStatus;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  /** Only for containers with a health check. */
  Health?: HealthState;
}

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface LogsOptions {
  stdout: boolean;
  stderr: boolean;
  /** Unix seconds (may be fractional). */
  since?: number;
  until?: number;
  /** Number of lines from the end; undefined = all. */
  tail?: number;
  follow: boolean;
  timestamps: boolean;
}

export interface LogEntry { stream: 'stdout' | 'stderr'; /** raw bytes of the line, newline included when it had one */ line: Buffer; /** RFC 3339 nano */ time: string }

export interface ContainerEvent {
  Type: 'container' | 'image';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  time: number;
  timeNano: number;
}

export interface Engine {
  create(req: CreateRequest, name?: string): Promise<{ Id: string; Warnings: string[] }>;
  start(nameOrId: string): Promise<void>;
  /** ENOTMODIFIED (304) when not running. Timeout in seconds (default StopTimeout or 10). */
  stop(nameOrId: string, opts?: { timeout?: number; signal?: string }): Promise<void>;
  kill(nameOrId: string, signal?: string): Promise<void>;
  restart(nameOrId: string, opts?: { timeout?: number; signal?: string }): Promise<void>;
  pause(nameOrId: string): Promise<void>;
  unpause(nameOrId: string): Promise<void>;
  remove(nameOrId: string, opts?: { force?: boolean; volumes?: boolean }): Promise<void>;
  rename(nameOrId: string, newName: string): Promise<void>;
  /** Docker's wait: resolves with the exit status per condition. `ready` fires once the wait is registered. */
  wait(nameOrId: string, condition: WaitCondition): { ready: Promise<void>; result: Promise<{ StatusCode: number; Error: { Message: string } | null }> };
  inspect(nameOrId: string): Promise<Record<string, unknown>>;
  list(opts: { all?: boolean; limit?: number; filters?: Record<string, string[]>; size?: boolean }): Promise<Array<Record<string, unknown>>>;
  logs(nameOrId: string, opts: LogsOptions, signal?: AbortSignal): AsyncIterable<LogEntry>;
  /** Live attach to a running or created container. `tty` tells the API whether to frame output. */
  attach(nameOrId: string, opts: { stdin: boolean }): Promise<AttachStream & { tty: boolean }>;
  resize(nameOrId: string, rows: number, cols: number): Promise<void>;
  top(nameOrId: string, psArgs?: string): Promise<{ Titles: string[]; Processes: string[][] }>;
  stats(nameOrId: string): Promise<Record<string, unknown>>;
  /** Runs `use` with the container's rootfs mounted (a stopped container is mounted for the call). Optional: test engines may lack it. */
  withRootfs?<T>(nameOrId: string, use: (rootfs: string) => Promise<T>): Promise<T>;
  /** docker diff: Kind 0 modified, 1 added, 2 deleted. */
  changes?(nameOrId: string): Promise<Array<{ Path: string; Kind: number }>>;
  update(nameOrId: string, hostConfig: HostConfig): Promise<{ Warnings: string[] }>;
  prune(): Promise<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }>;
  /** Volume name -> ids of the containers using it, counting containers still being created. */
  volumeUsers?(): Map<string, string[]>;
  /**
   * Runs `remove` unless a container uses the volume (ECONFLICT naming them); until it is
   * done, creating a container with that volume fails instead of racing the removal.
   */
  removeVolumeIfUnused?(name: string, remove: () => Promise<void>): Promise<void>;
  /** Exec: create returns an exec id; start runs it (attach before start for interactive use). */
  execCreate(nameOrId: string, req: { Cmd: string[]; Env?: string[]; WorkingDir?: string; User?: string; Tty?: boolean; AttachStdin?: boolean; AttachStdout?: boolean; AttachStderr?: boolean; Privileged?: boolean }): Promise<{ Id: string }>;
  execStart(execId: string, opts: { detach: boolean; stdin: boolean }): Promise<(AttachStream & { tty: boolean }) | undefined>;
  execResize(execId: string, rows: number, cols: number): Promise<void>;
  execInspect(execId: string): Promise<Record<string, unknown>>;
  counts(): { total: number; running: number; paused: number; stopped: number };
  /** Subscribes to container events (create, start, die, stop, kill, destroy, rename, pause, unpause, exec_*). */
  onEvent(listener: (e: ContainerEvent) => void): () => void;
  /** Stops background work (restart timers, watchers); containers keep running (live restore). */
  close(): Promise<void>;
}

export type { ExitInfo };
