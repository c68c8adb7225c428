// Docker's container setup (namespaces, mounts, masks, capabilities, user) expressed as a
// helper spec. The engine decides WHAT the container is; this decides how the helper is
// told. See /work/shared/reference "A container, as Docker sets it up".
import { posix as path } from 'node:path';
import { BerthError } from '../util/errors';
import { computeCaps } from './caps';
import type { HelperExecSpec } from './spec-format';
import type { ContainerProcessConfig, ExecConfig, HelperSpec, MountSpec } from './types';
import { resolveUser, type ResolvedUser } from './users';

/** Linux MS_* bits the helper takes as a decimal number. */
export const MS = {
  RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, SYNCHRONOUS: 0x10, DIRSYNC: 0x80, NOATIME: 0x400,
  NODIRATIME: 0x800, BIND: 0x1000, REC: 0x4000, UNBINDABLE: 0x20000, PRIVATE: 0x40000, SLAVE: 0x80000,
  SHARED: 0x100000, RELATIME: 0x200000, STRICTATIME: 0x1000000,
} as const;

/** Facts about the host that change the spec; detected once by the runtime. */
export interface HostSpecOptions {
  /** Host mounts cgroup v2 only: Docker then gives each container a cgroup namespace. */
  cgroupNamespace: boolean;
  /** /proc/sys/kernel/cap_last_cap, for "all capabilities". */
  lastCap: number;
  /** The daemon's bounding set: "all capabilities" cannot go beyond it. */
  boundingCaps?: readonly string[];
}

export interface SpecExtra { cgroupProcs: string[]; log?: HelperSpec['log']; waitStart: boolean }

export const MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/proc/interrupts', '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Docker's kernel filesystems, in mount order (parents first). */
export function defaultMounts(opts: { privileged: boolean; cgroupNamespace: boolean }): MountSpec[] {
  const ro = opts.privileged ? 0 : MS.RDONLY;
  const mounts: MountSpec[] = [
    { source: 'proc', target: '/proc', fstype: 'proc', flags: MS.NOSUID | MS.NOEXEC | MS.NODEV },
    { source: 'tmpfs', target: '/dev', fstype: 'tmpfs', flags: MS.NOSUID | MS.STRICTATIME, data: 'mode=755,size=65536k' },
    { source: 'devpts', target: '/dev/pts', fstype: 'devpts', flags: MS.NOSUID | MS.NOEXEC, data: 'newinstance,ptmxmode=0666,mode=0620,gid=5' },
    { source: 'sysfs', target: '/sys', fstype: 'sysfs', flags: MS.NOSUID | MS.NOEXEC | MS.NODEV | ro },
  ];
  // Only a cgroup2 mount can be rooted at the container's namespace; on v1 hosts Docker's
  // per-controller binds would expose the host's hierarchy, so nothing is mounted there.
  if (opts.cgroupNamespace) {
    mounts.push({ source: 'cgroup', target: '/sys/fs/cgroup', fstype: 'cgroup2', flags: MS.NOSUID | MS.NOEXEC | MS.NODEV | MS.RELATIME | ro });
  }
  mounts.push(
    { source: 'mqueue', target: '/dev/mqueue', fstype: 'mqueue', flags: MS.NOSUID | MS.NOEXEC | MS.NODEV },
    { source: 'shm', target: '/dev/shm', fstype: 'tmpfs', flags: MS.NOSUID | MS.NOEXEC | MS.NODEV, data: 'mode=1777,size=65536k' },
  );
  return mounts;
}

const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE, rprivate: MS.PRIVATE, slave: MS.SLAVE, rslave: MS.SLAVE,
  shared: MS.SHARED, rshared: MS.SHARED, unbindable: MS.UNBINDABLE, runbindable: MS.UNBINDABLE,
};

/** Flag words of mount(8) options; anything else (size=, mode=, uid=) is filesystem data. */
const FLAG_WORDS: Record<string, { set?: number; clear?: number }> = {
  ro: { set: MS.RDONLY }, rw: { clear: MS.RDONLY },
  nosuid: { set: MS.NOSUID }, suid: { clear: MS.NOSUID },
  nodev: { set: MS.NODEV }, dev: { clear: MS.NODEV },
  noexec: { set: MS.NOEXEC }, exec: { clear: MS.NOEXEC },
  sync: { set: MS.SYNCHRONOUS }, async: { clear: MS.SYNCHRONOUS },
  dirsync: { set: MS.DIRSYNC },
  noatime: { set: MS.NOATIME }, atime: { clear: MS.NOATIME },
  nodiratime: { set: MS.NODIRATIME }, diratime: { clear: MS.NODIRATIME },
  relatime: { set: MS.RELATIME }, norelatime: { clear: MS.RELATIME },
  strictatime: { set: MS.STRICTATIME }, nostrictatime: { clear: MS.STRICTATIME },
};

function containerPath(target: string, what: string): string {
  if (!target.startsWith('/')) throw new BerthError('EINVAL', `${what}: ${target} is not an absolute path`);
  const clean = path.normalize(target);
  return clean.length > 1 ? clean.replace(/\/$/, '') : clean;
}

/** `--tmpfs /run:size=1m,exec`: Docker's defaults noexec,nosuid,nodev, then the user's options. */
export function tmpfsMount(target: string, options = ''): MountSpec {
  let flags = MS.NOEXEC | MS.NOSUID | MS.NODEV;
  const data: string[] = [];
  for (const raw of options.split(',')) {
    const opt = raw.trim();
    if (!opt) continue;
    const word = FLAG_WORDS[opt];
    if (word) {
      flags = (flags | (word.set ?? 0)) & ~(word.clear ?? 0);
      continue;
    }
    if (PROPAGATION[opt] !== undefined) continue; // Docker accepts these on tmpfs; it is a fresh mount either way.
    if (!/^[a-z_][a-z0-9_]*(=[^,\x00-\x1f]*)?$/i.test(opt)) throw new BerthError('EINVAL', `tmpfs ${target}: bad option ${opt}`);
    // Later options win, as with mount(8).
    const key = opt.split('=')[0]!;
    const at = data.findIndex((d) => d.split('=')[0] === key);
    if (at >= 0) data.splice(at, 1);
    data.push(opt);
  }
  return { source: 'tmpfs', target: containerPath(target, 'tmpfs'), fstype: 'tmpfs', flags, ...(data.length ? { data: data.join(',') } : {}) };
}

/** A volume or bind: recursive bind, read-only through the helper's remount, rprivate unless asked. */
export function bindMount(bind: { source: string; target: string; readonly: boolean; propagation?: string }): MountSpec {
  if (!bind.source.startsWith('/')) throw new BerthError('EINVAL', `bind source ${bind.source} is not an absolute path`);
  const propagation = bind.propagation ? PROPAGATION[bind.propagation] : MS.PRIVATE;
  if (propagation === undefined) throw new BerthError('EINVAL', `bind ${bind.target}: unknown propagation ${bind.propagation}`);
  return {
    source: bind.source, target: containerPath(bind.target, 'bind'), fstype: 'none',
    flags: MS.BIND | MS.REC | propagation | (bind.readonly ? MS.RDONLY : 0),
  };
}

/** Parents before children, so a volume at /a/b is not hidden by one at /a. Stable otherwise. */
function byDepth(mounts: MountSpec[]): MountSpec[] {
  const depth = (m: MountSpec) => m.target.split('/').filter(Boolean).length;
  return mounts.map((m, i) => ({ m, i })).sort((a, b) => depth(a.m) - depth(b.m) || a.i - b.i).map((x) => x.m);
}

/** HOME from the user's passwd entry, unless the config sets it (Docker does the same). */
function withHome(env: string[], home: string): string[] {
  return env.some((e) => e.startsWith('HOME=')) ? env : [...env, `HOME=${home || '/'}`];
}

function rlimitsOf(config: ContainerProcessConfig): HelperSpec['rlimits'] {
  const limit = (n: number) => (n < 0 ? 'unlimited' : n);
  return (config.ulimits ?? []).map((u) => {
    if (!/^[a-z_]+$/i.test(u.name)) throw new BerthError('EINVAL', `bad ulimit name ${u.name}`);
    if (u.soft >= 0 && u.hard >= 0 && u.soft > u.hard) throw new BerthError('EINVAL', `ulimit ${u.name}: soft limit ${u.soft} is above the hard limit ${u.hard}`);
    return [u.name, limit(u.soft), limit(u.hard)] as [string, string | number, string | number];
  });
}

/** Devices go under the container's own /dev tmpfs or elsewhere, but never over / itself. */
function checkDevicePath(target: string): string {
  const clean = path.normalize(target);
  if (!clean.startsWith('/') || clean === '/') throw new BerthError('EINVAL', `bad format for path: ${target}`);
  return clean;
}

function checkWorkingDir(dir: string | undefined): string {
  if (!dir) return '/';
  if (!dir.startsWith('/')) throw new BerthError('EINVAL', `the working directory '${dir}' is invalid, it needs to be an absolute path`);
  return path.normalize(dir);
}

/**
 * The container's spec from an already resolved user (pure: no file access).
 * Privileged gets every capability, no masked or read-only paths and a writable /sys;
 * its host devices come in `config.devices` like --device ones (the engine resolves
 * them and owns the device cgroup that allows them).
 */
export function buildSpecFromUser(rootfs: string, config: ContainerProcessConfig, user: ResolvedUser, extra: SpecExtra, host: HostSpecOptions): HelperSpec {
  const privileged = config.privileged === true;
  if (!config.args.length) throw new BerthError('EINVAL', 'no command specified');

  const namespaces = ['mnt', 'uts', 'ipc', 'pid'];
  let netns: string | undefined;
  if (config.netns === undefined) namespaces.push('net');
  else if (config.netns !== 'host') netns = config.netns;
  if (host.cgroupNamespace) namespaces.push('cgroup');

  const userMounts: MountSpec[] = [
    ...(config.binds ?? []).map(bindMount),
    ...(config.tmpfs ?? []).map((t) => tmpfsMount(t.target, t.options)),
  ];
  const taken = new Set(userMounts.map((m) => m.target));
  // A user mount over a default one replaces it (e.g. a bigger /dev/shm), as in Docker.
  const mounts = defaultMounts({ privileged, cgroupNamespace: host.cgroupNamespace }).filter((m) => !taken.has(m.target));
  // Host nodes are bound rather than created: no helper protocol change, and the node
  // keeps the host's owner and mode as Docker's mknod copy does. The device cgroup
  // (the engine's) decides what the container may do with them.
  for (const device of config.devices ?? []) {
    mounts.push({ source: device.hostPath, target: checkDevicePath(device.containerPath), fstype: 'none', flags: MS.BIND });
  }
  const etc = config.etcFiles ?? {};
  for (const [file, source] of [['/etc/resolv.conf', etc.resolvConf], ['/etc/hostname', etc.hostname], ['/etc/hosts', etc.hosts]] as const) {
    // Writable like Docker's: tools in the container edit these files in place.
    if (source && !taken.has(file)) mounts.push(bindMount({ source, target: file, readonly: false }));
  }
  mounts.push(...byDepth(userMounts));
  if (config.readonlyRootfs) {
    // Last, and recursive: the rootfs with everything mounted on it so far is bound over
    // itself and only that top mount is made read-only (runc remounts / after pivot_root).
    mounts.push({ source: rootfs, target: '/', fstype: 'none', flags: MS.BIND | MS.REC | MS.RDONLY });
  }

  return {
    rootfs,
    args: [...config.args],
    env: withHome(config.env, user.home),
    cwd: checkWorkingDir(config.workingDir),
    uid: user.uid,
    gid: user.gid,
    groups: user.groups,
    hostname: config.hostname || undefined,
    namespaces,
    ...(netns ? { netns } : {}),
    mounts,
    masked: privileged ? [] : [...MASKED_PATHS],
    readonly: privileged ? [] : [...READONLY_PATHS],
    caps: computeCaps({ privileged, capAdd: config.capAdd, capDrop: config.capDrop, lastCap: host.lastCap, bounding: host.boundingCaps }),
    rlimits: rlimitsOf(config),
    // The project's default (see the reference notes); privileged processes may need setuid binaries.
    noNewPrivs: !privileged,
    tty: config.tty,
    stdin: config.openStdin,
    cgroupProcs: [...extra.cgroupProcs],
    ...(extra.log ? { log: extra.log } : {}),
    init: config.init === true,
    waitStart: extra.waitStart,
  };
}

export async function buildSpec(rootfs: string, config: ContainerProcessConfig, extra: SpecExtra, host: HostSpecOptions): Promise<HelperSpec> {
  const user = await resolveUser(rootfs, config.user, config.groupAdd);
  return buildSpecFromUser(rootfs, config, user, extra, host);
}

/** Docker merges exec env over the container's: same keys replaced, new keys appended. */
export function mergeEnv(base: string[], override: string[]): string[] {
  const out = [...base];
  for (const e of override) {
    const key = e.includes('=') ? e.slice(0, e.indexOf('=')) : e;
    const at = out.findIndex((b) => b === key || b.startsWith(key + '='));
    if (at >= 0) out[at] = e;
    else out.push(e);
  }
  return out;
}

/** An exec's spec: the container's security settings, the exec's own process and user. */
export async function buildExecSpec(rootfs: string, container: ContainerProcessConfig, exec: ExecConfig, files: { ctl: string; exit: string }, host: HostSpecOptions): Promise<HelperExecSpec> {
  if (!exec.args.length) throw new BerthError('EINVAL', 'no command specified');
  const userSpec = exec.user || container.user;
  const user = await resolveUser(rootfs, userSpec, container.groupAdd);
  const privileged = exec.privileged === true || container.privileged === true;
  return {
    args: [...exec.args],
    env: withHome(mergeEnv(container.env, exec.env), user.home),
    cwd: checkWorkingDir(exec.workingDir || container.workingDir),
    uid: user.uid,
    gid: user.gid,
    groups: user.groups,
    caps: computeCaps({ privileged, capAdd: container.capAdd, capDrop: container.capDrop, lastCap: host.lastCap, bounding: host.boundingCaps }),
    rlimits: rlimitsOf(container),
    noNewPrivs: !privileged,
    tty: exec.tty,
    stdin: exec.attachStdin,
    ctl: files.ctl,
    exit: files.exit,
    // Always: the engine attaches first, then execStart() lets the process run.
    waitStart: true,
  };
}
