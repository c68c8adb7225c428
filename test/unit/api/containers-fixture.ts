// A scripted Engine for route tests: containers live in memory, output and exits happen
// when a test says so, and every call is recorded.
import { PassThrough, Duplex } from 'node:stream';
import { BerthError } from '../../../src/util/errors';
import type { ContainerEvent, CreateRequest, Engine, HostConfig, LogEntry, LogsOptions, WaitCondition } from '../../../src/engine/types';
import type { AttachStream } from '../../../src/runtime/types';

export interface FakeContainer {
  id: string;
  name: string;
  image: string;
  tty: boolean;
  status: 'created' | 'running' | 'exited';
  exitCode: number;
  stdout: PassThrough;
  stderr: PassThrough;
  stdin: PassThrough;
  stdinText: string;
  stdinEnded: boolean;
  logs: LogEntry[];
  exited: Promise<void>;
  markExited: () => void;
}

export interface FakeExec { id: string; container: string; cmd: string[]; tty: boolean; stdin: boolean; exitCode: number | null; stream?: AttachStream & { tty: boolean }; stdout?: PassThrough; finish: (code: number) => void; stdinText: string }

function makeAttach(stdout: PassThrough, stderr: PassThrough, stdin: PassThrough | undefined, closed: Promise<void>, tty: boolean): AttachStream & { tty: boolean } {
  return { stdout, stderr, stdin, closed, close: () => {}, socket: new Duplex({ read() {}, write(_c, _e, cb) { cb(); } }), tty };
}

export class FakeEngine implements Engine {
  containers = new Map<string, FakeContainer>();
  execs = new Map<string, FakeExec>();
  calls: string[] = [];
  /** Runs when a container starts, to script its output and exit. */
  onStart?: (c: FakeContainer, cmd: string[]) => void;
  private cmds = new Map<string, string[]>();
  /** Set to hold wait registration until a test releases it. */
  waitReady: Promise<void> = Promise.resolve();
  statsSample: Record<string, unknown> = { read: '2024-01-01T00:00:00Z', cpu_stats: { cpu_usage: { total_usage: 200 }, system_cpu_usage: 2000, online_cpus: 1 }, precpu_stats: { cpu_usage: { total_usage: 100 }, system_cpu_usage: 1000 }, memory_stats: { usage: 1024, limit: 4096 } };
  private listeners = new Set<(e: ContainerEvent) => void>();
  private nextId = 1;

  emit(Action: string, c: FakeContainer): void {
    const now = Date.now();
    const event: ContainerEvent = { Type: 'container', Action, Actor: { ID: c.id, Attributes: { name: c.name, image: c.image } }, time: Math.floor(now / 1000), timeNano: now * 1e6 };
    for (const l of this.listeners) l(event);
  }

  get(nameOrId: string): FakeContainer {
    for (const c of this.containers.values()) if (c.id === nameOrId || c.name === nameOrId || (nameOrId.length >= 3 && c.id.startsWith(nameOrId))) return c;
    throw new BerthError('ENOCONTAINER', `No such container: ${nameOrId}`);
  }

  /** Ends the container's process with output already written. */
  exit(nameOrId: string, code: number): void {
    const c = this.get(nameOrId);
    c.status = 'exited';
    c.exitCode = code;
    c.stdout.end();
    c.stderr.end();
    c.markExited();
    this.emit('die', c);
  }

  async create(req: CreateRequest, name?: string): Promise<{ Id: string; Warnings: string[] }> {
    this.calls.push(`create ${name ?? ''}`);
    if (req.Image === 'missing') throw new BerthError('ENOIMAGE', 'No such image: missing:latest');
    if (name && [...this.containers.values()].some((c) => c.name === name)) throw new BerthError('ECONFLICT', `Conflict. The container name "/${name}" is already in use`);
    const id = String(this.nextId++).padStart(64, 'a');
    let markExited!: () => void;
    const exited = new Promise<void>((r) => { markExited = r; });
    const c: FakeContainer = { id, name: name ?? `c${this.nextId}`, image: req.Image, tty: req.Tty === true, status: 'created', exitCode: 0, stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough(), stdinText: '', stdinEnded: false, logs: [], exited, markExited };
    c.stdin.on('data', (d: Buffer) => { c.stdinText += d.toString(); });
    c.stdin.on('end', () => { c.stdinEnded = true; });
    c.stdin.resume();
    this.containers.set(id, c);
    this.cmds.set(id, Array.isArray(req.Cmd) ? req.Cmd : []);
    this.emit('create', c);
    return { Id: id, Warnings: [] };
  }

  async start(nameOrId: string): Promise<void> {
    const c = this.get(nameOrId);
    if (c.status === 'running') throw new BerthError('ENOTMODIFIED', 'container already started');
    c.status = 'running';
    this.emit('start', c);
    this.onStart?.(c, this.cmds.get(c.id) ?? []);
  }

  async stop(nameOrId: string, opts?: { timeout?: number; signal?: string }): Promise<void> {
    this.calls.push(`stop ${nameOrId} ${JSON.stringify(opts ?? {})}`);
    const c = this.get(nameOrId);
    if (c.status !== 'running') throw new BerthError('ENOTMODIFIED', 'container already stopped');
    this.exit(nameOrId, 143);
  }

  async kill(nameOrId: string, signal?: string): Promise<void> {
    this.calls.push(`kill ${nameOrId} ${signal ?? ''}`);
    const c = this.get(nameOrId);
    if (c.status !== 'running') throw new BerthError('ECONFLICT', `Container ${c.id} is not running`);
  }

  async restart(nameOrId: string): Promise<void> { this.get(nameOrId).status = 'running'; }
  async pause(nameOrId: string): Promise<void> { this.calls.push(`pause ${nameOrId}`); this.get(nameOrId); }
  async unpause(nameOrId: string): Promise<void> { this.calls.push(`unpause ${nameOrId}`); this.get(nameOrId); }

  async remove(nameOrId: string, opts?: { force?: boolean; volumes?: boolean }): Promise<void> {
    const c = this.get(nameOrId);
    if (c.status === 'running' && !opts?.force) throw new BerthError('ECONFLICT', `cannot remove container "/${c.name}": container is running: stop the container before removing or force remove`);
    this.containers.delete(c.id);
    this.emit('destroy', c);
  }

  async rename(nameOrId: string, newName: string): Promise<void> { this.get(nameOrId).name = newName; }

  wait(nameOrId: string, _condition: WaitCondition): { ready: Promise<void>; result: Promise<{ StatusCode: number; Error: { Message: string } | null }> } {
    let c: FakeContainer;
    try { c = this.get(nameOrId); } catch (err) { return { ready: Promise.reject(err), result: Promise.reject(err) }; }
    return { ready: this.waitReady, result: c.exited.then(() => ({ StatusCode: c.exitCode, Error: null })) };
  }

  async inspect(nameOrId: string): Promise<Record<string, unknown>> {
    const c = this.get(nameOrId);
    return { Id: c.id, Name: `/${c.name}`, Config: { Tty: c.tty, Image: c.image }, State: { Status: c.status, Running: c.status === 'running', ExitCode: c.exitCode } };
  }

  async list(opts: { all?: boolean; limit?: number; filters?: Record<string, string[]> }): Promise<Array<Record<string, unknown>>> {
    this.calls.push(`list ${JSON.stringify(opts)}`);
    return [...this.containers.values()].filter((c) => opts.all || c.status === 'running').map((c) => ({ Id: c.id, Names: [`/${c.name}`], Image: c.image, ImageID: 'sha256:img', State: c.status }));
  }

  async *logs(nameOrId: string, opts: LogsOptions, signal?: AbortSignal): AsyncIterable<LogEntry> {
    const c = this.get(nameOrId);
    for (const e of c.logs) if ((e.stream === 'stdout' && opts.stdout) || (e.stream === 'stderr' && opts.stderr)) yield e;
    if (opts.follow && c.status === 'running') {
      await Promise.race([c.exited, new Promise((r) => signal?.addEventListener('abort', r))]);
    }
  }

  async attach(nameOrId: string, opts: { stdin: boolean }): Promise<AttachStream & { tty: boolean }> {
    const c = this.get(nameOrId);
    return makeAttach(c.stdout, c.stderr, opts.stdin ? c.stdin : undefined, c.exited, c.tty);
  }

  async resize(nameOrId: string, rows: number, cols: number): Promise<void> { this.calls.push(`resize ${nameOrId} ${rows}x${cols}`); this.get(nameOrId); }
  async top(nameOrId: string): Promise<{ Titles: string[]; Processes: string[][] }> { this.get(nameOrId); return { Titles: ['PID', 'CMD'], Processes: [['1', 'sleep 60']] }; }
  async stats(nameOrId: string): Promise<Record<string, unknown>> { this.get(nameOrId); return this.statsSample; }
  async update(nameOrId: string, hostConfig: HostConfig): Promise<{ Warnings: string[] }> { this.calls.push(`update ${JSON.stringify(hostConfig)}`); this.get(nameOrId); return { Warnings: [] }; }
  async prune(): Promise<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }> {
    const gone = [...this.containers.values()].filter((c) => c.status !== 'running').map((c) => c.id);
    for (const id of gone) this.containers.delete(id);
    return { ContainersDeleted: gone, SpaceReclaimed: 0 };
  }

  async execCreate(nameOrId: string, req: { Cmd: string[]; Tty?: boolean; AttachStdin?: boolean }): Promise<{ Id: string }> {
    const c = this.get(nameOrId);
    if (c.status !== 'running') throw new BerthError('ECONFLICT', `Container ${c.id} is not running`);
    const id = String(this.nextId++).padStart(64, 'e');
    let finish!: (code: number) => void;
    const done = new Promise<number>((r) => { finish = r; });
    const exec: FakeExec = { id, container: c.id, cmd: req.Cmd, tty: req.Tty === true, stdin: req.AttachStdin === true, exitCode: null, finish: (code) => finish(code), stdinText: '' };
    void done.then((code) => { exec.exitCode = code; });
    this.execs.set(id, exec);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const stdin = new PassThrough();
    // The fake process echoes its stdin to stdout and exits 7 when stdin closes.
    stdin.on('data', (d: Buffer) => { exec.stdinText += d.toString(); stdout.write(d); });
    stdin.on('end', () => { stdout.end(); stderr.end(); exec.finish(7); });
    exec.stdout = stdout;
    exec.stream = makeAttach(stdout, stderr, stdin, done.then(() => {}), exec.tty);
    return { Id: id };
  }

  async execStart(execId: string, opts: { detach: boolean; stdin: boolean }): Promise<(AttachStream & { tty: boolean }) | undefined> {
    const exec = this.execs.get(execId);
    if (!exec) throw new BerthError('ENOTFOUND', `No such exec instance: ${execId}`);
    this.calls.push(`execStart ${JSON.stringify(opts)}`);
    if (opts.detach) { exec.finish(0); return undefined; }
    exec.stdout!.write(`running ${exec.cmd.join(' ')}\n`);
    // Without stdin the fake command finishes at once, exiting with its second word if numeric.
    if (!opts.stdin && !exec.tty) setTimeout(() => { exec.stdout!.end(); exec.finish(Number(exec.cmd[1]) || 0); }, 10);
    return exec.stream;
  }

  async execResize(execId: string, rows: number, cols: number): Promise<void> { this.calls.push(`execResize ${rows}x${cols}`); if (!this.execs.has(execId)) throw new BerthError('ENOTFOUND', `No such exec instance: ${execId}`); }

  async execInspect(execId: string): Promise<Record<string, unknown>> {
    const exec = this.execs.get(execId);
    if (!exec) throw new BerthError('ENOTFOUND', `No such exec instance: ${execId}`);
    return { ID: exec.id, ContainerID: exec.container, Running: exec.exitCode === null, ExitCode: exec.exitCode, OpenStdin: exec.stdin, ProcessConfig: { tty: exec.tty, entrypoint: exec.cmd[0], arguments: exec.cmd.slice(1) } };
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    const all = [...this.containers.values()];
    const running = all.filter((c) => c.status === 'running').length;
    return { total: all.length, running, paused: 0, stopped: all.length - running };
  }

  onEvent(listener: (e: ContainerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {}
}
