import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCgroupManager, DEFAULT_DEVICE_RULES, type CgroupSetup } from '../../../src/cgroups';
import { isBerthError, type ErrorCode } from '../../../src/util/errors';
import { FakeCgroupFs, withTempDir } from './fixture';

const MiB = 1024 * 1024;

function unifiedFixture(root: string, controllers = ['cpuset', 'cpu', 'io', 'memory', 'pids', 'hugetlb']): { setup: CgroupSetup; fs: FakeCgroupFs } {
  const fs = new FakeCgroupFs([{ mount: root, kind: 'v2', controllers }]);
  return { setup: { mode: 'unified', version: 2, v1Mounts: {}, v2Mount: root, v2Controllers: controllers }, fs };
}

const readText = (path: string): string => readFileSync(path, 'utf8').trim();

async function rejects(fn: () => Promise<unknown>, code: ErrorCode, pattern?: RegExp): Promise<void> {
  try { await fn(); } catch (err) {
    assert.ok(isBerthError(err, code), `expected ${code}, got ${String(err)}`);
    if (pattern) assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('create enables our controllers down the parent chain and writes the v2 files', async () => {
  await withTempDir('berth-cg-v2-', async (root) => {
    const { setup, fs } = unifiedFixture(root);
    const manager = createCgroupManager(setup, { ops: fs });
    const group = await manager.create('c1', { memory: 32 * MiB, memorySwap: 48 * MiB, cpuShares: 1024, nanoCpus: 0.5e9, cpusetCpus: '0-1', pidsLimit: 10, blkioWeight: 500 });
    const dir = join(root, 'berth', 'c1');
    // hugetlb is offered but not ours to enable.
    assert.is(readText(join(root, 'cgroup.subtree_control')), 'cpu cpuset io memory pids');
    assert.is(readText(join(root, 'berth', 'cgroup.subtree_control')), 'cpu cpuset io memory pids');
    assert.equal(group.procsFiles(), [join(dir, 'cgroup.procs')]);
    assert.is(readText(join(dir, 'memory.max')), String(32 * MiB));
    assert.is(readText(join(dir, 'memory.swap.max')), String(16 * MiB));
    assert.is(readText(join(dir, 'cpu.weight')), '39');
    assert.is(readText(join(dir, 'cpu.max')), '50000 100000');
    assert.is(readText(join(dir, 'cpuset.cpus')), '0-1');
    assert.is(readText(join(dir, 'pids.max')), '10');
    assert.is(readText(join(dir, 'io.weight')), '4950');
  });
});

test('Docker swap defaults and updates map onto memory.swap.max and cpu.max', async () => {
  await withTempDir('berth-cg-v2-', async (root) => {
    const { setup, fs } = unifiedFixture(root);
    const manager = createCgroupManager(setup, { ops: fs });
    const group = await manager.create('c2', { memory: 32 * MiB });
    const file = (name: string): string => readText(join(root, 'berth', 'c2', name));
    assert.is(file('memory.swap.max'), String(32 * MiB), 'as much swap as memory by default');
    await group.apply({ memory: 64 * MiB, memorySwap: -1 });
    assert.is(file('memory.max'), String(64 * MiB));
    assert.is(file('memory.swap.max'), 'max');
    await group.apply({ cpuQuota: 20_000 });
    assert.is(file('cpu.max'), '20000');
    writeFileSync(join(root, 'berth', 'c2', 'cpu.max'), '20000 100000');
    await group.apply({ cpuPeriod: 50_000 });
    assert.is(file('cpu.max'), '20000 50000', 'a period alone keeps the quota');
    await group.apply({ cpuQuota: -1, cpuPeriod: 100_000 });
    assert.is(file('cpu.max'), 'max 100000');
    await group.apply({ pidsLimit: 0 });
    assert.is(file('pids.max'), 'max');
  });
});

test('io.bfq.weight takes the blkio weight as is when the BFQ scheduler offers it', async () => {
  await withTempDir('berth-cg-v2-', async (root) => {
    const { setup, fs } = unifiedFixture(root);
    const manager = createCgroupManager(setup, { ops: fs });
    const group = await manager.create('c3', {});
    writeFileSync(join(root, 'berth', 'c3', 'io.bfq.weight'), 'default 100');
    await group.apply({ blkioWeight: 300 });
    assert.equal(fs.written(join(root, 'berth', 'c3', 'io.bfq.weight')), ['300']);
  });
});

test('controllers the host lacks are EUNSUPPORTED; devices are a note, never an error', async () => {
  await withTempDir('berth-cg-v2-', async (root) => {
    const { setup, fs } = unifiedFixture(root, ['cpu', 'memory']);
    const manager = createCgroupManager(setup, { ops: fs });
    await rejects(() => manager.create('x', { pidsLimit: 10, blkioWeight: 100 }), 'EUNSUPPORTED', /^pids limit, blkio-weight requested but this host has no pids\/io controller in its cgroup2 hierarchy$/);
    assert.not.ok(existsSync(join(root, 'berth', 'x')));
    const report = manager.supports(['memory', 'devices']);
    assert.is(report.ok, true);
    assert.match(report.notes.join(), /eBPF/);
    const group = await manager.create('y', { memory: 16 * MiB, devices: [...DEFAULT_DEVICE_RULES] });
    // Without the pids controller the count comes from cgroup.procs.
    writeFileSync(join(root, 'berth', 'y', 'cgroup.procs'), '5\n');
    assert.is((await group.stats()).pids.current, 1);
  });
});

test('a kernel without swap control refuses an explicit swap limit but not the default', async () => {
  await withTempDir('berth-cg-v2-', async (root) => {
    const { setup, fs } = unifiedFixture(root);
    fs.omitFiles.add('memory.swap.max');
    const manager = createCgroupManager(setup, { ops: fs });
    await manager.create('a', { memory: 16 * MiB });
    await rejects(() => manager.create('b', { memory: 16 * MiB, memorySwap: 32 * MiB }), 'EUNSUPPORTED', /memory\.swap\.max/);
    assert.not.ok(existsSync(join(root, 'berth', 'b')));
  });
});

test('stats, OOM, freeze, cgroup.kill and removal', async () => {
  await withTempDir('berth-cg-v2-', async (root) => {
    const { setup, fs } = unifiedFixture(root);
    writeFileSync(join(root, 'stat'), 'cpu  1 1 1 1 1 1 1 0 0 0\n');
    const manager = createCgroupManager(setup, { ops: fs, procRoot: root });
    const group = await manager.create('c4', { memory: 32 * MiB, pidsLimit: 10 });
    const dir = join(root, 'berth', 'c4');
    writeFileSync(join(dir, 'memory.current'), '2097152');
    writeFileSync(join(dir, 'memory.stat'), 'anon 1048576\nfile 4096\ninactive_file 4096\n');
    writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n');
    writeFileSync(join(dir, 'cpu.stat'), 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n');
    writeFileSync(join(dir, 'cpuset.cpus.effective'), '0-2');
    writeFileSync(join(dir, 'pids.current'), '3');
    writeFileSync(join(dir, 'cgroup.procs'), '10\n11\n12\n');

    const stats = await group.stats();
    assert.equal(stats.memory, { usage: 2 * MiB, limit: 32 * MiB, cache: 4096, failcnt: 3, stat: { anon: MiB, file: 4096, inactive_file: 4096 } });
    assert.equal(stats.cpu, { usageNanos: 1_500_000, systemNanos: 7 * 1e7, onlineCpus: 3 });
    assert.equal(stats.pids, { current: 3, limit: 10 });

    assert.not.ok(await group.oomKilled());
    writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
    assert.ok(await group.oomKilled());

    await group.freeze();
    assert.is(readText(join(dir, 'cgroup.freeze')), '1');
    await group.thaw();
    assert.is(readText(join(dir, 'cgroup.freeze')), '0');

    // SIGKILL goes through cgroup.kill in one write; other signals go pid by pid.
    await group.killAll('SIGTERM');
    assert.equal(fs.signals.map((s) => s.pid), [10, 11, 12]);
    await group.killAll();
    assert.equal(fs.written(join(dir, 'cgroup.kill')), ['1']);
    assert.is(fs.signals.length, 3);

    await group.remove();
    assert.not.ok(existsSync(dir));
    assert.ok(existsSync(join(root, 'berth')));
    assert.equal(await manager.listOwned(), []);
  });
});

test('without cgroup.kill, SIGKILL falls back to freeze, signal each pid, thaw', async () => {
  await withTempDir('berth-cg-v2-', async (root) => {
    const { setup, fs } = unifiedFixture(root);
    fs.omitFiles.add('cgroup.kill');
    const manager = createCgroupManager(setup, { ops: fs });
    const group = await manager.create('c5', {});
    const dir = join(root, 'berth', 'c5');
    writeFileSync(join(dir, 'cgroup.procs'), '20\n');
    await group.remove({ killLeftovers: true });
    assert.equal(fs.signals, [{ pid: 20, signal: 'SIGKILL' }]);
    assert.equal(fs.written(join(dir, 'cgroup.freeze')), ['1', '0']);
    assert.not.ok(existsSync(dir));
  });
});

test.run();
