// The aarch64 helper starts a container on a real arm64 kernel: Debian's arm64 kernel
// under qemu-system-aarch64 (-M virt, TCG; test/vm/prepare.sh with BERTH_VM_ARCH=arm64).
// There is no Node in the guest: the initramfs gets the helper, a bundle whose spec was
// written here with the runtime's serialiser (Docker's default namespaces, mounts and
// capabilities), and a busybox rootfs; a busybox sh script runs `berth-helper run`,
// waits for the exit file and prints the log and the exit file to the console.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerDefaults, parseExit, serializeSpec } from '../helpers/helper-bundle';
import { findQemu, microVmCacheDir, REPO_ROOT, runInMicroVm } from '../helpers/microvm';

const HELPER = join(REPO_ROOT, 'dist/helpers/berth-helper-aarch64');
const GUEST = '/opt/berth';
const SCRIPT = 'echo hello-from-aarch64; cat /proc/1/cmdline; hostname';
const ARGS = ['/bin/sh', '-c', SCRIPT];
const HOSTNAME = 'berth-a64';
const APPLETS = ['sh', 'echo', 'cat', 'hostname', 'ls', 'id'];

const spec = serializeSpec({
  ...dockerDefaults(),
  rootfs: `${GUEST}/rootfs`,
  args: ARGS,
  hostname: HOSTNAME,
  log: { path: 'container.log', maxBytes: 0, maxFiles: 1 },
});

// busybox sh, run as the guest command. The guest's own (arm64) busybox becomes the
// container's: the cpio only carries the rootfs skeleton and its applet links.
const guestScript = `
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
function extraInitrd(): string {
  const helper = readFileSync(HELPER);
  const key = createHash('sha256').update(helper).update(spec).update(guestScript).update(APPLETS.join(' ')).digest('hex').slice(0, 12);
  const cacheDir = microVmCacheDir();
  const out = join(cacheDir, `aarch64-helper-${key}.cpio.gz`);
  if (existsSync(out)) return out;
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, '.helper-initrd.'));
  try {
    const root = join(work, 'root');
    const base = join(root, GUEST.slice(1));
    for (const dir of ['bundle', 'rootfs/bin', 'rootfs/dev', 'rootfs/etc', 'rootfs/proc', 'rootfs/sys', 'rootfs/tmp']) {
      mkdirSync(join(base, dir), { recursive: true });
    }
    copyFileSync(HELPER, join(base, 'berth-helper'));
    chmodSync(join(base, 'berth-helper'), 0o755);
    writeFileSync(join(base, 'bundle/spec'), spec);
    writeFileSync(join(base, 'run.sh'), guestScript);
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
  assert.ok(start >= 0 && end > start, `markers ${from} .. ${to} missing in:\n${output}`);
  return output.slice(start + from.length, end).replace(/^\n/, '');
}

if (!findQemu('aarch64')) {
  test('aarch64 helper in a microVM (skipped: qemu-system-aarch64 not installed)', () => {
    console.log('skipped: qemu-system-aarch64 not on PATH (Debian: qemu-system-arm)');
  });
} else {
  test('aarch64 helper runs a container (pid, uts, mnt namespaces) on an arm64 kernel', async () => {
    if (!existsSync(HELPER)) {
      execFileSync(process.execPath, [join(REPO_ROOT, 'build/helpers.mjs')], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
    }
    const result = await runInMicroVm({
      arch: 'aarch64',
      extraInitrd: extraInitrd(),
      command: ['/bin/sh', `${GUEST}/run.sh`],
      timeoutMs: 85_000,
    });
    const output = result.output;
    assert.is(result.code, 0, `guest script failed:\n${result.console}`);
    assert.match(output, /@@guest aarch64 \S+-arm64@@/, output);
    assert.match(output, /@@helper-run 0@@/, output);

    const exit = parseExit(section(output, '@@exit@@', '@@done@@').trim() + '\n');
    assert.is(exit.code, 0, output);
    assert.is(exit.signal, 0);
    assert.is(exit.error, undefined);

    const lines = section(output, '@@log@@', '@@exit@@').split('\n').filter((l) => l.startsWith('{'));
    const stdout = lines.map((l) => JSON.parse(l) as { log: string; stream: string })
      .filter((l) => l.stream === 'stdout').map((l) => l.log).join('');
    // PID 1 of the container is the spec's process (its own pid namespace); the uts
    // namespace has the spec's hostname.
    assert.is(stdout, `hello-from-aarch64\n${ARGS.join('\0')}\0${HOSTNAME}\n`);
    console.log(`  aarch64 microVM: boot ${result.bootMs} ms, helper + container ${result.commandMs} ms`);
  });
}

test.run();
