// The Runtime on top of berth-helper: one bundle directory per container under the exec
// root, the helper started detached with execFile, and everything afterwards through
// its files (helper.pid, state, exit) and its ctl socket. No child process is kept, so
// a restarted daemon can pick up where the previous one left off.
import { execFile } from 'node:child_process';
import { existsSync, promises as fsp, watch, type FSWatcher } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic';
import { BerthError } from '../util/errors';
import { ctlCommand, ctlRequest, openAttach } from './helper-client';
import { buildExecSpec, buildSpec, type HostSpecOptions } from './spec';
import { parseExitFile, parseStateFile, parseStateReply, serializeExecSpec, serializeSpec } from './spec-format';
import type { AttachOptions, AttachStream, ContainerProcessConfig, ExecConfig, ExitInfo, HelperSpec, RunningInfo, Runtime } from './types';

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;
const KEY_LENGTH = 12;
/** fs.watch does the real work; this catches what it misses (some file systems, dir races). */
const POLL_MS = 1000;
const HELPER_TIMEOUT_MS = 60_000;
const KILL_WAIT_MS = 3000;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface RuntimeOptions {
  execRoot: string;
  helperPath?: string;
  /** Give containers a cgroup namespace (and a cgroup2 /sys/fs/cgroup); default: host is cgroup v2 only. */
  cgroupNamespace?: boolean;
  /** Highest capability number the kernel knows; default from /proc/sys/kernel/cap_last_cap. */
  lastCap?: number;
}

/** BERTH_HELPER, else beside the bundle or the executable, else the repo's dist/ (running from source). */
export function defaultHelperPath(): string {
  if (process.env.BERTH_HELPER) return process.env.BERTH_HELPER;
  const execDir = resolve(process.execPath, '..');
  // dist/ holds every target's single binary with its helper as berth-helper-<target>.
  const targetName = ({ x64: 'x86_64', arm64: 'aarch64', arm: 'armv7', mipsel: 'mipsel', mips: 'mips' } as Record<string, string>)[process.arch];
  const candidates = [join(__dirname, 'berth-helper'), join(execDir, 'berth-helper'), ...(targetName ? [join(execDir, `berth-helper-${targetName}`)] : [])];
  for (const c of candidates) if (existsSync(c)) return c;
  return resolve(__dirname, '../../dist/berth-helper');
}

function checkId(id: string, what: string): string {
  if (!ID_PATTERN.test(id)) throw new BerthError('EINVAL', `invalid ${what} id ${JSON.stringify(id)}`);
  return id.slice(0, KEY_LENGTH);
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** The fields of /proc/PID/stat after the command name; undefined when there is no such process. */
async function procStat(pid: number): Promise<string[] | undefined> {
  const text = await readIfExists(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface HelperRun { code: number | null; stderr: string; error?: Error & { code?: unknown } }

export class HelperRuntime implements Runtime {
  readonly execRoot: string;
  readonly helperPath: string;
  private readonly host: HostSpecOptions;

  constructor(opts: RuntimeOptions & { host: HostSpecOptions }) {
    this.execRoot = resolve(opts.execRoot);
    this.helperPath = opts.helperPath ?? defaultHelperPath();
    this.host = opts.host;
    // Every socket path has the same length for a given exec root; the longest is an exec's.
    const longest = join(this.execRoot, 'c', 'x'.repeat(KEY_LENGTH), 'e', 'x'.repeat(KEY_LENGTH) + '.sock');
    if (Buffer.byteLength(longest) > MAX_SOCKET_PATH) {
      throw new BerthError('EINVAL', `exec root ${this.execRoot} is too long: helper sockets such as ${longest} must fit in ${MAX_SOCKET_PATH} bytes (use a short path like /var/run/berth)`);
    }
  }

  bundleDir(id: string): string {
    return join(this.execRoot, 'c', checkId(id, 'container'));
  }

  private file(id: string, name: string): string {
    return join(this.bundleDir(id), name);
  }

  private execFiles(id: string, execId: string) {
    const key = checkId(execId, 'exec');
    const rel = (ext: string) => `e/${key}.${ext}`;
    const bundle = this.bundleDir(id);
    return { bundle, dir: join(bundle, 'e'), spec: join(bundle, rel('spec')), sock: join(bundle, rel('sock')), exit: join(bundle, rel('exit')), ctlRel: rel('sock'), exitRel: rel('exit') };
  }

  buildSpec(_id: string, rootfs: string, config: ContainerProcessConfig, extra: { cgroupProcs: string[]; log?: HelperSpec['log']; waitStart: boolean }): Promise<HelperSpec> {
    return buildSpec(rootfs, config, extra, this.host);
  }

  private runHelper(args: string[]): Promise<HelperRun> {
    return new Promise((resolvePromise) => {
      execFile(this.helperPath, args, { timeout: HELPER_TIMEOUT_MS, killSignal: 'SIGKILL', encoding: 'utf8' }, (error, _stdout, stderr) => {
        if (!error) { resolvePromise({ code: 0, stderr }); return; }
        const code = typeof error.code === 'number' ? error.code : null;
        resolvePromise(code === null ? { code, stderr, error: error as Error & { code?: unknown } } : { code, stderr });
      });
    });
  }

  private helperFailure(what: string, run: HelperRun): BerthError {
    if (run.error?.code === 'ENOENT' || run.error?.code === 'EACCES') {
      return new BerthError('EINTERNAL', `berth-helper not found or not executable at ${this.helperPath} (set BERTH_HELPER)`, { cause: run.error });
    }
    const message = run.stderr.trim().replace(/^berth-helper:\s*/, '') || run.error?.message || `exit status ${run.code}`;
    return new BerthError('EINTERNAL', `${what}: ${message}`, run.error ? { cause: run.error } : undefined);
  }

  async create(id: string, spec: HelperSpec): Promise<void> {
    const bundle = this.bundleDir(id);
    await fsp.mkdir(bundle, { recursive: true, mode: 0o700 });
    const owner = (await readIfExists(join(bundle, 'id')))?.trim();
    if (owner !== undefined && owner !== id) throw new BerthError('ECONFLICT', `bundle ${bundle} belongs to container ${owner}`);
    if (await this.helperAlive(id)) throw new BerthError('ECONFLICT', `container ${id} already has a running berth-helper`);
    if (owner === undefined) await writeFileAtomic(join(bundle, 'id'), id + '\n', 0o600);
    // Leftovers of the previous run must not be mistaken for this one's (waitExit, exec).
    await Promise.all(['exit', 'state'].map((f) => fsp.rm(join(bundle, f), { force: true })));
    await fsp.rm(join(bundle, 'e'), { recursive: true, force: true });
    await writeFileAtomic(join(bundle, 'spec'), serializeSpec(spec), 0o600);
    const run = await this.runHelper(['run', bundle]);
    if (run.code !== 0) throw this.helperFailure(`create container ${id}`, run);
  }

  async start(id: string): Promise<void> {
    await ctlCommand(this.file(id, 'ctl.sock'), 'start', `container ${id}`);
  }

  attach(id: string, opts: AttachOptions): Promise<AttachStream> {
    return openAttach(this.file(id, 'ctl.sock'), opts, `container ${id}`);
  }

  async signal(id: string, signal: number): Promise<void> {
    if (!Number.isInteger(signal) || signal < 1 || signal > 64) throw new BerthError('EINVAL', `invalid signal ${signal}`);
    await ctlCommand(this.file(id, 'ctl.sock'), `signal ${signal}`, `container ${id}`);
  }

  async resize(id: string, rows: number, cols: number): Promise<void> {
    await ctlCommand(this.file(id, 'ctl.sock'), resizeRequest(rows, cols), `container ${id}`);
  }

  async running(id: string): Promise<RunningInfo | undefined> {
    const text = await readIfExists(this.file(id, 'state'));
    return text === undefined ? undefined : parseStateFile(text);
  }

  async exited(id: string): Promise<ExitInfo | undefined> {
    const text = await readIfExists(this.file(id, 'exit'));
    return text === undefined ? undefined : parseExitFile(text);
  }

  waitExit(id: string, signal?: AbortSignal): Promise<ExitInfo> {
    const bundle = this.bundleDir(id);
    return this.waitForExitFile(bundle, () => this.exited(id), async () => !(await this.helperAlive(id)), `container ${id}`, signal);
  }

  /** The helper's pid when helper.pid names a live berth-helper serving this bundle. */
  async helperPid(id: string): Promise<number | undefined> {
    const bundle = this.bundleDir(id);
    const pid = Number((await readIfExists(join(bundle, 'helper.pid')))?.trim());
    if (!Number.isInteger(pid) || pid <= 1 || !processExists(pid)) return undefined;
    const stat = await procStat(pid);
    if (!stat || stat[0] === 'Z') return undefined;
    // A pid from a file may have been reused since: it must be a helper run for this bundle.
    const argv = (await readIfExists(`/proc/${pid}/cmdline`))?.split('\0') ?? [];
    if (!argv.some((a) => a.includes('berth-helper')) || !argv.includes(bundle)) return undefined;
    return pid;
  }

  async helperAlive(id: string): Promise<boolean> {
    return (await this.helperPid(id)) !== undefined;
  }

  async remove(id: string): Promise<void> {
    const bundle = this.bundleDir(id);
    const helper = await this.helperPid(id);
    if (helper !== undefined) {
      // Killing only the helper would orphan the container: its init goes first (which
      // takes the whole pid namespace, execs included), but only while it is the helper's child.
      const init = await this.containerInitPid(id);
      if (init !== undefined && (await procStat(init))?.[1] === String(helper)) killQuietly(init);
      killQuietly(helper);
      const deadline = Date.now() + KILL_WAIT_MS;
      while (Date.now() < deadline && (await this.helperPid(id)) !== undefined) await sleep(20);
    }
    await fsp.rm(bundle, { recursive: true, force: true });
  }

  /** The container's pid 1: from the helper (also before `start`), else the state file. */
  private async containerInitPid(id: string): Promise<number | undefined> {
    try {
      const state = parseStateReply(await ctlRequest(this.file(id, 'ctl.sock'), 'state', `container ${id}`, 2000));
      if (state && state.pid > 0) return state.pid;
    } catch { /* no socket: fall back to the file */ }
    return (await this.running(id))?.pid;
  }

  async list(): Promise<string[]> {
    let names: string[];
    try {
      names = await fsp.readdir(join(this.execRoot, 'c'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const ids: string[] = [];
    for (const name of names.sort()) {
      if (!ID_PATTERN.test(name)) continue;
      const id = (await readIfExists(join(this.execRoot, 'c', name, 'id')))?.trim();
      ids.push(id && id.startsWith(name) ? id : name);
    }
    return ids;
  }

  async exec(id: string, execId: string, config: ExecConfig, containerConfig: ContainerProcessConfig & { rootfs: string; cgroupProcs: string[] }): Promise<void> {
    const f = this.execFiles(id, execId);
    const spec = await buildExecSpec(containerConfig.rootfs, containerConfig, config, { ctl: f.ctlRel, exit: f.exitRel }, this.host);
    await fsp.mkdir(f.dir, { recursive: true, mode: 0o700 });
    await fsp.rm(f.exit, { force: true });
    await writeFileAtomic(f.spec, serializeExecSpec(spec), 0o600);
    const run = await this.runHelper(['exec', f.bundle, f.spec]);
    if (run.code !== 0) throw this.helperFailure(`exec in container ${id}`, run);
  }

  async execStart(id: string, execId: string): Promise<void> {
    await ctlCommand(this.execFiles(id, execId).sock, 'start', `exec ${execId}`);
  }

  execAttach(id: string, execId: string, opts: AttachOptions): Promise<AttachStream> {
    return openAttach(this.execFiles(id, execId).sock, opts, `exec ${execId}`);
  }

  async execResize(id: string, execId: string, rows: number, cols: number): Promise<void> {
    await ctlCommand(this.execFiles(id, execId).sock, resizeRequest(rows, cols), `exec ${execId}`);
  }

  async execExited(id: string, execId: string): Promise<ExitInfo | undefined> {
    const text = await readIfExists(this.execFiles(id, execId).exit);
    return text === undefined ? undefined : parseExitFile(text);
  }

  execWaitExit(id: string, execId: string, signal?: AbortSignal): Promise<ExitInfo> {
    const f = this.execFiles(id, execId);
    // An exec helper has no pid file: its socket answering is its sign of life. It removes
    // the socket just before writing the exit file, so only a second miss counts.
    let misses = 0;
    const dead = async () => {
      const alive = await ctlRequest(f.sock, 'state', `exec ${execId}`, 2000).then(() => true, () => false);
      misses = alive ? 0 : misses + 1;
      return misses >= 2;
    };
    return this.waitForExitFile(f.dir, () => this.execExited(id, execId), dead, `exec ${execId}`, signal);
  }

  async execRunning(id: string, execId: string): Promise<{ pid: number } | undefined> {
    try {
      const state = parseStateReply(await ctlRequest(this.execFiles(id, execId).sock, 'state', `exec ${execId}`, 2000));
      return state && state.status === 'running' && state.pid > 0 ? { pid: state.pid } : undefined;
    } catch {
      return undefined;
    }
  }

  async execRemove(id: string, execId: string): Promise<void> {
    const f = this.execFiles(id, execId);
    await Promise.all([f.spec, f.sock, f.exit].map((file) => fsp.rm(file, { force: true })));
  }

  /**
   * Resolves with the exit file: fs.watch on its directory, plus a slow poll that also
   * notices a helper that died without writing one (SIGKILLed, OOM): that yields code 255.
   */
  private waitForExitFile(dir: string, read: () => Promise<ExitInfo | undefined>, dead: () => Promise<boolean>, what: string, signal?: AbortSignal): Promise<ExitInfo> {
    return new Promise<ExitInfo>((resolvePromise, reject) => {
      if (!existsSync(dir)) { reject(new BerthError('ENOCONTAINER', `${what}: no bundle at ${dir}`)); return; }
      let settled = false;
      let watcher: FSWatcher | undefined;
      let checking = false;
      let recheck = false;
      const finish = (err: unknown, info?: ExitInfo) => {
        if (settled) return;
        settled = true;
        clearInterval(timer);
        watcher?.close();
        signal?.removeEventListener('abort', onAbort);
        if (info) resolvePromise(info);
        else reject(err);
      };
      const check = async (withLiveness: boolean) => {
        if (settled) return;
        // A change seen while a read is under way must not be lost: read again after it.
        if (checking) { recheck = true; return; }
        checking = true;
        try {
          const info = await read();
          if (info) { finish(undefined, info); return; }
          if (withLiveness && (await dead())) {
            const late = await read(); // it may have been written while we looked
            finish(undefined, late ?? { code: 255, signal: 0, finished: new Date().toISOString(), error: 'berth-helper exited without writing an exit status' });
          }
        } catch (err) {
          finish(err);
        } finally {
          checking = false;
        }
        if (recheck) { recheck = false; void check(false); }
      };
      const onAbort = () => finish(signal?.reason ?? new BerthError('EINTERNAL', `${what}: wait aborted`));
      if (signal?.aborted) { onAbort(); return; }
      signal?.addEventListener('abort', onAbort);
      const timer = setInterval(() => void check(true), POLL_MS);
      try {
        watcher = watch(dir, { persistent: false }, () => void check(false));
        watcher.on('error', () => { watcher?.close(); watcher = undefined; });
      } catch { /* no inotify: the poll alone */ }
      void check(false);
    });
  }
}

function resizeRequest(rows: number, cols: number): string {
  if (![rows, cols].every((n) => Number.isInteger(n) && n >= 0 && n <= 65535)) throw new BerthError('EINVAL', `invalid terminal size ${rows}x${cols}`);
  return `resize ${rows} ${cols}`;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch { /* already gone */ }
}
