import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCgroupManager, DEFAULT_DEVICE_RULES, type CgroupSetup } from '../../../src/cgroups';
import { isBerthError, type ErrorCode } from '../../../src/util/errors';
import { FakeCgroupFs, withTempDir } from './fixture';

const MiB = 1024 * 1024;
const CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'cpuset', 'pids', 'blkio', 'devices', 'freezer'];

/** A legacy layout in `root`; cpu and cpuacct co-mounted unless `separateCpu`. */
function legacyFixture(root: string, opts: { without?: string[] } = {}): { setup: CgroupSetup; fs: FakeCgroupFs; dir: (c: string, ...p: string[]) => string } {
  const present = CONTROLLERS.filter((c) => !opts.without?.includes(c));
  const mountOf = (c: string): string => join(root, c === 'cpu' || c === 'cpuacct' ? 'cpu,cpuacct' : c);
  const hierarchies = [...new Set(present.map(mountOf))].map((mount) => ({
    mount, kind: 'v1' as const, controllers: present.filter((c) => mountOf(c) === mount),
  }));
  const fs = new FakeCgroupFs(hierarchies);
  // A procRoot for system_cpu_usage.
  mkdirSync(join(root, 'proc'));
  writeFileSync(join(root, 'proc', 'stat'), 'cpu  10 0 10 80 0 0 0 0 0 0\n');
  const setup: CgroupSetup = { mode: 'legacy', version: 1, v1Mounts: Object.fromEntries(present.map((c) => [c, mountOf(c)])), v2Controllers: [] };
  return { setup, fs, dir: (c, ...p) => join(mountOf(c), ...p) };
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

test('create writes Docker\'s v1 files in each hierarchy under berth/<id>', async () => {
  await withTempDir('berth-cg-v1-', async (root) => {
    const { setup, fs, dir } = legacyFixture(root);
    const manager = createCgroupManager(setup, { ops: fs, procRoot: join(root, 'proc') });
    const group = await manager.create('c1', { memory: 32 * MiB, nanoCpus: 0.5e9, cpuShares: 512, pidsLimit: 10, blkioWeight: 300 });

    assert.equal(group.procsFiles(), ['memory', 'cpu', 'cpuset', 'pids', 'blkio', 'devices', 'freezer'].map((c) => dir(c, 'berth', 'c1', 'cgroup.procs')));
    assert.is(readText(dir('memory', 'berth/c1/memory.limit_in_bytes')), String(32 * MiB));
    assert.is(readText(dir('memory', 'berth/c1/memory.memsw.limit_in_bytes')), String(64 * MiB));
    assert.is(readText(dir('cpu', 'berth/c1/cpu.shares')), '512');
    assert.is(readText(dir('cpu', 'berth/c1/cpu.cfs_period_us')), '100000');
    assert.is(readText(dir('cpu', 'berth/c1/cpu.cfs_quota_us')), '50000');
    assert.is(readText(dir('pids', 'berth/c1/pids.max')), '10');
    // This fixture's blkio has only BFQ's weight file, as kernels without CFQ do.
    assert.is(readText(dir('blkio', 'berth/c1/blkio.bfq.weight')), '300');
    // Empty v1 cpusets copy their parent's, for the berth parent too.
    for (const d of [dir('cpuset', 'berth'), dir('cpuset', 'berth/c1')]) {
      assert.is(readText(join(d, 'cpuset.cpus')), '0-3');
      assert.is(readText(join(d, 'cpuset.mems')), '0');
    }
    // Default device rules: deny all, then Docker's allow list, one rule per write.
    assert.equal(fs.written(dir('devices', 'berth/c1/devices.deny')), ['a']);
    const allowed = fs.written(dir('devices', 'berth/c1/devices.allow'));
    assert.is(allowed.length, DEFAULT_DEVICE_RULES.length - 1);
    assert.ok(allowed.includes('c 1:3 rwm') && allowed.includes('c 136:* rwm') && allowed.includes('c 10:200 rwm'));
    // From unlimited both come down: memory first, so memsw >= memory holds at every step.
    const memoryWrites = fs.writes.filter((w) => w.path.includes('/memory/')).map((w) => w.path.split('/').pop());
    assert.equal(memoryWrites, ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes']);
  });
});

test('explicit cpuset and quota/period; updates order memory and memory+swap so memsw >= memory always', async () => {
  await withTempDir('berth-cg-v1-', async (root) => {
    const { setup, fs, dir } = legacyFixture(root);
    const manager = createCgroupManager(setup, { ops: fs, parent: 'edge/apps' });
    const group = await manager.create('c2', { cpusetCpus: '1-2', cpuQuota: 25_000, cpuPeriod: 50_000, memory: 64 * MiB, memorySwap: 128 * MiB });
    assert.is(readText(dir('cpuset', 'edge/apps/c2/cpuset.cpus')), '1-2');
    assert.is(readText(dir('cpuset', 'edge/apps/c2/cpuset.mems')), '0');
    assert.is(readText(dir('cpu', 'edge/apps/c2/cpu.cfs_quota_us')), '25000');
    assert.is(readText(dir('cpu', 'edge/apps/c2/cpu.cfs_period_us')), '50000');

    fs.writes.length = 0;
    await group.apply({ memory: 16 * MiB, memorySwap: 32 * MiB });
    assert.equal(fs.writes.map((w) => `${w.path.split('/').pop()}=${w.value}`), [`memory.limit_in_bytes=${16 * MiB}`, `memory.memsw.limit_in_bytes=${32 * MiB}`]);
    fs.writes.length = 0;
    // Going up, memory+swap is raised first.
    await group.apply({ memory: 96 * MiB, memorySwap: -1 });
    assert.equal(fs.writes.map((w) => `${w.path.split('/').pop()}=${w.value}`), ['memory.memsw.limit_in_bytes=-1', `memory.limit_in_bytes=${96 * MiB}`]);
    fs.writes.length = 0;
    // A plain `docker update --memory` leaves memory+swap alone.
    await group.apply({ memory: 24 * MiB });
    assert.equal(fs.writes.map((w) => w.path.split('/').pop()), ['memory.limit_in_bytes']);
    fs.writes.length = 0;
    await group.apply({ pidsLimit: -1, cpuQuota: -1 });
    assert.is(readText(dir('pids', 'edge/apps/c2/pids.max')), 'max');
    assert.is(readText(dir('cpu', 'edge/apps/c2/cpu.cfs_quota_us')), '-1');
  });
});

test('missing controllers and files give clear EUNSUPPORTED errors; the default swap is skipped quietly', async () => {
  await withTempDir('berth-cg-v1-', async (root) => {
    const { setup, fs, dir } = legacyFixture(root, { without: ['pids', 'devices'] });
    fs.omitFiles.add('memory.memsw.limit_in_bytes');
    const manager = createCgroupManager(setup, { ops: fs });
    await rejects(() => manager.create('a', { pidsLimit: 10 }), 'EUNSUPPORTED', /^pids limit requested but this host has no pids cgroup controller$/);
    assert.not.ok(existsSync(dir('memory', 'berth', 'a')), 'nothing created for a refused request');
    await rejects(() => manager.create('b', { memory: 32 * MiB, memorySwap: 64 * MiB }), 'EUNSUPPORTED', /swap accounting/);
    assert.not.ok(existsSync(dir('memory', 'berth', 'b')), 'a failed create removes what it made');
    await manager.create('c', { memory: 32 * MiB });
    assert.is(readText(dir('memory', 'berth/c/memory.limit_in_bytes')), String(32 * MiB));
    const report = manager.supports(['memory', 'pidsLimit', 'devices']);
    assert.equal(report.unsupported, ['pidsLimit']);
    assert.match(report.notes[0]!, /devices cgroup controller/);
    // Explicit unlimited values need no controller.
    await manager.create('d', { pidsLimit: -1 });
  });
});

test('a value the kernel refuses is EINVAL, and the half-made group is removed', async () => {
  await withTempDir('berth-cg-v1-', async (root) => {
    const { setup, fs, dir } = legacyFixture(root);
    const manager = createCgroupManager(setup, { ops: fs });
    fs.failWrites.set(dir('pids', 'berth/bad/pids.max'), 'EINVAL');
    await rejects(() => manager.create('bad', { pidsLimit: 10 }), 'EINVAL', /pids limit/);
    for (const c of CONTROLLERS) assert.not.ok(existsSync(dir(c, 'berth', 'bad')), c);
    assert.ok(existsSync(dir('memory', 'berth')), 'the parent stays');
  });
});

test('stats, OOM, freezing, pids and killing read and write the v1 files', async () => {
  await withTempDir('berth-cg-v1-', async (root) => {
    const { setup, fs, dir } = legacyFixture(root);
    const manager = createCgroupManager(setup, { ops: fs, procRoot: join(root, 'proc') });
    const group = await manager.create('c3', { memory: 32 * MiB, pidsLimit: 10 });
    const put = (c: string, file: string, value: string): void => writeFileSync(dir(c, 'berth/c3', file), value);
    put('memory', 'memory.usage_in_bytes', '1048576');
    put('memory', 'memory.stat', 'cache 4096\ntotal_cache 8192\ntotal_inactive_file 4096\n');
    put('memory', 'memory.failcnt', '2');
    put('cpu', 'cpuacct.usage', '123456789');
    put('cpuset', 'cpuset.effective_cpus', '0-1');
    put('pids', 'pids.current', '2');
    for (const c of CONTROLLERS) put(c, 'cgroup.procs', '41\n42\n');

    const stats = await group.stats();
    assert.equal(stats.memory, { usage: MiB, limit: 32 * MiB, cache: 8192, failcnt: 2, stat: { cache: 4096, total_cache: 8192, total_inactive_file: 4096 } });
    assert.equal(stats.cpu, { usageNanos: 123456789, systemNanos: 100 * 1e7, onlineCpus: 2 });
    assert.equal(stats.pids, { current: 2, limit: 10 });
    assert.equal(await group.pids(), [41, 42]);

    assert.not.ok(await group.oomKilled());
    put('memory', 'memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n');
    assert.ok(await group.oomKilled());

    await group.freeze();
    assert.is(readText(dir('freezer', 'berth/c3/freezer.state')), 'FROZEN');
    await group.thaw();
    assert.is(readText(dir('freezer', 'berth/c3/freezer.state')), 'THAWED');

    // SIGTERM: freeze so nothing forks in between, signal each pid, thaw.
    fs.writes.length = 0;
    await group.killAll('SIGTERM');
    assert.equal(fs.signals, [{ pid: 41, signal: 'SIGTERM' }, { pid: 42, signal: 'SIGTERM' }]);
    assert.equal(fs.written(dir('freezer', 'berth/c3/freezer.state')), ['FROZEN', 'THAWED']);

    // A paused container stays paused for other signals but is thawed for SIGKILL.
    await group.freeze();
    fs.writes.length = 0;
    await group.killAll('SIGHUP');
    assert.equal(fs.written(dir('freezer', 'berth/c3/freezer.state')), []);
    await group.killAll('SIGKILL');
    assert.equal(fs.written(dir('freezer', 'berth/c3/freezer.state')), ['THAWED']);
    assert.equal(await group.pids(), []);
  });
});

test('remove waits for busy groups, removes only the container\'s dirs, and open/listOwned find leftovers', async () => {
  await withTempDir('berth-cg-v1-', async (root) => {
    const { setup, fs, dir } = legacyFixture(root);
    const manager = createCgroupManager(setup, { ops: fs });
    const group = await manager.create('c4', {});
    await manager.create('other', {});
    await rejects(() => manager.create('c4', {}), 'ECONFLICT');

    // A child group the container made itself (systemd inside, say) goes too.
    mkdirSync(dir('memory', 'berth/c4/inner'));
    writeFileSync(dir('memory', 'berth/c4/inner/cgroup.procs'), '');
    writeFileSync(dir('pids', 'berth/c4/cgroup.procs'), '77\n');
    await rejects(() => group.remove({ timeoutMs: 30 }), 'ECONFLICT', /processes still inside: 77/);

    const again = createCgroupManager(setup, { ops: fs });
    assert.equal(await again.listOwned(), ['c4', 'other']);
    const reopened = await again.open('c4');
    assert.equal(await reopened.pids(), [77]);
    await reopened.remove({ killLeftovers: true });
    assert.equal(fs.signals.map((s) => s.pid), [77]);
    for (const c of CONTROLLERS) {
      assert.not.ok(existsSync(dir(c, 'berth', 'c4')), `${c}/berth/c4 removed`);
      assert.ok(existsSync(dir(c, 'berth', 'other')), `${c}/berth/other untouched`);
    }
    assert.equal(await again.listOwned(), ['other']);
    await rejects(() => again.open('c4'), 'ENOTFOUND');
    // Removing twice is harmless.
    await reopened.remove();
  });
});

test.run();
