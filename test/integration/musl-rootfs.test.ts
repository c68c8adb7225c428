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
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, copyFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

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

/** A busybox + musl rootfs with the ipk's data unpacked, as opkg would on an OpenWrt x86_64. */
function makeRootfs(dir: string): void {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'lib', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'root', 'var']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  const applets = spawnSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const applet of applets) {
    const path = join(dir, applet);
    if (existsSync(path)) continue;
    mkdirSync(resolve(path, '..'), { recursive: true });
    symlinkSync('/bin/busybox', path);
  }
  copyFileSync(MUSL, join(dir, 'lib/ld-musl-x86_64.so.1'));
  symlinkSync('ld-musl-x86_64.so.1', join(dir, 'lib/libc.so'));
  symlinkSync('../run', join(dir, 'var/run'));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/ash\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  writeFileSync(join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
  writeFileSync(join(dir, 'etc/resolv.conf'), 'nameserver 127.0.0.1\n');
  // The ipk is a tar.gz of debian-binary, control.tar.gz and data.tar.gz (build/ipk.mjs).
  const unpack = spawnSync('sh', ['-c', 'tar -xzOf "$1" ./data.tar.gz | tar -xz -C "$2"', 'sh', IPK, dir], { encoding: 'utf8' });
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

if (missing.length) {
  test('musl rootfs (skipped)', () => console.log(`skipped: needs ${missing.join(', ')}`));
} else {
  test('the x86_64 ipk runs a container on a busybox + musl rootfs without glibc', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'berth-musl-'));
    const rootfs = join(tmp, 'root');
    const cgroupParent = `berth-musl-${randomBytes(4).toString('hex')}`;
    try {
      makeRootfs(rootfs);
      assert.equal(glibcOutsideBundle(rootfs), [], 'no glibc outside /usr/lib/berth/glibc');
      const interp = spawnSync('readelf', ['-l', join(rootfs, 'usr/lib/berth/berth')], { encoding: 'utf8' }).stdout;
      assert.match(interp, '[Requesting program interpreter: /usr/lib/berth/glibc/ld-linux-x86-64.so.2]');
      writeFileSync(join(rootfs, 'test.sh'), INSIDE);
      // Mounts into the rootfs from a private mount namespace (gone with it), then chroot;
      // the pid namespace's init is the setup shell, so every process dies when it exits.
      const setup = `
set -e
R="$1"
mount --make-rprivate /
# The device's / is a mount point (the helper makes it rslave): so is the rootfs.
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --rbind /sys/fs/cgroup "$R/sys/fs/cgroup"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
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

test.run();
