// A cgroupfs stand-in for unit tests: real temp directories, with the kernel's side of
// cgroupfs emulated in the ops (interface files appear on mkdir, rmdir refuses busy
// groups, writes are recorded, missing files are ENOENT instead of being created).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, rmdirSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { CgroupOps } from '../../../src/cgroups/ops';

export function errnoError(code: string, path: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${path}`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

export const V1_FILES: Record<string, Record<string, string>> = {
  memory: {
    'memory.limit_in_bytes': '9223372036854771712', 'memory.memsw.limit_in_bytes': '9223372036854771712',
    'memory.usage_in_bytes': '0', 'memory.failcnt': '0', 'memory.stat': 'cache 0\ntotal_cache 0\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
  },
  cpu: { 'cpu.shares': '1024', 'cpu.cfs_quota_us': '-1', 'cpu.cfs_period_us': '100000' },
  cpuacct: { 'cpuacct.usage': '0' },
  cpuset: { 'cpuset.cpus': '', 'cpuset.mems': '', 'cpuset.effective_cpus': '' },
  pids: { 'pids.max': 'max', 'pids.current': '0' },
  blkio: { 'blkio.bfq.weight': '100' },
  devices: { 'devices.allow': '', 'devices.deny': '', 'devices.list': 'a *:* rwm' },
  freezer: { 'freezer.state': 'THAWED' },
};

export const V2_FILES: Record<string, Record<string, string>> = {
  '': { 'cgroup.procs': '', 'cgroup.controllers': '', 'cgroup.subtree_control': '', 'cgroup.events': 'populated 0\nfrozen 0\n', 'cgroup.freeze': '0', 'cgroup.kill': '' },
  memory: { 'memory.max': 'max', 'memory.swap.max': 'max', 'memory.current': '0', 'memory.stat': 'anon 0\nfile 0\n', 'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n' },
  cpu: { 'cpu.weight': '100', 'cpu.max': 'max 100000', 'cpu.stat': 'usage_usec 0\n' },
  cpuset: { 'cpuset.cpus': '', 'cpuset.mems': '', 'cpuset.cpus.effective': '0-3' },
  pids: { 'pids.max': 'max', 'pids.current': '0' },
  io: { 'io.weight': 'default 100' },
};

export interface FixtureHierarchy {
  /** Mount point inside the fixture root. */
  mount: string;
  kind: 'v1' | 'v2';
  /** v1: the controllers of this hierarchy; v2: the controllers the root offers. */
  controllers: string[];
}

export class FakeCgroupFs implements CgroupOps {
  readonly writes: Array<{ path: string; value: string }> = [];
  readonly signals: Array<{ pid: number; signal: NodeJS.Signals | number }> = [];
  /** Paths whose writes fail with this errno, to test error handling. */
  readonly failWrites = new Map<string, string>();
  /** Leaves out interface files by name when groups are created (a host without them). */
  readonly omitFiles = new Set<string>();

  constructor(readonly hierarchies: FixtureHierarchy[]) {
    for (const h of hierarchies) {
      mkdirSync(h.mount, { recursive: true });
      if (h.kind === 'v1') {
        writeFileSync(join(h.mount, 'cgroup.procs'), '');
        for (const c of h.controllers) {
          for (const [file, value] of Object.entries(V1_FILES[c] ?? {})) writeFileSync(join(h.mount, file), value);
        }
        if (h.controllers.includes('cpuset')) { writeFileSync(join(h.mount, 'cpuset.cpus'), '0-3'); writeFileSync(join(h.mount, 'cpuset.mems'), '0'); }
      } else {
        writeFileSync(join(h.mount, 'cgroup.procs'), '');
        writeFileSync(join(h.mount, 'cgroup.controllers'), h.controllers.join(' '));
        writeFileSync(join(h.mount, 'cgroup.subtree_control'), '');
      }
    }
  }

  private hierarchyOf(path: string): FixtureHierarchy {
    const h = this.hierarchies.find((x) => path === x.mount || path.startsWith(x.mount + '/'));
    if (!h) throw new Error(`not in a fixture hierarchy: ${path}`);
    return h;
  }

  async readFile(path: string): Promise<string> {
    if (!existsSync(path)) throw errnoError('ENOENT', path);
    return readFileSync(path, 'utf8');
  }

  async writeFile(path: string, value: string): Promise<void> {
    if (!existsSync(path)) throw errnoError('ENOENT', path);
    const failure = this.failWrites.get(path);
    if (failure) throw errnoError(failure, path);
    this.writes.push({ path, value });
    const dir = dirname(path);
    const name = path.slice(dir.length + 1);
    if (name === 'cgroup.subtree_control') {
      // "+memory" adds to the set the kernel reports back.
      const enabled = new Set(readFileSync(path, 'utf8').split(/\s+/).filter(Boolean));
      for (const token of value.split(/\s+/)) {
        if (token.startsWith('+')) enabled.add(token.slice(1));
        if (token.startsWith('-')) enabled.delete(token.slice(1));
      }
      writeFileSync(path, [...enabled].join(' '));
    } else if (name === 'cgroup.freeze') {
      writeFileSync(path, value);
      writeFileSync(join(dir, 'cgroup.events'), `populated 1\nfrozen ${value}\n`);
    } else if (name === 'cgroup.kill') {
      writeFileSync(join(dir, 'cgroup.procs'), '');
    } else {
      writeFileSync(path, value);
    }
  }

  async exists(path: string): Promise<boolean> { return existsSync(path); }

  async mkdir(path: string): Promise<void> {
    if (existsSync(path)) throw errnoError('EEXIST', path);
    if (!existsSync(dirname(path))) throw errnoError('ENOENT', path);
    mkdirSync(path);
    const h = this.hierarchyOf(path);
    const files: Record<string, string> = { 'cgroup.procs': '' };
    if (h.kind === 'v1') {
      for (const c of h.controllers) Object.assign(files, V1_FILES[c]);
    } else {
      // A v2 child gets the files of the controllers its parent enabled for it.
      const enabled = readFileSync(join(dirname(path), 'cgroup.subtree_control'), 'utf8').split(/\s+/).filter(Boolean);
      Object.assign(files, V2_FILES['']);
      for (const c of enabled) Object.assign(files, V2_FILES[c]);
      files['cgroup.controllers'] = enabled.join(' ');
    }
    for (const [file, value] of Object.entries(files)) if (!this.omitFiles.has(file)) writeFileSync(join(path, file), value);
  }

  async rmdir(path: string): Promise<void> {
    if (!existsSync(path)) throw errnoError('ENOENT', path);
    const entries = readdirSync(path);
    if (entries.some((e) => statSync(join(path, e)).isDirectory())) throw errnoError('EBUSY', path);
    if (readFileSync(join(path, 'cgroup.procs'), 'utf8').trim()) throw errnoError('EBUSY', path);
    for (const e of entries) unlinkSync(join(path, e));
    rmdirSync(path);
  }

  async listDirs(path: string): Promise<string[]> {
    if (!existsSync(path)) throw errnoError('ENOENT', path);
    return readdirSync(path, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  }

  kill(pid: number, signal: NodeJS.Signals | number): void {
    this.signals.push({ pid, signal });
    // A killed process leaves every group it was in.
    if (signal === 'SIGKILL' || signal === 9) for (const h of this.hierarchies) removePid(h.mount, pid);
  }

  async sleep(): Promise<void> { await new Promise((r) => setImmediate(r)); }

  /** The values written to one file, in order. */
  written(path: string): string[] {
    return this.writes.filter((w) => w.path === path).map((w) => w.value);
  }
}

function removePid(dir: string, pid: number): void {
  const procs = join(dir, 'cgroup.procs');
  if (existsSync(procs)) writeFileSync(procs, readFileSync(procs, 'utf8').split('\n').filter((l) => l.trim() && Number(l) !== pid).join('\n'));
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removePid(join(dir, e.name), pid);
}

export async function withTempDir(prefix: string, fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try { await fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

/** A mountinfo line in the kernel's format. */
export function mountLine(id: number, mountPoint: string, fsType: string, superOptions: string, source = fsType): string {
  return `${id} 1 0:${id} / ${mountPoint} rw,nosuid,nodev,noexec,relatime shared:${id} - ${fsType} ${source} ${superOptions}`;
}
