// Drives the native helper (dist/berth-helper) directly: builds it when missing, makes a
// busybox rootfs, writes bundle specs in the helper's line format, talks to its ctl socket
// and reads its state/exit files. Tests need root and a real kernel.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, symlinkSync, chmodSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DOCKER_DEFAULT_CAPS } from '../../src/runtime/caps';
import { defaultMounts, MASKED_PATHS, MS as RT_MS, READONLY_PATHS } from '../../src/runtime/spec';
import {
  escapeValue, parseExitFile, serializeExecSpec as serializeRuntimeExecSpec, serializeSpec as serializeRunSpec,
} from '../../src/runtime/spec-format';
import type { ExitInfo } from '../../src/runtime/types';

export const REPO_ROOT = resolve(__dirname, '../..');
export const HELPER_BIN = join(REPO_ROOT, 'dist/berth-helper');

/** Builds dist/berth-helper unless it is there already; returns its path. */
export function ensureHelper(): string {
  if (!existsSync(HELPER_BIN)) {
    execFileSync(process.execPath, [join(REPO_ROOT, 'build/helper.mjs'), HELPER_BIN], { stdio: 'inherit' });
  }
  return HELPER_BIN;
}

/** Fills `dir` with the default image's busybox layer, or with the host's static busybox. */
export function makeBusyboxRootfs(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const image = join(REPO_ROOT, 'dist/default-image.tar');
  if (existsSync(image)) {
    const manifest = JSON.parse(execFileSync('tar', ['-xOf', image, 'manifest.json'], { encoding: 'utf8' }));
    const layer = execFileSync('tar', ['-xOf', image, manifest[0].Layers[0]], { maxBuffer: 256 << 20 });
    execFileSync('tar', ['-x', '-C', dir], { input: layer });
    return;
  }
  for (const d of ['bin', 'dev', 'etc', 'proc', 'sys', 'tmp', 'mnt']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync('/bin/busybox', join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'echo', 'cat', 'ls', 'grep', 'hostname', 'sleep', 'mount', 'tr', 'true', 'wc', 'head', 'id']) {
    symlinkSync('busybox', join(dir, 'bin', applet));
  }
}

export interface MountSpec { source: string; target: string; fstype: string; flags: number; data?: string }

export interface HelperSpec {
  rootfs: string;
  args: string[];
  env?: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
  groups?: number[];
  hostname?: string;
  namespaces?: string[];
  netns?: string;
  mounts?: MountSpec[];
  masked?: string[];
  readonly?: string[];
  caps?: string[];
  rlimits?: Array<[string, string | number, string | number]>;
  noNewPrivs?: boolean;
  tty?: boolean;
  stdin?: boolean;
  cgroupProcs?: string[];
  log?: { path: string; maxBytes: number; maxFiles: number };
  init?: boolean;
  waitStart?: boolean;
}

export interface ExecSpec {
  args: string[];
  env?: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
  caps?: string[];
  tty?: boolean;
  stdin?: boolean;
  noNewPrivs?: boolean;
  ctl: string;
  exit: string;
  waitStart?: boolean;
}

// Linux MS_* bits used by the Docker-like defaults below.
export const MS = {
  RDONLY: RT_MS.RDONLY, NOSUID: RT_MS.NOSUID, NODEV: RT_MS.NODEV, NOEXEC: RT_MS.NOEXEC, BIND: RT_MS.BIND, REC: RT_MS.REC,
  PRIVATE: RT_MS.PRIVATE, STRICTATIME: RT_MS.STRICTATIME,
} as const;

export const DOCKER_CAPS = DOCKER_DEFAULT_CAPS;

/** What Docker sets up for a container (see the reference notes), minus the cgroup mount. */
export function dockerDefaults(): Omit<HelperSpec, 'rootfs' | 'args'> {
  return {
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    namespaces: ['mnt', 'uts', 'ipc', 'pid', 'net'],
    mounts: defaultMounts({ privileged: false, cgroupNamespace: false }),
    masked: [...MASKED_PATHS],
    readonly: [...READONLY_PATHS],
    caps: [...DOCKER_CAPS],
    noNewPrivs: true,
  };
}

export { escapeValue };

/** The runtime's serialiser, with the prototype's optional fields defaulted. */
export function serializeSpec(spec: HelperSpec): string {
  return serializeRunSpec({
    env: [], namespaces: [], mounts: [], masked: [], readonly: [], caps: [], cgroupProcs: [],
    ...spec,
    noNewPrivs: spec.noNewPrivs ?? false, tty: spec.tty ?? false, stdin: spec.stdin ?? false,
    init: spec.init ?? false, waitStart: spec.waitStart ?? false,
  });
}

export function serializeExecSpec(spec: ExecSpec): string {
  return serializeRuntimeExecSpec({
    env: [], caps: [], ...spec,
    noNewPrivs: spec.noNewPrivs ?? false, tty: spec.tty ?? false, stdin: spec.stdin ?? false, waitStart: spec.waitStart ?? false,
  });
}

export type { ExitInfo };

export function parseExit(text: string): ExitInfo {
  const info = parseExitFile(text);
  if (!info) throw new Error(`not an exit file: ${JSON.stringify(text)}`);
  return info;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `berth-helper run BUNDLE`; resolves once the helper reports ready. */
export function runHelper(bundle: string, args: string[] = ['run', bundle]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(ensureHelper(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stderr }));
  });
}

export async function waitForFile(path: string, timeoutMs = 10000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(path)) return readFileSync(path, 'utf8');
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}`);
    await sleep(20);
  }
}

export async function waitForExit(bundle: string, timeoutMs = 10000, name = 'exit'): Promise<ExitInfo> {
  return parseExit(await waitForFile(join(bundle, name), timeoutMs));
}

/** True while the process exists and is not a zombie (orphans may be reaped late here). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** One command on the ctl socket; resolves to the reply line. */
export function ctl(socketPath: string, command: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const sock = connect(socketPath);
    let data = '';
    sock.on('connect', () => sock.write(command + '\n'));
    sock.on('data', (d) => { data += d; });
    sock.on('error', reject);
    sock.on('close', () => resolvePromise(data.replace(/\n$/, '')));
  });
}

/** An attached client: collects stdout/stderr frames, can write stdin. */
export class AttachClient {
  readonly stdout: Buffer[] = [];
  readonly stderr: Buffer[] = [];
  reply = '';
  closed: Promise<void>;
  private pending = Buffer.alloc(0);
  private gotReply = false;
  private readonly sock: Socket;

  private constructor(sock: Socket) {
    this.sock = sock;
    this.closed = new Promise((r) => sock.on('close', () => r()));
    sock.on('error', () => { /* surfaced through `closed` */ });
    sock.on('data', (d) => this.onData(d));
  }

  static async open(socketPath: string, withStdin = false): Promise<AttachClient> {
    const sock = connect(socketPath);
    await new Promise<void>((r, j) => { sock.once('connect', () => r()); sock.once('error', j); });
    const client = new AttachClient(sock);
    sock.write(withStdin ? 'attach stdin\n' : 'attach\n');
    const deadline = Date.now() + 5000;
    while (!client.gotReply) {
      if (Date.now() > deadline) throw new Error('no attach reply');
      await sleep(5);
    }
    if (client.reply !== 'ok') throw new Error(`attach: ${client.reply}`);
    return client;
  }

  private onData(d: Buffer): void {
    this.pending = Buffer.concat([this.pending, d]);
    if (!this.gotReply) {
      const nl = this.pending.indexOf(10);
      if (nl < 0) return;
      this.reply = this.pending.subarray(0, nl).toString();
      this.pending = this.pending.subarray(nl + 1);
      this.gotReply = true;
    }
    while (this.pending.length >= 5) {
      const len = this.pending.readUInt32BE(1);
      if (this.pending.length < 5 + len) break;
      const payload = this.pending.subarray(5, 5 + len);
      (this.pending[0] === 2 ? this.stderr : this.stdout).push(Buffer.from(payload));
      this.pending = this.pending.subarray(5 + len);
    }
  }

  text(stream: 'stdout' | 'stderr' = 'stdout'): string {
    return Buffer.concat(this[stream]).toString();
  }

  write(data: string): void { this.sock.write(data); }
  /** Stops reading, like a client that cannot keep up. */
  pause(): void { this.sock.pause(); }
  resume(): void { this.sock.resume(); }
  end(): void { this.sock.end(); }
  destroy(): void { this.sock.destroy(); }

  async waitFor(pattern: RegExp, stream: 'stdout' | 'stderr' = 'stdout', timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.text(stream))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in ${JSON.stringify(this.text(stream))}`);
      await sleep(10);
    }
    return this.text(stream);
  }
}

/** A bundle dir under a fresh temp dir; `cleanup` kills what is left and deletes it. */
export function makeBundle(prefix = 'berth-helper-'): { dir: string; bundle: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const bundle = join(dir, 'bundle');
  mkdirSync(bundle);
  return {
    dir,
    bundle,
    cleanup: () => {
      killBundle(bundle);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** SIGKILLs a bundle's container (via its state pid) and its helper, if still alive. */
export function killBundle(bundle: string): void {
  for (const [file, pattern] of [['state', /^pid (\d+)/m], ['helper.pid', /^(\d+)/]] as const) {
    try {
      const pid = Number(readFileSync(join(bundle, file), 'utf8').match(pattern)?.[1]);
      if (pid > 1 && isAlive(pid)) process.kill(pid, 'SIGKILL');
    } catch { /* not there: nothing to kill */ }
  }
}

export function writeSpec(bundle: string, spec: HelperSpec): void {
  writeFileSync(join(bundle, 'spec'), serializeSpec(spec));
}

/** Log lines of a json-file log, parsed. */
export function readJsonLog(path: string): Array<{ log: string; stream: string; time: string }> {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** Mount points (field 5 of mountinfo) that contain `fragment`. */
export function hostMountsContaining(fragment: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p.includes(fragment));
}

export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
