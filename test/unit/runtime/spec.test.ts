// buildSpec: Docker-level config -> helper spec, without a kernel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_CAP_NAMES, DOCKER_DEFAULT_CAPS } from '../../../src/runtime/caps';
import { buildExecSpec, buildSpec, MASKED_PATHS, mergeEnv, MS, READONLY_PATHS, tmpfsMount, type HostSpecOptions } from '../../../src/runtime/spec';
import type { ContainerProcessConfig } from '../../../src/runtime/types';

const host: HostSpecOptions = { cgroupNamespace: false, lastCap: ALL_CAP_NAMES.length - 1 };
const extra = { cgroupProcs: ['/sys/fs/cgroup/pids/berth/x/cgroup.procs'], waitStart: true, log: { path: 'container.log', maxBytes: 1000, maxFiles: 2 } };
let dir = '';
let rootfs = '';

test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-spec-'));
  rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nweb:x:33:33:www:/var/www:/bin/false\n');
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nweb:x:33:\nlog:x:4:web\n');
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

function cfg(extraConfig: Partial<ContainerProcessConfig> = {}): ContainerProcessConfig {
  return { args: ['/bin/sh'], env: ['PATH=/bin'], hostname: 'abc123', tty: false, openStdin: false, ...extraConfig };
}

const targets = (spec: { mounts: Array<{ target: string }> }) => spec.mounts.map((m) => m.target);

test("Docker's defaults", async () => {
  const spec = await buildSpec(rootfs, cfg(), extra, host);
  assert.equal(spec.namespaces, ['mnt', 'uts', 'ipc', 'pid', 'net']);
  assert.equal(targets(spec), ['/proc', '/dev', '/dev/pts', '/sys', '/dev/mqueue', '/dev/shm']);
  assert.is(spec.mounts[3]!.flags & MS.RDONLY, MS.RDONLY);
  assert.equal(spec.masked, MASKED_PATHS);
  assert.equal(spec.readonly, READONLY_PATHS);
  assert.equal(spec.caps, DOCKER_DEFAULT_CAPS);
  assert.ok(spec.noNewPrivs);
  assert.equal(spec.env, ['PATH=/bin', 'HOME=/root']);
  assert.is(spec.cwd, '/');
  assert.is(spec.hostname, 'abc123');
  assert.equal([spec.uid, spec.gid, spec.groups], [0, 0, []]);
  assert.equal(spec.cgroupProcs, extra.cgroupProcs);
  assert.equal(spec.log, extra.log);
  assert.ok(spec.waitStart);
});

test('cgroup v2 host: a cgroup namespace and a read-only cgroup2 mount', async () => {
  const spec = await buildSpec(rootfs, cfg(), extra, { ...host, cgroupNamespace: true });
  assert.ok(spec.namespaces.includes('cgroup'));
  const cg = spec.mounts.find((m) => m.target === '/sys/fs/cgroup')!;
  assert.is(cg.fstype, 'cgroup2');
  assert.is(cg.flags & MS.RDONLY, MS.RDONLY);
});

test('network: joined netns has no "ns net"; host has neither', async () => {
  const joined = await buildSpec(rootfs, cfg({ netns: '/run/netns/x' }), extra, host);
  assert.is(joined.netns, '/run/netns/x');
  assert.not.ok(joined.namespaces.includes('net'));
  const hostNet = await buildSpec(rootfs, cfg({ netns: 'host' }), extra, host);
  assert.is(hostNet.netns, undefined);
  assert.not.ok(hostNet.namespaces.includes('net'));
});

test('user by name: uid, gid, groups, HOME unless set', async () => {
  const spec = await buildSpec(rootfs, cfg({ user: 'web', groupAdd: ['0'] }), extra, host);
  assert.equal([spec.uid, spec.gid, spec.groups], [33, 33, [4, 0]]);
  assert.ok(spec.env.includes('HOME=/var/www'));
  const own = await buildSpec(rootfs, cfg({ user: 'web', env: ['HOME=/x'] }), extra, host);
  assert.equal(own.env, ['HOME=/x']);
});

test('privileged: all caps, no masks, writable /sys, no no_new_privs', async () => {
  const spec = await buildSpec(rootfs, cfg({ privileged: true, capDrop: ['ALL'] }), extra, host);
  assert.equal(spec.caps, [...ALL_CAP_NAMES]);
  assert.equal(spec.masked, []);
  assert.equal(spec.readonly, []);
  assert.is(spec.mounts.find((m) => m.target === '/sys')!.flags & MS.RDONLY, 0);
  assert.not.ok(spec.noNewPrivs);
});

test('etc files, binds and tmpfs with Docker flags; user mounts replace defaults; parents first', async () => {
  const spec = await buildSpec(rootfs, cfg({
    etcFiles: { resolvConf: '/data/c/resolv.conf', hosts: '/data/c/hosts', hostname: '/data/c/hostname' },
    binds: [
      { source: '/srv/b', target: '/data/sub/', readonly: true },
      { source: '/srv/a', target: '/data', readonly: false, propagation: 'rslave' },
    ],
    tmpfs: [{ target: '/dev/shm', options: 'size=1g,exec' }, { target: '/run' }],
  }), extra, host);
  assert.equal(targets(spec), ['/proc', '/dev', '/dev/pts', '/sys', '/dev/mqueue', '/etc/resolv.conf', '/etc/hostname', '/etc/hosts', '/data', '/run', '/data/sub', '/dev/shm']);
  const byTarget = new Map(spec.mounts.map((m) => [m.target, m]));
  assert.is(byTarget.get('/etc/hosts')!.flags, MS.BIND | MS.REC | MS.PRIVATE);
  assert.is(byTarget.get('/data/sub')!.flags, MS.BIND | MS.REC | MS.PRIVATE | MS.RDONLY);
  assert.is(byTarget.get('/data')!.flags, MS.BIND | MS.REC | MS.SLAVE);
  assert.equal(byTarget.get('/dev/shm'), { source: 'tmpfs', target: '/dev/shm', fstype: 'tmpfs', flags: MS.NOSUID | MS.NODEV, data: 'size=1g' });
  assert.equal(byTarget.get('/run'), { source: 'tmpfs', target: '/run', fstype: 'tmpfs', flags: MS.NOSUID | MS.NODEV | MS.NOEXEC });
});

test('devices: host nodes bound over the container /dev after its tmpfs, paths checked', async () => {
  const spec = await buildSpec(rootfs, cfg({ devices: [{ hostPath: '/dev/ttyUSB0', containerPath: '/dev/zigbee' }, { hostPath: '/dev/net/tun', containerPath: '/dev/net//tun' }] }), extra, host);
  const at = targets(spec);
  assert.ok(at.indexOf('/dev/zigbee') > at.indexOf('/dev'));
  assert.equal(spec.mounts.find((m) => m.target === '/dev/zigbee'), { source: '/dev/ttyUSB0', target: '/dev/zigbee', fstype: 'none', flags: MS.BIND });
  assert.ok(at.includes('/dev/net/tun'));
  const refused = await buildSpec(rootfs, cfg({ devices: [{ hostPath: '/dev/a', containerPath: 'dev/a' }] }), extra, host).catch((err: Error) => err);
  assert.match(String(refused), /bad format for path: dev\/a/);
});

test('tmpfs options: flags vs data, last wins, bad ones refused', () => {
  assert.equal(tmpfsMount('/t', 'ro,size=1m,mode=700,size=2m,suid'), { source: 'tmpfs', target: '/t', fstype: 'tmpfs', flags: MS.RDONLY | MS.NODEV | MS.NOEXEC, data: 'mode=700,size=2m' });
  assert.throws(() => tmpfsMount('/t', 'size=1m\nx'), /bad option/);
  assert.throws(() => tmpfsMount('relative'), /not an absolute path/);
});

test('read-only rootfs: the rootfs re-bound last, read-only', async () => {
  const spec = await buildSpec(rootfs, cfg({ readonlyRootfs: true, tmpfs: [{ target: '/tmp' }] }), extra, host);
  assert.equal(spec.mounts.at(-1), { source: rootfs, target: '/', fstype: 'none', flags: MS.BIND | MS.REC | MS.RDONLY });
});

test('ulimits, init, tty, stdin, working dir', async () => {
  const spec = await buildSpec(rootfs, cfg({ ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }, { name: 'core', soft: -1, hard: -1 }], init: true, tty: true, openStdin: true, workingDir: '/srv/../app/' }), extra, host);
  assert.equal(spec.rlimits, [['nofile', 1024, 2048], ['core', 'unlimited', 'unlimited']]);
  assert.ok(spec.init && spec.tty && spec.stdin);
  assert.is(spec.cwd, '/app/');
  await assert.not.throws(() => undefined);
  try {
    await buildSpec(rootfs, cfg({ workingDir: 'rel' }), extra, host);
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /needs to be an absolute path/);
  }
  try {
    await buildSpec(rootfs, cfg({ ulimits: [{ name: 'nofile', soft: 10, hard: 5 }] }), extra, host);
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /above the hard limit/);
  }
});

test('exec spec: env merged over the container, exec user, container caps; privileged exec', async () => {
  const container = cfg({ env: ['PATH=/bin', 'A=1', 'B=2'], user: 'web', capDrop: ['CHOWN'], workingDir: '/w', ulimits: [{ name: 'nofile', soft: 5, hard: 5 }] });
  const spec = await buildExecSpec(rootfs, container, { args: ['ls'], env: ['B=3', 'C=4'], tty: true, attachStdin: true, user: 'root' }, { ctl: 'e/x.sock', exit: 'e/x.exit' }, host);
  assert.equal(spec.env, ['PATH=/bin', 'A=1', 'B=3', 'C=4', 'HOME=/root']);
  assert.equal([spec.uid, spec.gid, spec.cwd], [0, 0, '/w']);
  assert.not.ok(spec.caps.includes('CHOWN'));
  assert.equal(spec.rlimits, [['nofile', 5, 5]]);
  assert.ok(spec.waitStart && spec.tty && spec.stdin && spec.noNewPrivs);
  assert.equal([spec.ctl, spec.exit], ['e/x.sock', 'e/x.exit']);
  const inherited = await buildExecSpec(rootfs, container, { args: ['ls'], env: [], tty: false, attachStdin: false, privileged: true }, { ctl: 'c', exit: 'x' }, host);
  assert.equal([inherited.uid, inherited.gid, inherited.groups], [33, 33, [4]]);
  assert.equal(inherited.caps, [...ALL_CAP_NAMES]);
  assert.not.ok(inherited.noNewPrivs);
});

test('mergeEnv replaces by key', () => {
  assert.equal(mergeEnv(['A=1', 'B=2'], ['A=', 'C=3']), ['A=', 'B=2', 'C=3']);
});

test.run();
