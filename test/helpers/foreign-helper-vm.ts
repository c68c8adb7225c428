// Runs one container with a cross-built helper (dist/helpers/berth-helper-<arch>) on a
// real kernel of that architecture: Debian's kernel in a qemu-system microVM (microvm.ts).
// There is no Node in the guest: the initramfs gets the helper, a bundle whose spec was
// written here with the runtime's serialiser (Docker's default namespaces, mounts and
// capabilities), and a busybox rootfs; a busybox sh script runs `berth-helper run`,
// waits for the exit file and prints the log and the exit file to the console.
//
// helperContainerTest() is the whole test each test/integration/helper-<arch>.test.ts runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExitInfo } from '../../src/runtime/types';
import { dockerDefaults, parseExit, serializeSpec } from './helper-bundle';
import { findQemu, microVmCacheDir, qemuFor, REPO_ROOT, runInMicroVm, type MicroVmArch } from './microvm';

export type ForeignArch = Exclude<MicroVmArch, 'x86_64'>;

const GUEST = '/opt/berth';
const APPLETS = ['sh', 'echo', 'cat', 'hostname', 'ls', 'id'];

export interface ContainerInVmOptions {
  arch: ForeignArch;
  /** The container's argv; the rootfs has busybox with APPLETS at /bin. */
  args: string[];
  hostname: string;
  /** Whole VM run, boot included. */
  timeoutMs: number;
}

export interface ContainerInVmResult {
  /** `uname -m` and `uname -r` of the guest kernel. */
  machine: string;
  kernelRelease: string;
  /** Exit status of `berth-helper run` (0: the container was started). */
  helperStatus: number;
  /** The bundle's exit file. */
  exit: ExitInfo;
  /** The container's output from its json log, by stream. */
  stdout: string;
  stderr: string;
  /** The guest command's console output, for assertion messages. */
  output: string;
  bootMs: number;
  commandMs: number;
}

/**
 * Registers the uvu test that runs one container with the `arch` helper on that arch's
 * kernel, or a skip naming the Debian package when its qemu-system is missing. The container
 * prints its PID and hostname and exits 7; the test checks what a user would notice:
 * PID 1 in its own pid namespace, the spec's hostname, the log, and exit status 7.
 */
export function helperContainerTest(arch: ForeignArch, guest: { machine: string; kernelRelease: RegExp }): void {
  const qemu = qemuFor(arch);
  if (!findQemu(arch)) {
    test(`${arch} helper in a microVM (skipped: ${qemu.program} not installed)`, () => {
      console.log(`skipped: ${qemu.program} not on PATH (Debian: ${qemu.debianPackage})`);
    });
    return;
  }
  const hostname = `berth-${arch}`;
  const args = ['/bin/sh', '-c', `echo hello-from-${arch}; echo pid=$$; cat /proc/1/cmdline; hostname; exit 7`];
  test(`${arch} helper runs a container (Docker's default namespaces) on a real kernel (${guest.machine})`, async () => {
    const run = await runContainerInVm({ arch, args, hostname, timeoutMs: 85_000 });
    assert.is(run.machine, guest.machine, run.output);
    assert.match(run.kernelRelease, guest.kernelRelease);
    assert.is(run.helperStatus, 0, run.output);
    // $$ and /proc/1/cmdline: the shell is PID 1 and /proc shows its own pid namespace.
    assert.is(run.stdout, `hello-from-${arch}\npid=1\n${args.join('\0')}\0${hostname}\n`, run.output);
    assert.is(run.stderr, '');
    assert.equal({ code: run.exit.code, signal: run.exit.signal, error: run.exit.error }, { code: 7, signal: 0, error: undefined });
    console.log(`  ${arch} microVM: boot ${run.bootMs} ms, helper + container ${run.commandMs} ms`);
  });
}

/** Builds the helper (a no-op when up to date), boots the VM and runs the container once. */
export async function runContainerInVm(opts: ContainerInVmOptions): Promise<ContainerInVmResult> {
  // build/helpers.mjs skips the compile when sources and flags are unchanged, so a
  // helper older than native/helper is never what gets tested.
  execFileSync(process.execPath, [join(REPO_ROOT, 'build/helpers.mjs'), opts.arch],
    { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  const helper = join(REPO_ROOT, `dist/helpers/berth-helper-${opts.arch}`);

  const spec = serializeSpec({
    ...dockerDefaults(),
    rootfs: `${GUEST}/rootfs`,
    args: opts.args,
    hostname: opts.hostname,
    log: { path: 'container.log', maxBytes: 0, maxFiles: 1 },
  });
  const result = await runInMicroVm({
    arch: opts.arch,
    extraInitrd: extraInitrd(opts.arch, helper, spec),
    command: ['/bin/sh', `${GUEST}/run.sh`],
    timeoutMs: opts.timeoutMs,
  });
  const output = result.output;
  if (result.code !== 0) throw new Error(`guest script failed (${result.code}); console:\n${result.console}`);

  const guest = /@@guest (\S+) (\S+)@@/.exec(output);
  const helperRun = /@@helper-run (\d+)@@/.exec(output);
  if (!guest || !helperRun) throw new Error(`guest markers missing in:\n${output}`);
  const streams = { stdout: '', stderr: '' };
  for (const line of section(output, '@@log@@', '@@exit@@').split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { log: string; stream: 'stdout' | 'stderr' };
    streams[entry.stream] += entry.log;
  }
  return {
    machine: guest[1],
    kernelRelease: guest[2],
    helperStatus: Number(helperRun[1]),
    exit: parseExit(section(output, '@@exit@@', '@@done@@').trim() + '\n'),
    ...streams,
    output,
    bootMs: result.bootMs,
    commandMs: result.commandMs,
  };
}

// busybox sh, run as the guest command. The guest's own busybox (prepare.sh took it from
// Debian's busybox-static for the arch) becomes the container's: the cpio only carries
// the rootfs skeleton and its applet links.
const GUEST_SCRIPT = `
B=${GUEST}
echo "@@guest $(uname -m) $(uname -r)@@"
cp /bin/busybox $B/rootfs/bin/busybox || exit 90
$B/berth-helper run $B/bundle
echo "@@helper-run $?@@"
i=0
while [ ! -f $B/bundle/exit ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
echo "@@log@@"
cat $B/bundle/container.log
echo "@@exit@@"
cat $B/bundle/exit
echo "@@done@@"
[ -f $B/bundle/exit ]
`;

/** The initramfs part with helper, bundle and rootfs, cached by content under the VM cache. */
function extraInitrd(arch: ForeignArch, helperPath: string, spec: string): string {
  const helper = readFileSync(helperPath);
  const key = createHash('sha256').update(helper).update(spec).update(GUEST_SCRIPT).update(APPLETS.join(' ')).digest('hex').slice(0, 12);
  const cacheDir = microVmCacheDir();
  const out = join(cacheDir, `${arch}-helper-${key}.cpio.gz`);
  if (existsSync(out)) return out;
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, '.helper-initrd.'));
  try {
    const root = join(work, 'root');
    const base = join(root, GUEST.slice(1));
    for (const dir of ['bundle', 'rootfs/bin', 'rootfs/dev', 'rootfs/etc', 'rootfs/proc', 'rootfs/sys', 'rootfs/tmp']) {
      mkdirSync(join(base, dir), { recursive: true });
    }
    copyFileSync(helperPath, join(base, 'berth-helper'));
    chmodSync(join(base, 'berth-helper'), 0o755);
    writeFileSync(join(base, 'bundle/spec'), spec);
    writeFileSync(join(base, 'run.sh'), GUEST_SCRIPT);
    for (const applet of APPLETS) symlinkSync('busybox', join(base, 'rootfs/bin', applet));
    // The kernel wants every parent directory in the archive; /opt is not in the base one.
    execFileSync('sh', ['-c', `cd "$1" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$2"`, 'sh', root, join(work, 'out.gz')]);
    renameSync(join(work, 'out.gz'), out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}

function section(output: string, from: string, to: string): string {
  const start = output.indexOf(from);
  const end = output.indexOf(to, start + from.length);
  if (start < 0 || end < 0) throw new Error(`markers ${from} .. ${to} missing in:\n${output}`);
  return output.slice(start + from.length, end).replace(/^\n/, '');
}
