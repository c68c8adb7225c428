// The host's device nodes, for `--device` and `--privileged` (Docker's rules: a path is
// resolved through symlinks, a directory gives every device below it, privileged gives
// everything under /dev except what each container owns itself).
import { promises as fsp, type Stats } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { splitDev } from './fsops';

export interface HostDevice {
  /** Host path of the node (symlinks resolved). */
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
}

/** Directories and nodes under /dev a container gets its own of (or must not share). */
const PRIVATE_DEV_DIRS = new Set(['pts', 'shm', 'mqueue', 'fd', '.lxc', '.udev']);
const PRIVATE_DEV_NODES = new Set(['console', 'ptmx', 'null', 'zero', 'full', 'random', 'urandom', 'tty']);

function asDevice(path: string, st: Stats): HostDevice | undefined {
  if (!st.isCharacterDevice() && !st.isBlockDevice()) return undefined;
  return { path, type: st.isCharacterDevice() ? 'c' : 'b', ...splitDev(st.rdev) };
}

/** Device nodes below dir; symlinks inside are not followed (they point at nodes listed anyway). */
async function walk(dir: string, skip: (name: string, isDir: boolean) => boolean, out: HostDevice[]): Promise<void> {
  let entries;
  try { entries = await fsp.readdir(dir, { withFileTypes: true }); } catch { return; }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!skip(entry.name, true)) await walk(full, () => false, out);
    } else if ((entry.isCharacterDevice() || entry.isBlockDevice()) && !skip(entry.name, false)) {
      // A node can vanish between readdir and stat (a USB device unplugged).
      const st = await fsp.lstat(full).catch(() => undefined);
      const device = st && asDevice(full, st);
      if (device) out.push(device);
    }
  }
}

/** What `--device PATH` names: one node, or (directory) every node below it. */
export interface DevicesAt { resolved: string; directory: boolean; nodes: HostDevice[] }

/** Errors carry Docker's wording, since users search for it. */
export async function devicesAt(pathOnHost: string): Promise<DevicesAt> {
  const fail = (why: string) => new BerthError('EINVAL', `error gathering device information while adding custom device "${pathOnHost}": ${why}`);
  let resolved: string;
  let st: Stats;
  try {
    resolved = await fsp.realpath(pathOnHost);
    st = await fsp.stat(resolved);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'no such file or directory' : (err as Error).message);
  }
  const single = asDevice(resolved, st);
  if (single) return { resolved, directory: false, nodes: [single] };
  if (!st.isDirectory()) throw fail('not a device node');
  const found: HostDevice[] = [];
  await walk(resolved, () => false, found);
  if (!found.length) throw fail('not a device node');
  return { resolved, directory: true, nodes: found };
}

/** Everything a privileged container gets: the host's /dev minus each container's own nodes. */
export async function privilegedDevices(devRoot = '/dev'): Promise<HostDevice[]> {
  const found: HostDevice[] = [];
  await walk(devRoot, (name, isDir) => (isDir ? PRIVATE_DEV_DIRS.has(name) : PRIVATE_DEV_NODES.has(name)), found);
  return found;
}
