// Runs a command inside a qemu microVM on Debian's stock kernel, with cgroup v2 only
// (cgroup_no_v1=all), so tests can exercise kernel behaviour this host does not have.
//
// The guest sees the host's root filesystem read-only (so node, its libraries and
// node_modules resolve at the same paths), its own proc/sys/dev/cgroup2, tmpfs on
// /tmp and /run, and the repository read-write at its host path. It runs as root.
// Kernel and initramfs come from test/vm/prepare.sh, cached across runs.
//
// A foreign arch boots Debian's kernel for it instead: 'aarch64' (arm64) and 'armv7'
// (armhf, armmp flavour) under qemu-system-aarch64/-arm -M virt, 'mipsel' (4kc-malta)
// under qemu-system-mipsel -M malta, all TCG. There the host's root cannot run, so the
// command runs in the initramfs (that arch's static busybox at /bin, plus whatever
// `extraInitrd` adds), with only the control share.
//
// Env: BERTH_VM_CACHE (cache dir, default $TMPDIR/berth-vm-cache), BERTH_VM_VERBOSE=1
// (echo the console to stderr), BERTH_VM_EXTRA_MODULES (see prepare.sh).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '../..');
const PREPARE_SCRIPT = join(REPO_ROOT, 'test/vm/prepare.sh');
export type MicroVmArch = 'x86_64' | 'aarch64' | 'armv7' | 'mipsel';

interface GuestMachine {
  qemu: string;
  /** Debian package that ships `qemu`. */
  qemuPackage: string;
  /** BERTH_VM_ARCH for prepare.sh. */
  debianArch: string;
  machine: string[];
  console: string;
  cpus: number;
  memoryMb: number;
}
const MACHINES: Record<MicroVmArch, GuestMachine> = {
  x86_64: {
    qemu: 'qemu-system-x86_64', qemuPackage: 'qemu-system-x86', debianArch: 'amd64',
    machine: ['-cpu', 'max'], console: 'ttyS0', cpus: 2, memoryMb: 2048,
  },
  aarch64: {
    qemu: 'qemu-system-aarch64', qemuPackage: 'qemu-system-arm', debianArch: 'arm64',
    machine: ['-M', 'virt', '-cpu', 'cortex-a57'], console: 'ttyAMA0', cpus: 2, memoryMb: 512,
  },
  armv7: {
    // highmem=off: otherwise virt puts the PCIe config space above 4 GiB, out of reach
    // of the armmp kernel (no LPAE), and the 9p share (a PCI device) never appears.
    qemu: 'qemu-system-arm', qemuPackage: 'qemu-system-arm', debianArch: 'armhf',
    machine: ['-M', 'virt,highmem=off', '-cpu', 'cortex-a15'], console: 'ttyAMA0', cpus: 2, memoryMb: 512,
  },
  mipsel: {
    // The 24Kc of OpenWrt's mipsel_24kc: no FPU (the kernel emulates it), one core.
    qemu: 'qemu-system-mipsel', qemuPackage: 'qemu-system-mips', debianArch: 'mipsel',
    machine: ['-M', 'malta', '-cpu', '24Kc'], console: 'ttyS0', cpus: 1, memoryMb: 256,
  },
};
const BEGIN_MARKER = '@@berth-vm-begin@@';
const END_MARKER = /@@berth-vm-end (\d+)@@/;

export interface MicroVmOptions {
  /** Guest architecture; default x86_64 (see the header for what a foreign one changes). */
  arch?: MicroVmArch;
  /** A gzip'd newc cpio appended to the initramfs (files the guest sees from boot on). */
  extraInitrd?: string;
  /** argv run inside the guest (no shell unless you pass one). */
  command: string[];
  /** Working directory in the guest; default the repository root (same path as on the host). */
  cwd?: string;
  /** Whole run, boot included; qemu is killed when it passes. Default 180 s. */
  timeoutMs?: number;
  memoryMb?: number;
  /** Added to the guest's small default environment (PATH, HOME, TERM=dumb, BERTH_IN_MICROVM=1). */
  env?: Record<string, string>;
  /** Called with each chunk of console output as it arrives. */
  onOutput?: (text: string) => void;
}

export interface MicroVmResult {
  /** Exit code of the guest command. */
  code: number;
  /** What the guest command wrote (stdout and stderr interleaved), without boot messages. */
  output: string;
  /** The whole serial console, for diagnosing boot problems. */
  console: string;
  /** From starting qemu to the guest command starting, and the command's own run. */
  bootMs: number;
  commandMs: number;
}

/** True inside the guest: lets one test file hold both the host-side launcher and the guest-side tests. */
export function inMicroVm(): boolean {
  return process.env.BERTH_IN_MICROVM === '1';
}

/** The argv that runs uvu suites in the guest exactly as build/test.mjs does on the host. */
export function uvuCommand(dir: string, pattern: string): string[] {
  return [process.execPath, '--import', 'tsx', 'node_modules/uvu/bin.js', dir, pattern];
}

/** The qemu program for `arch` and the Debian package that ships it, for skip messages. */
export function qemuFor(arch: MicroVmArch): { program: string; debianPackage: string } {
  return { program: MACHINES[arch].qemu, debianPackage: MACHINES[arch].qemuPackage };
}

/** Path of qemu-system-x86_64 (or the given arch's), or undefined when it is not installed. */
export function findQemu(arch: MicroVmArch = 'x86_64'): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, MACHINES[arch].qemu);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch { /* try the next directory */ }
  }
  return undefined;
}

interface BootFiles { kernel: string; initrd: string }
const prepared = new Map<MicroVmArch, Promise<BootFiles>>();

/** The cache of kernels and initramfs parts: BERTH_VM_CACHE or $TMPDIR/berth-vm-cache. */
export function microVmCacheDir(): string {
  return process.env.BERTH_VM_CACHE || join(tmpdir(), 'berth-vm-cache');
}

/** Builds or reuses the cached kernel and initramfs; once per process and arch. */
export function prepareMicroVm(arch: MicroVmArch = 'x86_64'): Promise<BootFiles> {
  const existing = prepared.get(arch);
  if (existing) return existing;
  const promise = new Promise<BootFiles>((resolvePromise, reject) => {
    const env = { ...process.env, BERTH_VM_ARCH: MACHINES[arch].debianArch };
    execFile('bash', [PREPARE_SCRIPT, microVmCacheDir()], { maxBuffer: 16 << 20, env }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`microVM preparation failed (${PREPARE_SCRIPT}):\n${stderr.trim() || err.message}`));
        return;
      }
      const dir = stdout.trim().split('\n').pop() ?? '';
      // The uncompressed vmlinux boots seconds faster under TCG (see prepare.sh).
      const vmlinux = join(dir, 'vmlinux');
      const files = { kernel: existsSync(vmlinux) ? vmlinux : join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.gz') };
      if (!existsSync(files.kernel) || !existsSync(files.initrd)) {
        reject(new Error(`prepare.sh reported ${dir}, which lacks a kernel or initrd.gz`));
        return;
      }
      resolvePromise(files);
    });
  });
  prepared.set(arch, promise);
  promise.catch(() => { prepared.delete(arch); });
  return promise;
}

const running = new Set<ChildProcess>();
process.on('exit', () => { for (const child of running) child.kill('SIGKILL'); });

/**
 * Boots a fresh VM, runs `opts.command` as root in it and powers off. Resolves with the
 * command's exit code and output; rejects when qemu is missing, the VM cannot be
 * prepared or booted, or the timeout passes.
 */
export async function runInMicroVm(opts: MicroVmOptions): Promise<MicroVmResult> {
  const arch = opts.arch ?? 'x86_64';
  const machine = MACHINES[arch];
  const qemu = findQemu(arch);
  if (!qemu) throw new Error(`${machine.qemu} not found in PATH: install the Debian package ${machine.qemuPackage}`);
  if (opts.command.length === 0) throw new Error('runInMicroVm: empty command');
  const boot = await prepareMicroVm(arch);
  const native = arch === 'x86_64';

  const controlDir = mkdtempSync(join(tmpdir(), 'berth-vm-'));
  const cwd = opts.cwd ?? (native ? REPO_ROOT : '/');
  // init.sh reads "TAG PATH OPTIONS" lines with the shell's read.
  for (const path of [REPO_ROOT, controlDir, cwd]) {
    if (/\s/.test(path)) throw new Error(`runInMicroVm: paths with whitespace are not supported: ${path}`);
  }
  try {
    // cache=loose: without it every page of node and node_modules is fetched again per
    // access, which makes node start several times slower. Safe while the host leaves
    // these trees alone during the run; init syncs guest writes before power-off.
    if (native) {
      writeFileSync(join(controlDir, 'mounts'), [
        'hostroot / ro,cache=loose',
        `host0 ${controlDir} rw`,
        `repo ${REPO_ROOT} rw,cache=loose`,
        '',
      ].join('\n'));
    }
    const env = native ? guestEnv(opts.env) : guestEnv({ PATH: '/bin', ...opts.env });
    writeFileSync(join(controlDir, 'run.sh'), guestScript(opts.command, cwd, env));
    // The kernel unpacks concatenated gzip'd cpio archives one after the other.
    let initrd = boot.initrd;
    if (opts.extraInitrd) {
      initrd = join(controlDir, 'initrd.gz');
      writeFileSync(initrd, Buffer.concat([readFileSync(boot.initrd), readFileSync(opts.extraInitrd)]));
    }

    // As root qemu can keep the guest's file ownership; otherwise it must ignore it.
    const securityModel = process.getuid?.() === 0 ? 'passthrough' : 'none';
    const share = (tag: string, path: string, extra = ''): string[] =>
      ['-virtfs', `local,path=${qemuEscape(path)},mount_tag=${tag},id=${tag},security_model=${securityModel},multidevs=remap${extra}`];
    const args = [
      ...machine.machine,
      '-accel', 'tcg,thread=multi', '-smp', String(machine.cpus), '-m', String(opts.memoryMb ?? machine.memoryMb),
      '-nographic', '-nic', 'none', '-no-reboot',
      '-kernel', boot.kernel, '-initrd', initrd,
      ...share('host0', controlDir),
      ...(native ? [...share('hostroot', '/', ',readonly=on'), ...share('repo', REPO_ROOT)] : []),
      '-append', `console=${machine.console} quiet cgroup_no_v1=all panic=-1`,
    ];

    const { consoleText, bootMs, commandMs } = await runQemu(qemu, args, opts.timeoutMs ?? 180_000, opts.onOutput);
    const exitFile = join(controlDir, 'exit-code');
    if (!existsSync(exitFile)) {
      throw new Error(`microVM ended without the guest command's exit code (boot or init failure); console:\n${tail(consoleText)}`);
    }
    return {
      code: Number(readFileSync(exitFile, 'utf8').trim()),
      output: commandOutput(consoleText),
      console: consoleText,
      bootMs,
      commandMs,
    };
  } finally {
    rmSync(controlDir, { recursive: true, force: true });
  }
}

interface QemuRun { consoleText: string; bootMs: number; commandMs: number }

function runQemu(qemu: string, args: string[], timeoutMs: number, onOutput?: (text: string) => void): Promise<QemuRun> {
  const verbose = process.env.BERTH_VM_VERBOSE === '1';
  return new Promise((resolvePromise, reject) => {
    const started = Date.now();
    let commandStarted = 0;
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let consoleText = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const text = chunk.replace(/\r/g, '');
      consoleText += text;
      // Searched in the whole text: the marker may arrive split across chunks.
      if (!commandStarted && consoleText.includes(BEGIN_MARKER)) commandStarted = Date.now();
      onOutput?.(text);
      if (verbose) process.stderr.write(text);
    });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); running.delete(child); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      if (timedOut) {
        reject(new Error(`microVM timed out after ${timeoutMs} ms; console:\n${tail(consoleText)}`));
      } else if (code !== 0) {
        reject(new Error(`${qemu} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}\nconsole:\n${tail(consoleText)}`));
      } else {
        const finished = Date.now();
        resolvePromise({
          consoleText,
          bootMs: (commandStarted || finished) - started,
          commandMs: commandStarted ? finished - commandStarted : 0,
        });
      }
    });
  });
}

function guestEnv(extra: Record<string, string> = {}): Record<string, string> {
  // A small fixed environment: the host's may name paths or sockets the guest lacks.
  const hostPath = process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return {
    PATH: `${dirname(process.execPath)}${delimiter}${hostPath}`,
    HOME: '/tmp/home',
    TERM: 'dumb',
    LANG: 'C.UTF-8',
    BERTH_IN_MICROVM: '1',
    ...extra,
  };
}

function guestScript(command: string[], cwd: string, env: Record<string, string>): string {
  const exports = Object.entries(env).map(([key, value]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`runInMicroVm: bad environment name ${key}`);
    return `export ${key}=${shellQuote(value)}`;
  });
  return [
    ...exports,
    'mkdir -p "$HOME"',
    `cd ${shellQuote(cwd)} || exit 125`,
    // The console is the only terminal; a command reading stdin must not wait on it.
    `exec ${command.map(shellQuote).join(' ')} </dev/null`,
    '',
  ].join('\n');
}

function commandOutput(consoleText: string): string {
  const begin = consoleText.indexOf(BEGIN_MARKER);
  if (begin < 0) return consoleText;
  const afterBegin = consoleText.slice(begin + BEGIN_MARKER.length).replace(/^\n/, '');
  const end = afterBegin.search(END_MARKER);
  return end < 0 ? afterBegin : afterBegin.slice(0, end);
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** qemu's option parser takes a doubled comma as a literal one. */
function qemuEscape(value: string): string {
  return value.replace(/,/g, ',,');
}

function tail(text: string, lines = 60): string {
  return text.split('\n').slice(-lines).join('\n');
}
