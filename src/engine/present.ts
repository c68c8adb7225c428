// The shapes Docker clients read: inspect, ps rows and their human status text, ps
// filters, top's process table and the stats document. Pure functions over records.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { humanDuration } from '../util/human';
export { humanDuration };
import type { CgroupStats } from '../cgroups';
import { HEALTH_FILTER_VALUES, healthStatusText } from './health';
import type { ContainerRecord } from './record';
import type { ContainerStatus } from './types';

const since = (iso: string, now: number) => humanDuration(now - Date.parse(iso));

export function statusText(r: ContainerRecord, now = Date.now()): string {
  const s = r.state;
  switch (s.Status) {
    case 'running': return `Up ${since(s.StartedAt, now)}${s.Health ? ` (${healthStatusText(s.Health)})` : ''}`;
    case 'paused': return `Up ${since(s.StartedAt, now)} (Paused)`;
    case 'restarting': return `Restarting (${s.ExitCode}) ${since(s.FinishedAt, now)} ago`;
    case 'removing': return 'Removal In Progress';
    case 'dead': return 'Dead';
    case 'created': return 'Created';
    case 'exited': return `Exited (${s.ExitCode}) ${since(s.FinishedAt, now)} ago`;
  }
}

export function commandText(r: ContainerRecord): string {
  return [r.path, ...r.args].join(' ');
}

function inspectMounts(r: ContainerRecord) {
  return r.mounts.filter((m) => m.Type !== 'tmpfs').map((m) => m.Type === 'volume'
    ? { Type: 'volume', Name: m.Name, Source: m.Source, Destination: m.Destination, Driver: m.Driver ?? 'local', Mode: m.Mode, RW: m.RW, Propagation: m.Propagation }
    : { Type: m.Type, Source: m.Source, Destination: m.Destination, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation });
}

export function inspectDocument(r: ContainerRecord, driverName: string): Record<string, unknown> {
  const c = r.config;
  return {
    Id: r.id,
    Created: r.created,
    Path: r.path,
    Args: r.args,
    State: { ...r.state, ...(r.state.Health ? { Health: { ...r.state.Health, Log: [...r.state.Health.Log] } } : {}) },
    Image: r.imageId,
    ResolvConfPath: r.resolvConfPath,
    HostnamePath: r.hostnamePath,
    HostsPath: r.hostsPath,
    LogPath: r.logPath,
    Name: r.name,
    RestartCount: r.restartCount,
    Driver: driverName,
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: r.hostConfig,
    Mounts: inspectMounts(r),
    Config: {
      Hostname: c.Hostname, Domainname: c.Domainname, User: c.User,
      AttachStdin: c.AttachStdin, AttachStdout: c.AttachStdout, AttachStderr: c.AttachStderr,
      ...(c.ExposedPorts ? { ExposedPorts: c.ExposedPorts } : {}),
      Tty: c.Tty, OpenStdin: c.OpenStdin, StdinOnce: c.StdinOnce,
      Env: c.Env, Cmd: c.Cmd, Image: c.Image, Volumes: c.Volumes, WorkingDir: c.WorkingDir, Entrypoint: c.Entrypoint,
      OnBuild: null, Labels: c.Labels,
      ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
      ...(c.StopTimeout !== undefined ? { StopTimeout: c.StopTimeout } : {}),
      ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
    },
    NetworkSettings: networkSettings(r),
  };
}

/** Networking is a later task: containers have loopback only, so no endpoints yet. */
function networkSettings(_r: ContainerRecord) {
  return { Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, Networks: {} };
}

export function listEntry(r: ContainerRecord, imageName: string, now = Date.now()): Record<string, unknown> {
  return {
    Id: r.id,
    Names: [r.name],
    Image: imageName,
    ImageID: r.imageId,
    Command: commandText(r),
    Created: Math.floor(Date.parse(r.created) / 1000),
    Ports: [],
    Labels: r.config.Labels,
    State: r.state.Status,
    Status: statusText(r, now),
    HostConfig: { NetworkMode: r.hostConfig.NetworkMode ?? 'bridge' },
    NetworkSettings: { Networks: {} },
    Mounts: inspectMounts(r),
    // Newer Docker APIs carry this in ps rows; the fleet telemetry reads it too.
    ...(r.state.Health ? { Health: { Status: r.state.Health.Status, FailingStreak: r.state.Health.FailingStreak } } : {}),
  };
}

const STATUSES: ContainerStatus[] = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];
const FILTER_KEYS = new Set(['status', 'name', 'label', 'id', 'ancestor', 'exited', 'health']);

/**
 * Docker's ps filters: values of one key are OR-ed, keys are AND-ed. `ancestorIds` answers
 * whether an ancestor filter value names the container's image.
 */
export function matchesFilters(r: ContainerRecord, filters: Record<string, string[]>, ancestorMatches: (value: string, r: ContainerRecord) => boolean): boolean {
  for (const [key, values] of Object.entries(filters)) {
    if (!FILTER_KEYS.has(key)) throw new BerthError('EINVAL', `invalid filter '${key}'`);
    if (!values.length) continue;
    const any = (test: (v: string) => boolean) => values.some(test);
    switch (key) {
      case 'status':
        for (const v of values) if (!STATUSES.includes(v as ContainerStatus)) throw new BerthError('EINVAL', `invalid filter 'status=${v}'`);
        if (!any((v) => v === r.state.Status)) return false;
        break;
      case 'name':
        if (!any((v) => { try { return new RegExp(v).test(r.name.slice(1)) || new RegExp(v).test(r.name); } catch { return r.name.includes(v); } })) return false;
        break;
      case 'id':
        if (!any((v) => r.id.startsWith(v))) return false;
        break;
      case 'label':
        if (!any((v) => {
          const eq = v.indexOf('=');
          return eq < 0 ? v in r.config.Labels : r.config.Labels[v.slice(0, eq)] === v.slice(eq + 1);
        })) return false;
        break;
      case 'exited':
        if (r.state.Status !== 'exited' || !any((v) => Number(v) === r.state.ExitCode)) return false;
        break;
      case 'ancestor':
        if (!any((v) => ancestorMatches(v, r))) return false;
        break;
      case 'health':
        for (const v of values) if (!(HEALTH_FILTER_VALUES as readonly string[]).includes(v)) throw new BerthError('EINVAL', `Unrecognised filter value for health: ${v}`);
        if (!any((v) => v === (r.state.Health?.Status ?? 'none'))) return false;
        break;
    }
  }
  return true;
}

// ---- stats ----

export interface StatsSample { read: string; stats: CgroupStats }

function cpuStats(s: CgroupStats | undefined) {
  return {
    cpu_usage: { total_usage: s?.cpu.usageNanos ?? 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
    system_cpu_usage: s?.cpu.systemNanos ?? 0,
    online_cpus: s?.cpu.onlineCpus ?? 0,
    throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
  };
}

export function statsDocument(r: ContainerRecord, now: StatsSample, previous: StatsSample | undefined): Record<string, unknown> {
  const m = now.stats.memory;
  const stat: Record<string, number> = { ...(m.stat ?? {}) };
  // Clients (LuCI, docker stats) subtract the page cache; v1 names it total_cache, v2 file.
  if (m.cache !== undefined) { stat.cache ??= m.cache; stat.total_cache ??= m.cache; }
  return {
    read: now.read,
    preread: previous?.read ?? '0001-01-01T00:00:00Z',
    pids_stats: { current: now.stats.pids.current, ...(now.stats.pids.limit ? { limit: now.stats.pids.limit } : {}) },
    blkio_stats: { io_service_bytes_recursive: null, io_serviced_recursive: null },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuStats(now.stats),
    precpu_stats: cpuStats(previous?.stats),
    memory_stats: { usage: m.usage, limit: m.limit, ...(m.failcnt !== undefined ? { failcnt: m.failcnt } : {}), stats: stat },
    name: r.name,
    id: r.id,
    networks: {},
  };
}

// ---- top ----

export const TOP_TITLES = ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'];

interface ProcInfo { pid: number; ppid: number; uid: number; ttyNr: number; cpuTicks: number; startTicks: number; cmd: string }

async function readProc(procRoot: string, pid: number): Promise<ProcInfo | undefined> {
  try {
    const stat = await fsp.readFile(join(procRoot, String(pid), 'stat'), 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    // Fields after comm start at 3 (state): ppid 4, tty_nr 7, utime 14, stime 15, starttime 22.
    const at = (n: number) => Number(f[n - 3]);
    const status = await fsp.readFile(join(procRoot, String(pid), 'status'), 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const cmdline = (await fsp.readFile(join(procRoot, String(pid), 'cmdline'), 'utf8')).split('\0').filter(Boolean).join(' ');
    return { pid, ppid: at(4), uid, ttyNr: at(7), cpuTicks: at(14) + at(15), startTicks: at(22), cmd: cmdline || `[${comm}]` };
  } catch { return undefined; }
}

const TICKS = 100; // USER_HZ is 100 for user space on every Linux architecture

function ttyName(ttyNr: number): string {
  if (!ttyNr) return '?';
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  if (major === 136) return `pts/${minor}`;
  if (major === 4) return `tty${minor}`;
  return '?';
}

function cpuTime(ticks: number): string {
  let s = Math.floor(ticks / TICKS);
  const days = Math.floor(s / 86400); s %= 86400;
  const hms = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60].map((n) => String(n).padStart(2, '0')).join(':');
  return days ? `${days}-${hms}` : hms;
}

async function userNames(): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  try {
    for (const line of (await fsp.readFile('/etc/passwd', 'utf8')).split('\n')) {
      const f = line.split(':');
      if (f.length > 2 && !names.has(Number(f[2]))) names.set(Number(f[2]), f[0]!);
    }
  } catch { /* numeric uids then */ }
  return names;
}

/** ps -ef's columns (Docker's default `top`) for the given host pids, read from /proc. */
export async function topTable(pids: number[], procRoot = '/proc'): Promise<{ Titles: string[]; Processes: string[][] }> {
  const uptime = Number((await fsp.readFile(join(procRoot, 'uptime'), 'utf8')).split(' ')[0]);
  const bootMs = Date.now() - uptime * 1000;
  const names = await userNames();
  const rows: string[][] = [];
  for (const pid of pids) {
    const p = await readProc(procRoot, pid);
    if (!p) continue;
    const started = new Date(bootMs + (p.startTicks / TICKS) * 1000);
    const elapsed = Math.max(uptime - p.startTicks / TICKS, 1);
    const sameDay = started.toDateString() === new Date().toDateString();
    const stime = sameDay
      ? `${String(started.getHours()).padStart(2, '0')}:${String(started.getMinutes()).padStart(2, '0')}`
      : started.toLocaleString('en-US', { month: 'short', day: '2-digit' }).replace(' ', '');
    rows.push([names.get(p.uid) ?? String(p.uid), String(p.pid), String(p.ppid), String(Math.floor((p.cpuTicks / TICKS / elapsed) * 100)),
      stime, ttyName(p.ttyNr), cpuTime(p.cpuTicks), p.cmd]);
  }
  return { Titles: [...TOP_TITLES], Processes: rows };
}

/** `pid` and its descendants, for hosts without cgroups to list a container's processes. */
export async function processTree(pid: number, procRoot = '/proc'): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for (const name of await fsp.readdir(procRoot)) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await fsp.readFile(join(procRoot, name, 'stat'), 'utf8');
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* exited meanwhile */ }
  }
  const tree = new Set([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [child, parent] of parentOf) if (tree.has(parent) && !tree.has(child)) { tree.add(child); grew = true; }
  }
  return [...tree].filter((p) => parentOf.has(p)).sort((a, b) => a - b);
}
