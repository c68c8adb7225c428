// cgroup v1 against the real kernel: needs root on a host with v1 controllers (legacy or
// hybrid). Every group lives under a parent named for this run, removed at the end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCgroupManager, detectCgroups, DEFAULT_DEVICE_RULES, type ContainerCgroup } from '../../src/cgroups';
import { isBerthError } from '../../src/util/errors';

const PARENT = `berth-itest-${process.pid}`;
const setup = detectCgroups();
const manager = createCgroupManager(setup, { parent: PARENT });
const mountOf = (controller: string): string => setup.v1Mounts[controller]!;
const groupDir = (controller: string, id: string): string => join(mountOf(controller), PARENT, id);
const read = (controller: string, id: string, file: string): string => readFileSync(join(groupDir(controller, id), file), 'utf8').trim();

const started: ChildProcess[] = [];

interface Gated { child: ChildProcess; pid: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; go(): void }

/**
 * Starts `sh` blocked on a read so it can be moved into a group before it does anything,
 * as the native helper moves the container's init before exec.
 */
function spawnGated(script: string): Gated {
  const child = spawn('sh', ['-c', `read go; ${script}`], { stdio: ['pipe', 'ignore', 'ignore'] });
  started.push(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, pid: child.pid!, exited, go: () => child.stdin!.end('\n') };
}

function moveInto(group: ContainerCgroup, pid: number): void {
  for (const file of group.procsFiles()) writeFileSync(file, String(pid));
}

function procState(pid: number): string {
  return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const comm = (pid: number): string => { try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return ''; } };

test.after(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const id of await manager.listOwned()) {
    try { await (await manager.open(id)).remove({ killLeftovers: true }); } catch { /* best effort; rmdir below reports */ }
  }
  for (const mount of new Set(Object.values(setup.v1Mounts))) {
    const foreign = join(mount, PARENT, 'foreign');
    if (existsSync(foreign)) rmdirSync(foreign);
    if (existsSync(join(mount, PARENT))) rmdirSync(join(mount, PARENT));
  }
});

test('detection on this host: v1 controllers, driven as version 1', () => {
  assert.ok(setup.mode === 'hybrid' || setup.mode === 'legacy', setup.mode);
  assert.is(setup.version, 1);
  for (const c of ['memory', 'cpu', 'cpuacct', 'cpuset', 'pids', 'devices', 'freezer']) assert.ok(setup.v1Mounts[c], `${c} mounted`);
  if (setup.mode === 'hybrid') assert.ok(setup.v2Mount && existsSync(join(setup.v2Mount, 'cgroup.controllers')));
});

test('limits are written, a real process is measured, frozen, thawed, killed and the group removed', async () => {
  const group = await manager.create('limits', {
    memory: 32 * 1024 * 1024, pidsLimit: 10, nanoCpus: 0.5e9,
    devices: [...DEFAULT_DEVICE_RULES, { allow: true, type: 'c', major: 4, minor: 1, access: 'rw' }],
  });
  let proc: Gated | undefined;
  try {
    assert.is(read('memory', 'limits', 'memory.limit_in_bytes'), '33554432');
    assert.is(read('memory', 'limits', 'memory.memsw.limit_in_bytes'), String(64 * 1024 * 1024));
    assert.is(read('cpu', 'limits', 'cpu.cfs_quota_us'), '50000');
    assert.is(read('cpu', 'limits', 'cpu.cfs_period_us'), '100000');
    assert.is(read('pids', 'limits', 'pids.max'), '10');
    assert.is(read('cpuset', 'limits', 'cpuset.cpus'), readFileSync(join(mountOf('cpuset'), 'cpuset.cpus'), 'utf8').trim());
    assert.is(read('cpuset', 'limits', 'cpuset.mems'), readFileSync(join(mountOf('cpuset'), 'cpuset.mems'), 'utf8').trim());
    const devices = read('devices', 'limits', 'devices.list').split('\n');
    assert.ok(devices.includes('c 1:3 rwm') && devices.includes('c 136:* rwm') && devices.includes('c 4:1 rw'), devices.join(', '));
    assert.not.ok(devices.includes('a *:* rwm'));

    // Burn a little CPU inside the group, then become `sleep`.
    proc = spawnGated('i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 30');
    moveInto(group, proc.pid);
    proc.go();
    const pid = proc.pid;
    await waitFor('sleep to start', () => comm(pid) === 'sleep');

    assert.equal(await group.pids(), [pid]);
    const stats = await group.stats();
    assert.ok(stats.memory.usage > 0, `memory usage ${stats.memory.usage}`);
    assert.is(stats.memory.limit, 33554432);
    assert.is(stats.pids.current, 1);
    assert.is(stats.pids.limit, 10);
    assert.ok(stats.cpu.usageNanos > 0, `cpu usage ${stats.cpu.usageNanos}`);
    assert.ok((stats.cpu.systemNanos ?? 0) > 0);
    assert.ok(stats.cpu.onlineCpus >= 1);

    await group.apply({ pidsLimit: 20, cpuShares: 512 });
    assert.is(read('pids', 'limits', 'pids.max'), '20');
    assert.is(read('cpu', 'limits', 'cpu.shares'), '512');

    await group.freeze();
    assert.is(read('freezer', 'limits', 'freezer.state'), 'FROZEN');
    // Kernels report a frozen task as D (v1 freezer) or T; never running or sleeping.
    assert.ok(['D', 'T'].includes(procState(pid)), `frozen state ${procState(pid)}`);
    await group.thaw();
    assert.is(read('freezer', 'limits', 'freezer.state'), 'THAWED');
    assert.is(procState(pid), 'S');

    await group.killAll();
    assert.is((await proc.exited).signal, 'SIGKILL');
    await group.remove();
    for (const c of Object.keys(setup.v1Mounts)) {
      assert.not.ok(existsSync(groupDir(c, 'limits')), `${c} group removed`);
      if (['memory', 'cpu', 'pids', 'freezer'].includes(c)) assert.ok(existsSync(join(mountOf(c), PARENT)), `${c} parent kept`);
    }
  } finally {
    proc?.child.kill('SIGKILL');
    await group.remove({ killLeftovers: true }).catch(() => undefined);
  }
});

test('a process over the memory limit is OOM-killed and oomKilled() says so', async () => {
  const group = await manager.create('oom', { memory: 32 * 1024 * 1024, memorySwap: 32 * 1024 * 1024 });
  let proc: Gated | undefined;
  try {
    assert.not.ok(await group.oomKilled());
    // dd fills a 64 MiB buffer from /dev/zero: twice the limit, and no swap allowed.
    proc = spawnGated('exec dd if=/dev/zero of=/dev/null bs=64M count=1');
    moveInto(group, proc.pid);
    proc.go();
    const exit = await proc.exited;
    assert.is(exit.signal, 'SIGKILL');
    assert.ok(await group.oomKilled());
    await group.remove();
    assert.not.ok(existsSync(groupDir('memory', 'oom')));
  } finally {
    proc?.child.kill('SIGKILL');
    await group.remove({ killLeftovers: true }).catch(() => undefined);
  }
});

test('after a restart: leftovers are listed, re-opened and removed with their processes; other groups are untouched', async () => {
  const group = await manager.create('leftover', { pidsLimit: 5 });
  const proc = spawnGated('exec sleep 30');
  moveInto(group, proc.pid);
  proc.go();
  await waitFor('sleep to start', () => comm(proc.pid) === 'sleep');
  // Another container's group that this manager instance did not create.
  const foreign = groupDir('memory', 'foreign');
  mkdirSync(foreign);

  const restarted = createCgroupManager(detectCgroups(), { parent: PARENT });
  assert.equal(await restarted.listOwned(), ['foreign', 'leftover']);
  const reopened = await restarted.open('leftover');
  assert.equal(await reopened.pids(), [proc.pid]);

  // Without killLeftovers a busy group is refused, not forced.
  try { await reopened.remove({ timeoutMs: 200 }); assert.unreachable('removed a busy group'); } catch (err) { assert.ok(isBerthError(err, 'ECONFLICT'), String(err)); }

  await reopened.remove({ killLeftovers: true });
  assert.is((await proc.exited).signal, 'SIGKILL');
  for (const c of Object.keys(setup.v1Mounts)) assert.not.ok(existsSync(groupDir(c, 'leftover')), `${c} leftover removed`);
  assert.ok(existsSync(foreign), 'foreign group untouched');
  rmdirSync(foreign);
  assert.equal(await restarted.listOwned(), []);
  try { await restarted.open('leftover'); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'ENOTFOUND')); }
});

test.run();
