// Host devices in containers, the way router users need them (a USB serial dongle, a
// VPN's /dev/net/tun): `--device` binds the host's node at the asked path, a directory
// brings every node below it, the mode limits what the device cgroup allows, and
// `--privileged` gets the host's /dev while keeping the container's own pty.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, REPO_ROOT, startDaemon, type TestDaemon } from '../helpers/daemon';

const IMAGE = 'localhost/busybox:latest';
let daemon: TestDaemon;
let work: string;

// The v1 devices controller enforces modes here; cgroup v2 would need an eBPF program.
const deviceCgroup = /^\d+:devices:/m.test(readFileSync('/proc/self/cgroup', 'utf8'));

async function run(flags: string[], script: string) {
  return daemon.cli(['run', '--rm', ...flags, IMAGE, 'sh', '-c', script], { timeoutMs: 30_000 });
}

test.before(async () => {
  work = makeTempDir('berth-devices-');
  daemon = await startDaemon();
  const loaded = await daemon.cli(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
  assert.is(loaded.code, 0, loaded.stderr);
});

test.after(async () => {
  await daemon?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('without --device the host node is absent', async () => {
  const r = await run([], 'ls /dev/kmsg /dev/net/tun 2>&1; echo done');
  assert.match(r.stdout, /\/dev\/kmsg: No such file or directory/);
  assert.match(r.stdout, /\/dev\/net\/tun: No such file or directory/);
});

test('--device binds the host node at the same path, nested directories included', async () => {
  const r = await run(['--device', '/dev/net/tun'], 'ls -l /dev/net/tun; cat /dev/net/tun 2>&1; true');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^c[-rw]{9}\s+1 root\s+root\s+10,\s+200 .*\/dev\/net\/tun$/m);
  // Opened: the tun driver refuses a read before TUNSETIFF, rather than the cgroup refusing the open.
  assert.match(r.stdout, /File descriptor in bad state/);
  assert.not.match(r.stdout, /Operation not permitted/);
});

// /dev/loop-control opens for reading and writing without any capability, and is not in
// Docker's default device list: only the --device mode decides.
test('--device HOST:CONTAINER:r gives a read-only device at another path', async () => {
  const r = await run(['--device', '/dev/loop-control:/dev/loopctl:r'], 'ls -l /dev/loopctl; exec 3</dev/loopctl && echo read-ok; (exec 4>/dev/loopctl) 2>&1 && echo write-ok; true');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^c.*\s10,\s+237 .*\/dev\/loopctl$/m);
  assert.match(r.stdout, /^read-ok$/m);
  if (deviceCgroup) {
    assert.match(r.stdout, /Operation not permitted/);
    assert.not.match(r.stdout, /write-ok/);
  }
});

test('a directory brings every node below it; a symlink is followed to its node', async () => {
  const link = join(work, 'kmsg-link');
  symlinkSync('/dev/kmsg', link);
  const r = await run(['--device', '/dev/net:/dev/hostnet', '--device', `${link}:/dev/klink`], 'ls -l /dev/hostnet/tun /dev/klink');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^c.*10,\s+200 .*\/dev\/hostnet\/tun$/m);
  assert.match(r.stdout, /^c.*1,\s+11 .*\/dev\/klink$/m);
});

test('--device-cgroup-rule allows a node the container makes itself', async () => {
  const script = 'mknod /dev/k c 10 237; (exec 3</dev/k) 2>&1 && echo read-ok; (exec 4>/dev/k) 2>&1 && echo write-ok; true';
  const denied = await run([], script);
  const allowed = await run(['--device-cgroup-rule', 'c 10:237 r'], script);
  assert.is(allowed.code, 0, allowed.stderr);
  assert.match(allowed.stdout, /^read-ok$/m);
  if (deviceCgroup) {
    assert.not.match(denied.stdout, /read-ok/);
    assert.not.match(allowed.stdout, /write-ok/);
  }
});

test('--privileged gets the host devices and keeps its own pty and /dev/null', async () => {
  const r = await run(['--privileged'], 'ls -l /dev/ptmx; ls /dev/net/tun /dev/kmsg; (exec 3>/dev/kmsg) && echo kmsg-writable; echo x > /dev/null && echo null-ok');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /\/dev\/ptmx -> pts\/ptmx/);
  assert.match(r.stdout, /^\/dev\/net\/tun$/m);
  assert.match(r.stdout, /^kmsg-writable$/m);
  assert.match(r.stdout, /^null-ok$/m);
  // A tty still comes from the container's own devpts, not the host's.
  const tty = await daemon.cli(['run', '--rm', '--privileged', '-t', IMAGE, 'tty'], { timeoutMs: 30_000 });
  assert.match(tty.stdout, /^\/dev\/pts\/0\s*$/, tty.stdout + tty.stderr);
});

test('a missing device or a plain file fails the start with the path named; nothing is left running', async () => {
  const missing = await run(['--device', '/dev/berth-no-such-device'], 'true');
  // docker run's rule: a start error saying "no such file or directory" exits 127.
  assert.is(missing.code, 127);
  assert.match(missing.stderr, /error gathering device information while adding custom device "\/dev\/berth-no-such-device": no such file or directory/);
  const file = await run(['--device', '/etc/hostname'], 'true');
  assert.is(file.code, 125);
  assert.match(file.stderr, /"\/etc\/hostname": not a device node/);
  const ps = await daemon.cli(['ps', '-a', '-q']);
  assert.is(ps.stdout.trim(), '');
});

test('bad device specifications are refused before anything is created', async () => {
  const mode = await run(['--device', '/dev/kmsg:/dev/k:rx'], 'true');
  assert.is.not(mode.code, 0);
  assert.match(mode.stderr, /invalid device mode: rx/);
  const relative = await run(['--device', '/dev/kmsg:dev/k'], 'true');
  assert.match(relative.stderr, /bad format for path: dev\/k/);
  const rule = await run(['--device-cgroup-rule', 'c 1:11 x'], 'true');
  assert.match(rule.stderr, /invalid device cgroup format 'c 1:11 x'/);
  const ps = await daemon.cli(['ps', '-a', '-q']);
  assert.is(ps.stdout.trim(), '');
});

test('the docker CLI passes --device through and inspect shows it', async () => {
  const r = await daemon.docker(['run', '--rm', '--device', '/dev/net/tun:/dev/net/tun:rw', IMAGE, 'ls', '-l', '/dev/net/tun'], { timeoutMs: 30_000 });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /10,\s+200/);
  const created = await daemon.docker(['create', '--device', '/dev/kmsg:/dev/hostlog:r', IMAGE, 'true']);
  assert.is(created.code, 0, created.stderr);
  const id = created.stdout.trim();
  const inspect = await daemon.docker(['inspect', '-f', '{{json .HostConfig.Devices}}', id]);
  assert.equal(JSON.parse(inspect.stdout), [{ PathOnHost: '/dev/kmsg', PathInContainer: '/dev/hostlog', CgroupPermissions: 'r' }]);
  await daemon.docker(['rm', id]);
});

test.run();
