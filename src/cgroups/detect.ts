// Which cgroup layout the host has. Everything comes from parameters (a root path, the
// text of a mount table, a statfs function) so tests can describe any host with fixtures.
import { readFileSync, readdirSync, statfsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseMountInfo, type MountInfo } from '../host/mount';
import type { CgroupSetup } from './types';

export const CGROUP2_SUPER_MAGIC = 0x63677270;
export const CGROUP_SUPER_MAGIC = 0x0027e0eb;
export const TMPFS_MAGIC = 0x01021994;

export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';

/** v1 controllers the kernel can mount (named hierarchies such as name=systemd are not controllers). */
export const V1_CONTROLLER_NAMES = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'net_cls', 'net_prio', 'blkio', 'perf_event', 'hugetlb', 'pids', 'rdma', 'misc'];

export interface DetectOptions {
  /** Where cgroups are mounted; default /sys/fs/cgroup. */
  root?: string;
  /** Contents of /proc/self/mountinfo; read from the host when omitted. */
  mountinfo?: string;
  /** Filesystem magic of a path (statfs f_type), or undefined when it cannot be read. */
  statfs?: (path: string) => number | undefined;
}

function hostStatfs(path: string): number | undefined {
  try { return statfsSync(path).type >>> 0; } catch { return undefined; }
}

function readHostMountInfo(): string {
  try { return readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return ''; }
}

type RootKind = 'cgroup2' | 'cgroup' | 'tmpfs' | 'other';

function kindOfMagic(magic: number | undefined): RootKind {
  if (magic === CGROUP2_SUPER_MAGIC) return 'cgroup2';
  if (magic === CGROUP_SUPER_MAGIC) return 'cgroup';
  if (magic === TMPFS_MAGIC) return 'tmpfs';
  return 'other';
}

function kindOfFsType(fsType: string): RootKind {
  return fsType === 'cgroup2' || fsType === 'cgroup' || fsType === 'tmpfs' ? fsType : 'other';
}

function v1ControllersOf(mount: MountInfo): string[] {
  const options = new Set(`${mount.superOptions},${mount.mountOptions}`.split(','));
  return V1_CONTROLLER_NAMES.filter((name) => options.has(name));
}

function readControllers(v2Mount: string): string[] {
  try { return readFileSync(join(v2Mount, 'cgroup.controllers'), 'utf8').split(/\s+/).filter(Boolean); } catch { return []; }
}

/**
 * Without a usable mount table (no /proc), a tmpfs root can still be read: each cgroupfs
 * subdirectory is named after the controllers mounted there ("cpu,cpuacct").
 */
function scanRootSubdirs(root: string, statfs: (path: string) => number | undefined): { v1: Record<string, string>; v2?: string } {
  const v1: Record<string, string> = {};
  let v2: string | undefined;
  let names: string[] = [];
  try { names = readdirSync(root); } catch { /* unreadable root: nothing mounted */ }
  for (const name of names.sort()) {
    const path = join(root, name);
    const kind = kindOfMagic(statfs(path));
    if (kind === 'cgroup2') v2 ??= path;
    if (kind !== 'cgroup') continue;
    for (const controller of name.split(',')) {
      if (V1_CONTROLLER_NAMES.includes(controller)) v1[controller] ??= path;
    }
  }
  return { v1, v2 };
}

export function detectCgroups(opts: DetectOptions = {}): CgroupSetup {
  const root = resolve(opts.root ?? DEFAULT_CGROUP_ROOT);
  const statfs = opts.statfs ?? hostStatfs;
  const mounts = parseMountInfo(opts.mountinfo ?? readHostMountInfo());

  // A later mount on the same point hides the earlier one.
  const visible = new Map<string, MountInfo>();
  for (const m of mounts) visible.set(m.mountPoint, m);
  const isUnderRoot = (p: string): boolean => p === root || p.startsWith(root + '/');

  // The mount table says what is mounted at the root when it lists it; statfs covers a
  // root that the table does not name (a chroot, or no /proc).
  const rootEntry = visible.get(root);
  const rootKind = rootEntry ? kindOfFsType(rootEntry.fsType) : kindOfMagic(statfs(root));

  if (rootKind === 'cgroup2') {
    return { mode: 'unified', version: 2, v1Mounts: {}, v2Mount: root, v2Controllers: readControllers(root) };
  }

  let v1Mounts: Record<string, string> = {};
  let v2Mount: string | undefined;
  for (const m of visible.values()) {
    if (!isUnderRoot(m.mountPoint)) continue;
    if (m.fsType === 'cgroup') {
      for (const controller of v1ControllersOf(m)) v1Mounts[controller] ??= m.mountPoint;
    } else if (m.fsType === 'cgroup2' && m.mountPoint !== root) {
      v2Mount ??= m.mountPoint;
    }
  }
  const tableKnowsCgroups = mounts.some((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2');
  if (!tableKnowsCgroups && rootKind === 'tmpfs') {
    const scanned = scanRootSubdirs(root, statfs);
    v1Mounts = scanned.v1;
    v2Mount = scanned.v2;
  }

  const v2Controllers = v2Mount ? readControllers(v2Mount) : [];
  if (Object.keys(v1Mounts).length > 0) {
    // Hybrid hosts are driven through v1: their cgroup2 mount holds few or no controllers.
    return { mode: v2Mount ? 'hybrid' : 'legacy', version: 1, v1Mounts, v2Mount, v2Controllers };
  }
  if (v2Mount && v2Controllers.length > 0) {
    // Only a cgroup2 mount below the root, and it has the controllers: use it as unified.
    return { mode: 'unified', version: 2, v1Mounts: {}, v2Mount, v2Controllers };
  }
  return { mode: 'none', version: 0, v1Mounts: {}, v2Mount, v2Controllers };
}
