// Facts about the host that /info and /version report. Collected once at start-up
// (they do not change while the daemon runs). Parsers take file text as parameters so
// tests can feed fixtures; only collectHostInfo touches the filesystem.
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { goArch } from '../api/platform';

export type CgroupVersion = '1' | '2' | '';

export interface CgroupSetup {
  /** "cgroupfs" when any cgroup hierarchy is mounted, "none" on builds without cgroups. */
  driver: 'cgroupfs' | 'none';
  /** Hybrid hosts (v1 controllers plus a small cgroup2 mount) count as "1". */
  version: CgroupVersion;
}

export interface HostInfo {
  kernelVersion: string;
  operatingSystem: string;
  osVersion: string;
  /** uname machine, e.g. x86_64, aarch64, mips. */
  architecture: string;
  /** Go's name for the architecture, e.g. amd64, mipsle. */
  goArch: string;
  ncpu: number;
  memTotal: number;
  cgroup: CgroupSetup;
  ipv4Forwarding: boolean;
}

/** Reads the filesystem types of mounts from /proc/self/mountinfo text. */
export function detectCgroupSetup(mountinfo: string): CgroupSetup {
  let v1 = false;
  let v2 = false;
  for (const line of mountinfo.split('\n')) {
    // Fields after the " - " separator: fstype, source, super options.
    const sep = line.indexOf(' - ');
    if (sep === -1) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    if (fstype === 'cgroup') v1 = true;
    else if (fstype === 'cgroup2') v2 = true;
  }
  if (v1) return { driver: 'cgroupfs', version: '1' };
  if (v2) return { driver: 'cgroupfs', version: '2' };
  return { driver: 'none', version: '' };
}

/** Parses KEY=value lines with optional shell quoting (os-release, openwrt_release). */
export function parseShellAssignments(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2]!.trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      const quote = value[0];
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\(["\\$`])/g, '$1');
    }
    out[m[1]!] = value;
  }
  return out;
}

/** PRETTY_NAME from os-release, else OpenWrt's DISTRIB_DESCRIPTION, else "Linux". */
export function operatingSystemName(osRelease: string | undefined, openwrtRelease: string | undefined): { name: string; version: string } {
  const release = osRelease ? parseShellAssignments(osRelease) : {};
  const openwrt = openwrtRelease ? parseShellAssignments(openwrtRelease) : {};
  const name = release.PRETTY_NAME || openwrt.DISTRIB_DESCRIPTION || release.NAME || 'Linux';
  const version = release.VERSION_ID || openwrt.DISTRIB_RELEASE || '';
  return { name, version };
}

function readIfExists(path: string): string | undefined {
  try { return readFileSync(path, 'utf8'); } catch { return undefined; }
}

export function collectHostInfo(): HostInfo {
  const osName = operatingSystemName(readIfExists('/etc/os-release') ?? readIfExists('/usr/lib/os-release'), readIfExists('/etc/openwrt_release'));
  return {
    kernelVersion: os.release(),
    operatingSystem: osName.name,
    osVersion: osName.version,
    architecture: os.machine(),
    goArch: goArch(),
    ncpu: os.availableParallelism(),
    memTotal: os.totalmem(),
    cgroup: detectCgroupSetup(readIfExists('/proc/self/mountinfo') ?? ''),
    ipv4Forwarding: readIfExists('/proc/sys/net/ipv4/ip_forward')?.trim() === '1',
  };
}
