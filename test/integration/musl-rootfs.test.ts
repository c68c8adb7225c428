// The x86_64 ipk on a device without glibc: its data.tar.gz is unpacked into a rootfs that
// holds only Debian's busybox-static and musl (as OpenWrt does: /bin/busybox and
// /lib/ld-musl-x86_64.so.1), and inside a mount + pid namespace chrooted there, with /proc,
// /sys, /sys/fs/cgroup, /dev, a tmpfs /run and /tmp mounted, the packaged `berth daemon
// --bridge none` starts, loads the embedded image (/usr/share/berth/default-image.tar) and
// `berth run --rm localhost/busybox echo hi` prints hi. The single binary is glibc-linked:
// the ipk carries glibc's loader and libraries in /usr/lib/berth/glibc, the binary's
// interpreter and RPATH point there (build/ipk.mjs, patchelf).
// Cleanup: every mount lives in the private mount namespace and every process in the pid
// namespace, both gone when its init exits; the daemon's cgroup parent is removed here.
// Needs root, x64, the build (npm run build:all), busybox-static and musl.
// The aarch64 and armv7 ipks get the same kind of rootfs (their arch's busybox-static, no
// musl) and run under qemu-user: see the second half of this file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, symlinkSync, copyFileSync, writeFileSync, chmodSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { microVmCacheDir } from '../helpers/microvm';

const ROOT = resolve(__dirname, '../..');
const version: string = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
const IPK = join(ROOT, `dist/ipk/berth_${version}_x86_64.ipk`);
const BUSYBOX = '/bin/busybox';
const MUSL = '/lib/ld-musl-x86_64.so.1';

const missing = [
  process.arch !== 'x64' && 'an x86_64 host',
  process.getuid?.() !== 0 && 'root',
  !existsSync(IPK) && `${IPK} (npm run build:all)`,
  !(existsSync(BUSYBOX) && /statically linked|static-pie/.test(spawnSync('file', ['-L', BUSYBOX], { encoding: 'utf8' }).stdout ?? '')) && 'a static /bin/busybox (apt-get install busybox-static)',
  !existsSync(MUSL) && `${MUSL} (apt-get install musl)`,
  spawnSync('unshare', ['--help'], { stdio: 'ignore' }).status !== 0 && 'unshare (util-linux)',
].filter(Boolean);

/** Removes a cgroup directory and the empty ones below it on every hierarchy. */
function removeCgroupTree(name: string): void {
  const rmTree = (dir: string): void => {
    let entries: string[] = [];
    try { entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { return; }
    for (const e of entries) rmTree(join(dir, e));
    try { rmdirSync(dir); } catch { /* busy: left for the report */ }
  };
  const roots = ['/sys/fs/cgroup', ...(() => { try { return readdirSync('/sys/fs/cgroup').map((d) => join('/sys/fs/cgroup', d)); } catch { return []; } })()];
  for (const root of roots) rmTree(join(root, name));
}

function cgroupLeft(name: string): string[] {
  const roots = ['/sys/fs/cgroup', ...(() => { try { return readdirSync('/sys/fs/cgroup').map((d) => join('/sys/fs/cgroup', d)); } catch { return []; } })()];
  return roots.map((r) => join(r, name)).filter((d) => existsSync(d));
}

interface RootfsParts {
  /** A static busybox of the rootfs' architecture and the applet paths it lists. */
  busybox: string;
  applets: string[];
  /** The musl loader to install as /lib/<its name>, when there is one at hand. */
  musl?: string;
  ipk: string;
}

/** A busybox (+ musl) rootfs with the ipk's data unpacked, as opkg would on an OpenWrt device. */
function makeRootfs(dir: string, parts: RootfsParts): void {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'lib', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'root', 'var']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(parts.busybox, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const applet of parts.applets) {
    const path = join(dir, applet);
    if (existsSync(path)) continue;
    mkdirSync(resolve(path, '..'), { recursive: true });
    symlinkSync('/bin/busybox', path);
  }
  if (parts.musl) {
    const loader = basename(parts.musl);
    copyFileSync(parts.musl, join(dir, 'lib', loader));
    symlinkSync(loader, join(dir, 'lib/libc.so'));
  }
  symlinkSync('../run', join(dir, 'var/run'));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/ash\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  writeFileSync(join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
  writeFileSync(join(dir, 'etc/resolv.conf'), 'nameserver 127.0.0.1\n');
  // The ipk is a tar.gz of debian-binary, control.tar.gz and data.tar.gz (build/ipk.mjs).
  const unpack = spawnSync('sh', ['-c', 'tar -xzOf "$1" ./data.tar.gz | tar -xz -C "$2"', 'sh', parts.ipk, dir], { encoding: 'utf8' });
  assert.is(unpack.status, 0, `unpacking the ipk: ${unpack.stderr}`);
}

/** Every glibc file in the rootfs lies under /usr/lib/berth/glibc: the system itself is musl-only. */
function glibcOutsideBundle(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      const rel = p.slice(dir.length);
      if (['/proc', '/sys', '/dev', '/usr/lib/berth/glibc'].includes(rel)) continue;
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (/^(libc\.so\.6|ld-linux.*\.so\.\d|libstdc\+\+\.so.*|libpthread\.so.*)$/.test(e)) found.push(rel);
    }
  };
  walk(dir);
  return found;
}

const INSIDE = `
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
berth daemon --bridge none --data-root /tmp/berth-data --cgroup-parent "$CGROUP_PARENT" >/tmp/daemon.log 2>&1 &
pid=$!
i=0
until berth version >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 150 ] || ! kill -0 $pid 2>/dev/null; then echo "daemon did not start:"; cat /tmp/daemon.log; exit 10; fi
  sleep 0.2
done
berth version | sed -n 's/^ *\\(Version\\|Node version\\|OS\\/Arch\\):/VERSION \\1:/p'
berth load -i /usr/share/berth/default-image.tar || { cat /tmp/daemon.log; exit 11; }
out=$(berth run --rm localhost/busybox echo hi) || { echo "run failed"; cat /tmp/daemon.log; exit 12; }
echo "RUN:$out"
left=$(berth ps -aq)
echo "LEFT:$left"
kill -TERM $pid
wait $pid
echo "DAEMON-EXIT:$?"
`;

/** Shell lines (with $R the rootfs) that give a chroot its kernel filesystems from a private mount namespace. */
const MOUNT_ROOTFS = `mount --make-rprivate /
# The device's / is a mount point (the helper makes it rslave): so is the rootfs.
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --rbind /sys/fs/cgroup "$R/sys/fs/cgroup"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"`;

if (missing.length) {
  test('musl rootfs (skipped)', () => console.log(`skipped: needs ${missing.join(', ')}`));
} else {
  test('the x86_64 ipk runs a container on a busybox + musl rootfs without glibc', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'berth-musl-'));
    const rootfs = join(tmp, 'root');
    const cgroupParent = `berth-musl-${randomBytes(4).toString('hex')}`;
    try {
      const applets = spawnSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      makeRootfs(rootfs, { busybox: BUSYBOX, applets, musl: MUSL, ipk: IPK });
      assert.equal(glibcOutsideBundle(rootfs), [], 'no glibc outside /usr/lib/berth/glibc');
      const interp = spawnSync('readelf', ['-l', join(rootfs, 'usr/lib/berth/berth')], { encoding: 'utf8' }).stdout;
      assert.match(interp, '[Requesting program interpreter: /usr/lib/berth/glibc/ld-linux-x86-64.so.2]');
      writeFileSync(join(rootfs, 'test.sh'), INSIDE);
      // Mounts into the rootfs from a private mount namespace (gone with it), then chroot;
      // the pid namespace's init is the setup shell, so every process dies when it exits.
      const setup = `
set -e
R="$1"
${MOUNT_ROOTFS}
exec chroot "$R" /bin/sh /test.sh
`;
      const child = spawn('unshare', ['-m', '-p', '-f', '--kill-child', 'sh', '-c', setup, 'sh', rootfs], {
        env: { CGROUP_PARENT: cgroupParent, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { out += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      const code = await new Promise<number | null>((res) => child.on('close', res));
      clearTimeout(timer);
      console.log(out.split('\n').filter((l) => /^(VERSION|RUN|LEFT|DAEMON-EXIT)/.test(l)).join('\n'));
      assert.is(code, 0, out);
      assert.match(out, /^RUN:hi$/m, out);
      assert.match(out, /^LEFT:$/m, 'no container left');
      assert.match(out, /^DAEMON-EXIT:0$/m, out);
      assert.match(out, new RegExp(`VERSION Version:\\s+${version.replace(/\./g, '\\.')}`));
    } finally {
      removeCgroupTree(cgroupParent);
      const left = cgroupLeft(cgroupParent);
      // The mounts were in the namespace only: nothing of the rootfs may still be mounted.
      const mounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(rootfs));
      rmSync(tmp, { recursive: true, force: true });
      assert.equal(mounted, [], 'no mount left');
      assert.equal(left, [], 'no cgroup left');
    }
  });
}

// --- aarch64 and armv7: the same claim under qemu-user ---
// The ipk is unpacked into a rootfs holding only Debian's busybox-static of that
// architecture and the static qemu-user binary; `chroot ROOTFS /qemu-ARCH-static -cpu CPU
// /usr/bin/berth ...` then finds the interpreter and libraries inside the rootfs or not at
// all: no -L / QEMU_LD_PREFIX, and the chroot hides the host's cross glibc
// (/usr/<triplet>/lib). The daemon runs chrooted in a mount + pid namespace as above and
// answers /_ping on a socket in the rootfs, which the host reaches by path; the CLI runs
// chrooted from the host. No container is run: the daemon starts berth-helper (an ARM
// binary) with execve, which under qemu-user only works with a binfmt_misc entry on the
// host, global state this test leaves alone (helper-aarch64.test.ts runs containers on an
// arm64 kernel instead).

interface Target {
  name: string; goArch: string; debArch: string; openwrtArch: string; binary: string | null;
  qemu: { binary: string; cpu: string } | null;
}
const targets: Target[] = JSON.parse(readFileSync(join(ROOT, 'build/targets.json'), 'utf8')).targets;
const LOADER: Record<string, string> = { aarch64: 'ld-linux-aarch64.so.1', armv7: 'ld-linux-armhf.so.3' };
const which = (name: string): string | undefined => {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
};

/**
 * Debian's busybox-static .deb for debArch: from the microVM harness' deb cache
 * (test/vm/prepare.sh keeps them there), else fetched into it with apt-get download from a
 * private apt root (build/cache.mjs, the one the cross builds use). A string says why not.
 */
function busyboxDeb(debArch: string): { deb: string } | { why: string } {
  const debs = join(microVmCacheDir(), 'debs');
  const find = () => (existsSync(debs) ? readdirSync(debs).find((f) => f.startsWith('busybox-static_') && f.endsWith(`_${debArch}.deb`)) : undefined);
  const cached = find();
  if (cached) return { deb: join(debs, cached) };
  mkdirSync(debs, { recursive: true });
  const fetchDir = mkdtempSync(join(debs, '.fetch.'));
  try {
    const cache = require('../../build/cache.mjs') as { aptRoot(a: string): unknown; aptDownload(apt: unknown, pkg: string, dir: string): string };
    const deb = cache.aptDownload(cache.aptRoot(debArch), 'busybox-static', fetchDir);
    renameSync(deb, join(debs, basename(deb)));
    return { deb: join(debs, basename(deb)) };
  } catch (err) {
    return { why: `Debian's busybox-static for ${debArch} (not in ${debs}; apt-get download failed: ${(err as Error).message.split('\n')[0]})` };
  } finally {
    rmSync(fetchDir, { recursive: true, force: true });
  }
}

/** GET path on a unix socket: status and body. */
function httpGet(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request({ socketPath, path, method: 'GET', timeout: 30_000 }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => { body += d; });
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', rej);
    req.end();
  });
}

// The daemon chrooted under qemu-user inside a private mount + pid namespace (the setup
// shell is its init: everything dies with it); it stops when the test creates $STOP.
const FOREIGN_SETUP = `
set -eu
R="$1" STOP="$2" QEMU="$3" CPU="$4"
${MOUNT_ROOTFS}
chroot "$R" "/$QEMU" -cpu "$CPU" /usr/bin/berth daemon --bridge none --data-root /tmp/berth-data \
  --cgroup-parent "$CGROUP_PARENT" -H unix:///sock/berth.sock &
d=$!
until [ -e "$STOP" ] || ! kill -0 $d 2>/dev/null; do sleep 0.2; done
kill -TERM $d 2>/dev/null || true
set +e
wait $d
echo "DAEMON-EXIT:$?"
`;

for (const target of targets.filter((t) => t.binary && t.qemu)) {
  const qemu = target.qemu!;
  const ipk = join(ROOT, `dist/ipk/berth_${version}_${target.openwrtArch}.ipk`);
  const qemuPath = which(qemu.binary);
  const foreignMissing = [
    process.getuid?.() !== 0 && 'root',
    !existsSync(ipk) && `${ipk} (npm run build:all)`,
    !qemuPath && `${qemu.binary} (apt-get install qemu-user-static)`,
    spawnSync('unshare', ['--help'], { stdio: 'ignore' }).status !== 0 && 'unshare (util-linux)',
  ].filter(Boolean);
  // Looked up (possibly fetched) only when nothing else is missing.
  const bb = foreignMissing.length ? undefined : busyboxDeb(target.debArch);
  if (bb && 'why' in bb) foreignMissing.push(bb.why);
  const name = `the ${target.name} ipk runs under ${qemu.binary} in a busybox rootfs without host glibc: version, daemon, /_ping, load`;
  if (foreignMissing.length) {
    test(`${name} (skipped)`, () => console.log(`skipped: needs ${foreignMissing.join(', ')}`));
    continue;
  }
  test(name, async () => {
    const tmp = mkdtempSync(join(tmpdir(), `berth-${target.name}-`));
    const rootfs = join(tmp, 'root');
    const stop = join(tmp, 'stop');
    const cgroupParent = `berth-musl-${randomBytes(4).toString('hex')}`;
    let child: ReturnType<typeof spawn> | undefined;
    let closed: Promise<number | null> | undefined;
    try {
      const unpacked = spawnSync('dpkg-deb', ['-x', (bb as { deb: string }).deb, join(tmp, 'busybox')], { encoding: 'utf8' });
      assert.is(unpacked.status, 0, `dpkg-deb -x: ${unpacked.stderr}`);
      const busybox = join(tmp, 'busybox/bin/busybox');
      const applets = spawnSync(qemuPath!, ['-cpu', qemu.cpu, busybox, '--list-full'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      assert.ok(applets.includes('bin/sh'), `busybox --list-full under ${qemu.binary}: ${applets.length} applets`);
      makeRootfs(rootfs, { busybox, applets, ipk });
      copyFileSync(qemuPath!, join(rootfs, qemu.binary));
      chmodSync(join(rootfs, qemu.binary), 0o755);
      mkdirSync(join(rootfs, 'sock'));
      assert.equal(glibcOutsideBundle(rootfs), [], 'no glibc outside /usr/lib/berth/glibc');
      const interp = spawnSync('readelf', ['-l', join(rootfs, 'usr/lib/berth/berth')], { encoding: 'utf8' }).stdout;
      assert.match(interp, `[Requesting program interpreter: /usr/lib/berth/glibc/${LOADER[target.name]}]`);

      // Nothing from the host's environment either: qemu reads QEMU_LD_PREFIX (-L).
      const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', BERTH_HOST: 'unix:///sock/berth.sock' };
      const berth = (...args: string[]) => spawnSync('chroot', [rootfs, `/${qemu.binary}`, '-cpu', qemu.cpu, '/usr/bin/berth', ...args], { encoding: 'utf8', env, timeout: 90_000 });
      const short = berth('--version');
      assert.is(short.status, 0, `berth --version in the rootfs: ${short.stderr}`);
      assert.is(short.stdout.trim(), `berth version ${version}`);

      child = spawn('unshare', ['-m', '-p', '-f', '--kill-child', 'sh', '-c', FOREIGN_SETUP, 'sh', rootfs, stop, qemu.binary, qemu.cpu], {
        env: { CGROUP_PARENT: cgroupParent, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout!.on('data', (d) => { out += d; });
      child.stderr!.on('data', (d) => { out += d; });
      let exited = false;
      closed = new Promise((res) => child!.on('close', (code) => { exited = true; res(code); }));
      const socket = join(rootfs, 'sock/berth.sock');
      const started = Date.now();
      while (!existsSync(socket) && !exited && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 200));
      assert.ok(existsSync(socket), `the daemon's socket did not appear:\n${out}`);
      console.log(`${target.name}: daemon listening after ${((Date.now() - started) / 1000).toFixed(1)} s`);

      const ping = await httpGet(socket, '/_ping');
      assert.is(ping.status, 200, ping.body);
      assert.is(ping.body, 'OK');
      const v = berth('version', '--format', '{{json .}}');
      assert.is(v.status, 0, `berth version: ${v.stderr}`);
      const info = JSON.parse(v.stdout) as { Client: { Version: string; Arch: string }; Server: { Version: string; Arch: string } };
      assert.equal([info.Client.Version, info.Client.Arch, info.Server.Version, info.Server.Arch], [version, target.goArch, version, target.goArch]);
      // A load writes blobs, layers and the image record through the daemon's storage (koffi's syscalls).
      const load = berth('load', '-i', '/usr/share/berth/default-image.tar');
      assert.is(load.status, 0, `berth load: ${load.stderr}\n${out}`);
      assert.match(load.stdout, /Loaded image: localhost\/busybox:latest/);
      const images = berth('images', '--format', '{{.Repository}}:{{.Tag}}');
      assert.is(images.status, 0, images.stderr);
      assert.equal(images.stdout.trim().split('\n'), ['localhost/busybox:latest']);

      writeFileSync(stop, '');
      const timer = setTimeout(() => child!.kill('SIGKILL'), 60_000);
      const code = await closed;
      clearTimeout(timer);
      assert.is(code, 0, out);
      assert.match(out, /^DAEMON-EXIT:0$/m, out);
    } finally {
      // --kill-child: unshare's death takes the namespace (daemon, mounts) with it.
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await closed;
      }
      removeCgroupTree(cgroupParent);
      const left = cgroupLeft(cgroupParent);
      const mounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(rootfs));
      rmSync(tmp, { recursive: true, force: true });
      assert.equal(mounted, [], 'no mount left');
      assert.equal(left, [], 'no cgroup left');
    }
  });
}

test.run();
