// The runtime's public shape: what the engine asks of the native helper. The engine
// decides WHAT a container is (config merge, volumes, limits); the runtime turns that
// into a helper spec, starts the detached helper and talks to it over its ctl socket.
// Nothing here knows about HTTP, records or restart policies.
import type { Duplex } from 'node:stream';

export interface MountSpec { source: string; target: string; fstype: string; flags: number; data?: string }

/** Everything the helper needs, in TypeScript form (serialised to protocol 1 by the runtime). */
export interface HelperSpec {
  rootfs: string;
  args: string[];
  env: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
  groups?: number[];
  hostname?: string;
  namespaces: string[];
  netns?: string;
  mounts: MountSpec[];
  masked: string[];
  readonly: string[];
  caps: string[];
  rlimits?: Array<[string, string | number, string | number]>;
  noNewPrivs: boolean;
  tty: boolean;
  stdin: boolean;
  cgroupProcs: string[];
  log?: { path: string; maxBytes: number; maxFiles: number };
  init: boolean;
  waitStart: boolean;
}

/** Docker's container-level options that shape the spec (a subset of HostConfig + Config). */
export interface ContainerProcessConfig {
  /** Final argv after Docker's Entrypoint/Cmd merge. */
  args: string[];
  /** Final env after Docker's merge (PATH, HOSTNAME, TERM, image env, user env). */
  env: string[];
  workingDir?: string;
  /** Docker's User string: "", "uid", "name", "uid:gid", "name:group". Resolved against the rootfs. */
  user?: string;
  /** Extra groups by name or gid (HostConfig.GroupAdd). */
  groupAdd?: string[];
  hostname: string;
  tty: boolean;
  openStdin: boolean;
  privileged?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  readonlyRootfs?: boolean;
  init?: boolean;
  /** Host files bound over /etc/resolv.conf, /etc/hosts, /etc/hostname (written by the engine). */
  etcFiles?: { resolvConf?: string; hosts?: string; hostname?: string };
  /** Bind mounts and named volumes: host source -> container target. */
  binds?: Array<{ source: string; target: string; readonly: boolean; propagation?: string }>;
  tmpfs?: Array<{ target: string; options?: string }>;
  /** Join this network namespace (bridge networking); undefined = a new, loopback-only one; 'host' = none. */
  netns?: string | 'host';
  ulimits?: Array<{ name: string; soft: number; hard: number }>;
  /** Host device nodes bound into the container (resolved by the engine at start). */
  devices?: Array<{ hostPath: string; containerPath: string }>;
}

export interface ExitInfo {
  /** Exit status, or 128+signal. */
  code: number;
  signal: number;
  finished: string;
  /** Set when the process never started (e.g. `exec: "x": executable file not found in $PATH`). */
  error?: string;
}

export interface RunningInfo { pid: number; started: string }

export interface AttachOptions {
  stdin: boolean;
  /** Addition: output frames unchanged on `frames` (stdout/stderr then stay empty), for relaying as they are. */
  raw?: boolean;
}

/** A live attach: output frames decoded, stdin writable (when asked for). */
export interface AttachStream {
  /** stdout bytes (all output when the container has a TTY). */
  stdout: NodeJS.ReadableStream;
  stderr: NodeJS.ReadableStream;
  /** Container stdin; end() closes it (half-close), unless the container has a TTY. */
  stdin?: NodeJS.WritableStream;
  /** Resolves when the helper closes the stream (the container exited or we were dropped). */
  closed: Promise<void>;
  close(): void;
  /** The raw socket, for relaying frames unchanged. */
  socket: Duplex;
  /** Addition, with `raw: true`: the frame bytes after the helper's `ok` line, with backpressure. */
  frames?: NodeJS.ReadableStream;
}

export interface ExecConfig {
  args: string[];
  env: string[];
  workingDir?: string;
  user?: string;
  tty: boolean;
  attachStdin: boolean;
  privileged?: boolean;
}

export interface Runtime {
  /** The bundle dir of a container in the exec root (short paths: ctl.sock must fit 108 bytes). */
  bundleDir(id: string): string;
  /** Builds the helper spec from Docker-level config; resolves users from rootfs's /etc/passwd and /etc/group. */
  buildSpec(id: string, rootfs: string, config: ContainerProcessConfig, extra: { cgroupProcs: string[]; log?: HelperSpec['log']; waitStart: boolean }): Promise<HelperSpec>;
  /** Writes the spec and starts the detached helper; resolves once it is ready (or already failed: see exit). */
  create(id: string, spec: HelperSpec): Promise<void>;
  /** With waitStart: lets the process exec (after attach clients are connected). */
  start(id: string): Promise<void>;
  attach(id: string, opts: AttachOptions): Promise<AttachStream>;
  signal(id: string, signal: number): Promise<void>;
  resize(id: string, rows: number, cols: number): Promise<void>;
  /** The helper's state file, if the process has started. */
  running(id: string): Promise<RunningInfo | undefined>;
  /** The helper's exit file, if the container has exited. */
  exited(id: string): Promise<ExitInfo | undefined>;
  /** Resolves when the exit file appears (works across daemon restarts: watches files, not children). */
  waitExit(id: string, signal?: AbortSignal): Promise<ExitInfo>;
  /** True while the helper process of this container is alive. */
  helperAlive(id: string): Promise<boolean>;
  /** Removes the bundle (after exit); kills a stray helper first. */
  remove(id: string): Promise<void>;
  /** Ids that have a bundle in the exec root (for live restore). */
  list(): Promise<string[]>;
  exec(id: string, execId: string, config: ExecConfig, containerConfig: ContainerProcessConfig & { rootfs: string; cgroupProcs: string[] }): Promise<void>;
  execStart(id: string, execId: string): Promise<void>;
  execAttach(id: string, execId: string, opts: AttachOptions): Promise<AttachStream>;
  execResize(id: string, execId: string, rows: number, cols: number): Promise<void>;
  execExited(id: string, execId: string): Promise<ExitInfo | undefined>;
  execWaitExit(id: string, execId: string, signal?: AbortSignal): Promise<ExitInfo>;
  execRunning(id: string, execId: string): Promise<{ pid: number } | undefined>;
  /** Deletes an exec's files once it has exited (health checks exec every few seconds). */
  execRemove?(id: string, execId: string): Promise<void>;
}
