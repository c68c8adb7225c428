import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectCgroups, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC } from '../../../src/cgroups';
import { mountLine, withTempDir } from './fixture';

const EXT4_MAGIC = 0xef53;
/** statfs for fixtures: named paths get the given magic, everything else looks like ext4. */
const statfsFrom = (magics: Record<string, number>) => (path: string): number | undefined => magics[path] ?? EXT4_MAGIC;

test('unified: cgroup2 mounted at the root (mount table)', async () => {
  await withTempDir('berth-cg-detect-', (root) => {
    writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    const mountinfo = [mountLine(20, '/sys', 'sysfs', 'rw'), mountLine(25, root, 'cgroup2', 'rw,nsdelegate', 'cgroup2')].join('\n');
    const setup = detectCgroups({ root, mountinfo, statfs: statfsFrom({}) });
    assert.equal(setup, { mode: 'unified', version: 2, v1Mounts: {}, v2Mount: root, v2Controllers: ['cpuset', 'cpu', 'io', 'memory', 'pids'] });
  });
});

test('unified: the root is recognised by its statfs magic when the mount table does not list it', async () => {
  await withTempDir('berth-cg-detect-', (root) => {
    writeFileSync(join(root, 'cgroup.controllers'), 'memory pids');
    const setup = detectCgroups({ root, mountinfo: '', statfs: statfsFrom({ [root]: CGROUP2_SUPER_MAGIC }) });
    assert.is(setup.mode, 'unified');
    assert.is(setup.version, 2);
    assert.equal(setup.v2Controllers, ['memory', 'pids']);
  });
});

test('hybrid: v1 controllers plus cgroup2 at <root>/unified with only hugetlb; driven as v1', async () => {
  await withTempDir('berth-cg-detect-', (root) => {
    mkdirSync(join(root, 'unified'));
    writeFileSync(join(root, 'unified', 'cgroup.controllers'), 'hugetlb\n');
    const v1 = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'];
    const mountinfo = [
      mountLine(31, root, 'tmpfs', 'rw,mode=755'),
      ...v1.map((c, i) => mountLine(32 + i, join(root, c), 'cgroup', `rw,${c}`, 'cgroup')),
      mountLine(40, join(root, 'systemd'), 'cgroup', 'rw,xattr,name=systemd', 'cgroup'),
      mountLine(41, join(root, 'unified'), 'cgroup2', 'rw', 'cgroup2'),
    ].join('\n');
    const setup = detectCgroups({ root, mountinfo, statfs: statfsFrom({ [root]: TMPFS_MAGIC }) });
    assert.is(setup.mode, 'hybrid');
    assert.is(setup.version, 1);
    assert.equal(setup.v1Mounts, Object.fromEntries(v1.map((c) => [c, join(root, c)])));
    assert.is(setup.v2Mount, join(root, 'unified'));
    assert.equal(setup.v2Controllers, ['hugetlb']);
  });
});

test('legacy: co-mounted controllers share a path; named hierarchies and mounts elsewhere are ignored', async () => {
  await withTempDir('berth-cg-detect-', (root) => {
    const mountinfo = [
      mountLine(31, root, 'tmpfs', 'rw,mode=755'),
      mountLine(32, join(root, 'cpu,cpuacct'), 'cgroup', 'rw,cpu,cpuacct', 'cgroup'),
      mountLine(33, join(root, 'memory'), 'cgroup', 'rw,memory', 'cgroup'),
      mountLine(34, join(root, 'systemd'), 'cgroup', 'rw,name=systemd', 'cgroup'),
      mountLine(35, '/elsewhere/pids', 'cgroup', 'rw,pids', 'cgroup'),
    ].join('\n');
    const setup = detectCgroups({ root, mountinfo, statfs: statfsFrom({}) });
    assert.equal(setup, {
      mode: 'legacy', version: 1, v2Mount: undefined, v2Controllers: [],
      v1Mounts: { cpu: join(root, 'cpu,cpuacct'), cpuacct: join(root, 'cpu,cpuacct'), memory: join(root, 'memory') },
    });
  });
});

test('legacy: one v1 hierarchy with every controller mounted at the root (older OpenWrt)', async () => {
  await withTempDir('berth-cg-detect-', (root) => {
    const mountinfo = mountLine(30, root, 'cgroup', 'rw,cpuset,cpu,cpuacct,blkio,memory,devices,freezer,pids', 'cgroup');
    const setup = detectCgroups({ root, mountinfo, statfs: statfsFrom({ [root]: CGROUP_SUPER_MAGIC }) });
    assert.is(setup.mode, 'legacy');
    assert.is(setup.v1Mounts.memory, root);
    assert.is(setup.v1Mounts.freezer, root);
  });
});

test('a later mount on the same point hides the earlier one', async () => {
  await withTempDir('berth-cg-detect-', (root) => {
    writeFileSync(join(root, 'cgroup.controllers'), 'memory');
    const mountinfo = [mountLine(30, root, 'tmpfs', 'rw'), mountLine(31, join(root, 'memory'), 'cgroup', 'rw,memory'), mountLine(32, root, 'cgroup2', 'rw')].join('\n');
    assert.is(detectCgroups({ root, mountinfo, statfs: statfsFrom({}) }).mode, 'unified');
  });
});

test('none: nothing mounted, an empty tmpfs, or a missing root', async () => {
  await withTempDir('berth-cg-detect-', (root) => {
    const plain = mountLine(20, '/sys', 'sysfs', 'rw');
    assert.equal(detectCgroups({ root, mountinfo: plain, statfs: statfsFrom({}) }), { mode: 'none', version: 0, v1Mounts: {}, v2Mount: undefined, v2Controllers: [] });
    const onlyTmpfs = [plain, mountLine(21, root, 'tmpfs', 'rw')].join('\n');
    assert.is(detectCgroups({ root, mountinfo: onlyTmpfs, statfs: statfsFrom({ [root]: TMPFS_MAGIC }) }).mode, 'none');
    // Only a named hierarchy (no controllers): still nothing to limit with.
    const namedOnly = [onlyTmpfs, mountLine(22, join(root, 'systemd'), 'cgroup', 'rw,name=systemd')].join('\n');
    assert.is(detectCgroups({ root, mountinfo: namedOnly, statfs: statfsFrom({}) }).mode, 'none');
    const missing = detectCgroups({ root: join(root, 'nope'), mountinfo: plain, statfs: () => undefined });
    assert.is(missing.mode, 'none');
    assert.is(missing.version, 0);
  });
});

test('without a mount table, a tmpfs root is read through statfs of its subdirectories', async () => {
  await withTempDir('berth-cg-detect-', (root) => {
    for (const d of ['cpu,cpuacct', 'memory', 'unified', 'notes']) mkdirSync(join(root, d));
    writeFileSync(join(root, 'unified', 'cgroup.controllers'), '');
    const statfs = statfsFrom({
      [root]: TMPFS_MAGIC,
      [join(root, 'cpu,cpuacct')]: CGROUP_SUPER_MAGIC,
      [join(root, 'memory')]: CGROUP_SUPER_MAGIC,
      [join(root, 'unified')]: CGROUP2_SUPER_MAGIC,
    });
    const setup = detectCgroups({ root, mountinfo: '', statfs });
    assert.is(setup.mode, 'hybrid');
    assert.equal(setup.v1Mounts, { cpu: join(root, 'cpu,cpuacct'), cpuacct: join(root, 'cpu,cpuacct'), memory: join(root, 'memory') });
    assert.is(setup.v2Mount, join(root, 'unified'));
  });
});

test('mount points with escaped spaces are matched against the root', async () => {
  await withTempDir('berth cg ', (root) => {
    writeFileSync(join(root, 'cgroup.controllers'), 'pids');
    const mountinfo = mountLine(25, root.replace(/ /g, '\\040'), 'cgroup2', 'rw');
    assert.is(detectCgroups({ root, mountinfo, statfs: statfsFrom({}) }).mode, 'unified');
  });
});

test.run();
