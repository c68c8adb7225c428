// Docker's create-time rules: how the request merges with the image config, which host
// options are valid together, and how HostConfig maps onto cgroup limits. Pure functions,
// so the rules are unit-testable without a kernel.
import { constants as osConstants } from 'node:os';
import { posix } from 'node:path';
import { BerthError } from '../util/errors';
import type { CgroupLimits } from '../cgroups';
import { mergeHealthConfig, validateHealthConfig, type HealthConfig } from './health';
import type { CreateRequest, HostConfig } from './types';

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The image config's `config` section (OCI/Docker field names). */
export interface ImageRunConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  StopSignal?: string;
  Healthcheck?: HealthConfig | null;
}

/** Docker's container Config after the merge (what inspect's Config shows). */
export interface MergedConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
  Healthcheck?: HealthConfig;
}

/** Docker's strslice: a JSON string is a one-element list; null and [] mean "not given". */
function strSlice(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new BerthError('EINVAL', 'Cmd and Entrypoint must be strings or lists of strings');
}

const envKey = (entry: string) => { const eq = entry.indexOf('='); return eq < 0 ? entry : entry.slice(0, eq); };

/** Later lists override earlier ones by key, keeping the first position of each key. */
export function mergeEnv(...lists: Array<string[] | null | undefined>): string[] {
  const order: string[] = [];
  const values = new Map<string, string>();
  for (const list of lists) {
    for (const entry of list ?? []) {
      const key = envKey(entry);
      if (!values.has(key)) order.push(key);
      values.set(key, entry);
    }
  }
  return order.map((k) => values.get(k)!);
}

/** The environment the process gets: Docker's defaults under the container's Config.Env. */
export function processEnv(config: MergedConfig): string[] {
  const defaults = [DEFAULT_PATH, `HOSTNAME=${config.Hostname}`];
  if (config.Tty) defaults.push('TERM=xterm');
  return mergeEnv(defaults, config.Env);
}

export function mergeConfig(req: CreateRequest, image: ImageRunConfig, hostname: string): { config: MergedConfig; path: string; args: string[] } {
  const userEntrypoint = strSlice(req.Entrypoint);
  const userCmd = strSlice(req.Cmd);
  let entrypoint: string[] | undefined;
  let cmd: string[] | undefined;
  if (userEntrypoint !== undefined) {
    // `--entrypoint ""` resets the image's entrypoint; a user entrypoint drops the image Cmd.
    entrypoint = userEntrypoint.length === 1 && userEntrypoint[0] === '' ? [] : userEntrypoint;
    cmd = userCmd;
  } else {
    entrypoint = image.Entrypoint ?? undefined;
    cmd = userCmd && userCmd.length ? userCmd : image.Cmd ?? undefined;
  }
  const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
  if (argv.length === 0) throw new BerthError('EINVAL', 'No command specified');
  const env = mergeEnv(image.Env, req.Env);
  for (const entry of env) if (envKey(entry) === '') throw new BerthError('EINVAL', `invalid environment variable: ${entry}`);
  const workingDir = req.WorkingDir || image.WorkingDir || '';
  if (workingDir && !posix.isAbsolute(workingDir)) throw new BerthError('EINVAL', `the working directory '${workingDir}' is invalid, it needs to be an absolute path`);
  const volumes = { ...(image.Volumes ?? {}), ...(req.Volumes ?? {}) };
  const exposed = { ...(image.ExposedPorts ?? {}), ...(req.ExposedPorts ?? {}) };
  const healthcheck = mergeHealthConfig(validateHealthConfig(req.Healthcheck), image.Healthcheck);
  const config: MergedConfig = {
    Hostname: req.Hostname || hostname,
    Domainname: req.Domainname ?? '',
    User: req.User || image.User || '',
    AttachStdin: !!req.AttachStdin,
    AttachStdout: !!req.AttachStdout,
    AttachStderr: !!req.AttachStderr,
    ...(Object.keys(exposed).length ? { ExposedPorts: exposed } : {}),
    Tty: !!req.Tty,
    OpenStdin: !!req.OpenStdin,
    StdinOnce: !!req.StdinOnce,
    Env: env,
    Cmd: cmd ?? null,
    Image: req.Image,
    Volumes: Object.keys(volumes).length ? volumes : null,
    WorkingDir: workingDir ? posix.normalize(workingDir) : '',
    Entrypoint: entrypoint && entrypoint.length ? entrypoint : null,
    Labels: { ...(image.Labels ?? {}), ...(req.Labels ?? {}) },
    ...(req.StopSignal || image.StopSignal ? { StopSignal: req.StopSignal || image.StopSignal } : {}),
    ...(req.StopTimeout !== undefined ? { StopTimeout: req.StopTimeout } : {}),
    ...(healthcheck ? { Healthcheck: healthcheck } : {}),
  };
  return { config, path: argv[0]!, args: argv.slice(1) };
}

const RESTART_NAMES = new Set(['', 'no', 'always', 'on-failure', 'unless-stopped']);
const LOG_DRIVERS = new Set(['json-file', 'local', 'none']);

/** Fills Docker's defaults into HostConfig and rejects what Docker rejects. */
export function normaliseHostConfig(input: HostConfig | undefined): HostConfig {
  const hc: HostConfig = { ...(input ?? {}) };
  const policy = { Name: hc.RestartPolicy?.Name || 'no', MaximumRetryCount: hc.RestartPolicy?.MaximumRetryCount ?? 0 } as NonNullable<HostConfig['RestartPolicy']>;
  validateRestartPolicy(policy);
  hc.RestartPolicy = policy;
  if (hc.AutoRemove && policy.Name !== 'no') throw new BerthError('EINVAL', "can't create 'AutoRemove' container with restart policy");
  if (!hc.NetworkMode || hc.NetworkMode === 'default') hc.NetworkMode = 'bridge';
  // Which networks exist is the network hook's to say; here only the shape is checked.
  if (!/^(container:.+|[a-zA-Z0-9][a-zA-Z0-9_.-]*)$/.test(hc.NetworkMode)) throw new BerthError('EINVAL', `invalid network mode "${hc.NetworkMode}"`);
  if (hc.NetworkMode === 'host' && Object.keys(hc.PortBindings ?? {}).length) hc.PortBindings = {};
  const logType = hc.LogConfig?.Type || 'json-file';
  if (!LOG_DRIVERS.has(logType)) throw new BerthError('EINVAL', `logger: no log driver named '${logType}' is registered`);
  hc.LogConfig = { Type: logType, Config: { ...(hc.LogConfig?.Config ?? {}) } };
  // Docker: --memory without --memory-swap allows as much swap as memory.
  if (hc.Memory && hc.Memory > 0 && !hc.MemorySwap) hc.MemorySwap = hc.Memory * 2;
  return hc;
}

export function validateRestartPolicy(policy: NonNullable<HostConfig['RestartPolicy']>): void {
  const name = policy.Name ?? '';
  if (!RESTART_NAMES.has(name)) throw new BerthError('EINVAL', `invalid restart policy '${name}'`);
  const count = policy.MaximumRetryCount ?? 0;
  if (count < 0) throw new BerthError('EINVAL', 'invalid value for restart policy: maximum retry count cannot be negative');
  if (count > 0 && name !== 'on-failure') throw new BerthError('EINVAL', `invalid restart policy: maximum retry count can only be used with 'on-failure'`);
}

/** HostConfig resource fields -> cgroup limits; zero/unset values are left out. */
export function limitsOf(hc: HostConfig): CgroupLimits {
  const limits: CgroupLimits = {};
  if (hc.Memory) limits.memory = hc.Memory;
  if (hc.MemorySwap) limits.memorySwap = hc.MemorySwap;
  if (hc.NanoCpus) limits.nanoCpus = hc.NanoCpus;
  if (hc.CpuShares) limits.cpuShares = hc.CpuShares;
  if (hc.CpuQuota) limits.cpuQuota = hc.CpuQuota;
  if (hc.CpuPeriod) limits.cpuPeriod = hc.CpuPeriod;
  if (hc.CpusetCpus) limits.cpusetCpus = hc.CpusetCpus;
  if (hc.CpusetMems) limits.cpusetMems = hc.CpusetMems;
  if (hc.PidsLimit !== undefined && hc.PidsLimit !== null && hc.PidsLimit !== 0) limits.pidsLimit = hc.PidsLimit;
  if (hc.BlkioWeight) limits.blkioWeight = hc.BlkioWeight;
  return limits;
}

const RESOURCE_KEYS = ['Memory', 'MemorySwap', 'NanoCpus', 'CpuShares', 'CpuQuota', 'CpuPeriod', 'CpusetCpus', 'CpusetMems', 'PidsLimit', 'BlkioWeight'] as const;

/** docker update: the resource fields (and restart policy) of `update` laid over `current`. */
export function updatedHostConfig(current: HostConfig, update: HostConfig): HostConfig {
  const next: HostConfig = { ...current };
  for (const key of RESOURCE_KEYS) {
    const value = update[key];
    if (value !== undefined && value !== null && value !== 0 && value !== '') (next as Record<string, unknown>)[key] = value;
  }
  if (update.Memory && !update.MemorySwap && current.MemorySwap === (current.Memory ?? 0) * 2) next.MemorySwap = update.Memory * 2;
  if (update.RestartPolicy?.Name) {
    const policy = { Name: update.RestartPolicy.Name, MaximumRetryCount: update.RestartPolicy.MaximumRetryCount ?? 0 };
    validateRestartPolicy(policy);
    if (current.AutoRemove && policy.Name !== 'no') throw new BerthError('EINVAL', 'Restart policy cannot be updated because AutoRemove is enabled for the container');
    next.RestartPolicy = policy;
  }
  return next;
}

/** Signal names ("TERM", "SIGTERM", "sigkill") or numbers -> numbers. */
export function parseSignal(input: string | number | undefined, fallback = 15): number {
  if (input === undefined || input === '') return fallback;
  if (typeof input === 'number' || /^\d+$/.test(input)) {
    const n = Number(input);
    if (n < 1 || n > 64) throw new BerthError('EINVAL', `Invalid signal: ${input}`);
    return n;
  }
  const name = input.toUpperCase().replace(/^SIG/, '');
  const rt = /^RTMIN(\+(\d+))?$/.exec(name);
  if (rt) return 34 + Number(rt[2] ?? 0);
  const n = SIGNALS[name];
  if (n === undefined) throw new BerthError('EINVAL', `Invalid signal: ${input}`);
  return n;
}

// Linux's generic numbering; MIPS differs for a few, so the host's own table overrides below.
const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12, PIPE: 13,
  ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25,
  VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, POLL: 29, PWR: 30, SYS: 31,
};
// MIPS numbers several signals differently; os.constants.signals has the host's own table.
for (const [name, n] of Object.entries(osConstants.signals)) SIGNALS[name.replace(/^SIG/, '')] = n;
