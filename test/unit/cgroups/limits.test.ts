import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createCgroupManager, requestedLimitKeys, validateLimits, DEFAULT_DEVICE_RULES, type CgroupLimits } from '../../../src/cgroups';
import { cpuBandwidth, memoryPlusSwap, countCpuList } from '../../../src/cgroups/limits';
import { parseKeyedValues } from '../../../src/cgroups/ops';
import { parseSystemCpuNanos } from '../../../src/host/proc-stat';
import { cpuWeightFromShares } from '../../../src/cgroups-v2/cpu';
import { ioWeightFromBlkioWeight } from '../../../src/cgroups-v2/io';
import { swapMaxValue } from '../../../src/cgroups-v2/memory';
import { formatDeviceRule } from '../../../src/cgroups-v1/devices';
import { isBerthError, type ErrorCode } from '../../../src/util/errors';

const MiB = 1024 * 1024;

async function rejects(fn: () => unknown, code: ErrorCode, pattern?: RegExp): Promise<void> {
  try { await fn(); } catch (err) {
    assert.ok(isBerthError(err, code), `expected ${code}, got ${String(err)}`);
    if (pattern) assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('--cpus becomes a CFS quota over a 100 ms period; explicit quota/period pass through', () => {
  assert.equal(cpuBandwidth({ nanoCpus: 0.5e9 }), { quota: 50_000, period: 100_000 });
  assert.equal(cpuBandwidth({ nanoCpus: 1.5e9 }), { quota: 150_000, period: 100_000 });
  assert.equal(cpuBandwidth({ cpuQuota: 20_000, cpuPeriod: 50_000 }), { quota: 20_000, period: 50_000 });
  assert.equal(cpuBandwidth({ cpuQuota: -1 }), { quota: -1, period: undefined });
  assert.equal(cpuBandwidth({ cpuPeriod: 50_000 }), { quota: undefined, period: 50_000 });
  assert.is(cpuBandwidth({ memory: 8 * MiB }), undefined);
});

test('memory+swap follows Docker: twice memory by default at create, untouched by a plain update', () => {
  assert.is(memoryPlusSwap({ memory: 32 * MiB }, 'create'), 64 * MiB);
  assert.is(memoryPlusSwap({ memory: 32 * MiB }, 'update'), undefined);
  assert.is(memoryPlusSwap({ memory: 32 * MiB, memorySwap: 48 * MiB }, 'create'), 48 * MiB);
  assert.is(memoryPlusSwap({ memory: 32 * MiB, memorySwap: -1 }, 'update'), -1);
  assert.is(memoryPlusSwap({}, 'create'), undefined);
  // v2 takes the swap alone.
  assert.is(swapMaxValue(32 * MiB, 48 * MiB), String(16 * MiB));
  assert.is(swapMaxValue(32 * MiB, 32 * MiB), '0');
  assert.is(swapMaxValue(32 * MiB, -1), 'max');
});

test('v1 shares to v2 weight, blkio weight to io.weight', () => {
  assert.is(cpuWeightFromShares(2), 1);
  assert.is(cpuWeightFromShares(1024), 39);
  assert.is(cpuWeightFromShares(262144), 10000);
  assert.is(cpuWeightFromShares(1), 1); // clamped like the kernel clamps shares
  assert.is(ioWeightFromBlkioWeight(10), 1);
  assert.is(ioWeightFromBlkioWeight(500), 4950);
  assert.is(ioWeightFromBlkioWeight(1000), 10000);
});

test('device rules in the kernel syntax; the defaults deny everything first', () => {
  assert.is(formatDeviceRule(DEFAULT_DEVICE_RULES[0]!), 'a');
  assert.is(DEFAULT_DEVICE_RULES[0]!.allow, false);
  const allowed = DEFAULT_DEVICE_RULES.slice(1).map(formatDeviceRule);
  for (const r of ['c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:1 rwm', 'c 5:2 rwm', 'c 136:* rwm', 'c 10:200 rwm', 'c *:* m', 'b *:* m']) {
    assert.ok(allowed.includes(r), r);
  }
});

test('which keys ask for enforcement: unlimited and unset values do not', () => {
  assert.equal(requestedLimitKeys({}), []);
  assert.equal(requestedLimitKeys({ memory: 0, memorySwap: -1, pidsLimit: -1, cpuQuota: -1, cpusetCpus: '' }), []);
  assert.equal(requestedLimitKeys({ memory: 8 * MiB, pidsLimit: 10, cpusetCpus: '0', devices: [] }), ['memory', 'cpusetCpus', 'pidsLimit', 'devices']);
});

test('validation rejects what Docker rejects', async () => {
  const bad: Array<[CgroupLimits, RegExp]> = [
    [{ memory: 4 * MiB }, /minimum memory/],
    [{ memorySwap: 64 * MiB }, /needs a memory limit/],
    [{ memory: 64 * MiB, memorySwap: 32 * MiB }, /at least the memory limit/],
    [{ memorySwap: -2 }, /-1/],
    [{ nanoCpus: 1e9, cpuQuota: 50_000 }, /conflicting/],
    [{ nanoCpus: 1e6 }, /at least 0.01/],
    [{ cpuPeriod: 500 }, /cpu-period/],
    [{ cpuQuota: 10 }, /cpu-quota/],
    [{ blkioWeight: 5 }, /blkio-weight/],
    [{ cpusetCpus: '0-1;rm' }, /cpusetCpus/],
    [{ memory: Number.NaN }, /finite/],
    [{ devices: [{ allow: true, type: 'c', major: 1, minor: 3, access: 'rwx' }] }, /access/],
  ];
  for (const [limits, pattern] of bad) await rejects(() => validateLimits(limits), 'EINVAL', pattern);
  validateLimits({ memory: 32 * MiB, memorySwap: -1, nanoCpus: 0.5e9, cpusetCpus: '0-1,3', pidsLimit: 0, blkioWeight: 500, devices: [...DEFAULT_DEVICE_RULES] });
});

test('small parsers: keyed files, /proc/stat, cpu lists', () => {
  assert.equal(parseKeyedValues('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n'), { oom_kill_disable: 0, under_oom: 0, oom_kill: 3 });
  assert.equal(parseKeyedValues(undefined), {});
  const procStat = 'cpu  100 2 30 4000 5 6 7 8 0 0\ncpu0 50 1 15 2000 2 3 3 4 0 0\nintr 1\n';
  assert.is(parseSystemCpuNanos(procStat), (100 + 2 + 30 + 4000 + 5 + 6 + 7) * 1e7);
  assert.is(parseSystemCpuNanos('garbage'), undefined);
  assert.is(countCpuList('0-3'), 4);
  assert.is(countCpuList('0-1,4,6-7'), 5);
  assert.is(countCpuList('0'), 1);
});

test("mode 'none': containers without limits run; every limit is a clear EUNSUPPORTED", async () => {
  const manager = createCgroupManager({ mode: 'none', version: 0, v1Mounts: {}, v2Controllers: [] });
  const plain = await manager.create('c1', { memorySwap: -1, pidsLimit: 0, devices: [...DEFAULT_DEVICE_RULES] });
  assert.equal(plain.procsFiles(), []);
  assert.is((await plain.stats()).memory.usage, 0);
  await plain.remove();
  await rejects(() => manager.create('c2', { memory: 32 * MiB }), 'EUNSUPPORTED', /^memory limit requested but this host has no cgroups mounted$/);
  await rejects(() => plain.apply({ pidsLimit: 5 }), 'EUNSUPPORTED', /pids limit/);
  await rejects(() => plain.freeze(), 'EUNSUPPORTED', /freezer/);
  const report = manager.supports(['memory', 'nanoCpus', 'devices']);
  assert.is(report.ok, false);
  assert.equal(report.unsupported, ['memory', 'nanoCpus']);
  assert.is(report.notes.length, 1);
  assert.equal(await manager.listOwned(), []);
});

test('ids that are not plain names are refused before touching anything', async () => {
  const manager = createCgroupManager({ mode: 'none', version: 0, v1Mounts: {}, v2Controllers: [] });
  for (const id of ['', '..', '../x', 'a/b', '.hidden', 'x'.repeat(200)]) await rejects(() => manager.create(id, {}), 'EINVAL');
  assert.throws(() => createCgroupManager({ mode: 'legacy', version: 1, v1Mounts: { memory: '/x' }, v2Controllers: [] }, { parent: '../up' }), (err: unknown) => isBerthError(err, 'EINVAL'));
});

test.run();
