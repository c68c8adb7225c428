import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadDaemonConfig, parseByteSize, type DaemonConfig } from '../../../src/daemon/config';
import { detectCgroupSetup, operatingSystemName } from '../../../src/daemon/hostinfo';

function load(argv: string[], file?: unknown): DaemonConfig {
  const cmd = loadDaemonConfig(argv, () => JSON.stringify(file));
  if (cmd.kind !== 'run') throw new Error('expected run');
  return cmd.config;
}

test('defaults', () => {
  const c = load([]);
  assert.is(c.dataRoot, '/var/lib/berth');
  assert.is(c.execRoot, '/run/berth');
  assert.equal(c.hosts, ['unix:///var/run/berth.sock']);
  assert.is(c.maxConcurrentDownloads, 3);
  assert.is(c.logLevel, 'info');
  assert.is(c.storageDriver, undefined);
});

test('file values, and flags win over the file', () => {
  const file = { 'data-root': '/d', 'exec-root': '/e', hosts: ['unix:///a.sock'], 'storage-driver': 'overlay2', 'insecure-registries': ['reg:5000', '10.0.0.0/8'], 'log-level': 'debug', 'max-concurrent-downloads': 5, 'max-layer-size': '512MB' };
  const c = load(['--config', '/cfg.json', '-H', 'unix:///b.sock', '--data-root', '/flag', '--insecure-registry', 'x:1'], file);
  assert.is(c.dataRoot, '/flag');
  assert.is(c.execRoot, '/e');
  assert.equal(c.hosts, ['unix:///b.sock']);
  assert.is(c.storageDriver, 'overlay2');
  assert.equal(c.insecureRegistries, ['x:1']);
  assert.is(c.logLevel, 'debug');
  assert.is(c.maxConcurrentDownloads, 5);
  assert.is(c.maxLayerSize, 512 * 1024 * 1024);
  assert.equal(load(['--config', '/c'], file).insecureRegistries, ['reg:5000', '10.0.0.0/8']);
});

test('bad keys and values name the key', () => {
  assert.throws(() => load(['--config', '/c'], { 'data-root': '/x', debug: true }), /unknown key "debug"/);
  assert.throws(() => load(['--config', '/c'], { 'max-concurrent-downloads': -1 }), /"max-concurrent-downloads"/);
  assert.throws(() => load(['--config', '/c'], { hosts: ['tcp://0.0.0.0:2375'] }), /"hosts".*unix sockets only/);
  assert.throws(() => load(['--config', '/c'], { 'log-level': 'loud' }), /"log-level"/);
  assert.throws(() => load(['--config', '/c'], { 'insecure-registries': ['http://reg'] }), /"insecure-registries"/);
  assert.throws(() => load(['--data-root', 'relative']), /"data-root"/);
  assert.throws(() => loadDaemonConfig(['--config', '/c'], () => '{not json'), /not valid JSON/);
  assert.throws(() => parseByteSize('max-layer-size', '12 parsecs'), /"max-layer-size"/);
});

test('cgroup detection: v2, hybrid counts as v1, none', () => {
  const v2 = '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n';
  const hybrid = '30 23 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n31 23 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n';
  assert.equal(detectCgroupSetup(v2), { driver: 'cgroupfs', version: '2' });
  assert.equal(detectCgroupSetup(hybrid), { driver: 'cgroupfs', version: '1' });
  assert.equal(detectCgroupSetup('22 1 0:20 / / rw - ext4 /dev/sda1 rw\n'), { driver: 'none', version: '' });
});

test('operating system from os-release or openwrt_release', () => {
  assert.equal(operatingSystemName('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\n', undefined), { name: 'Debian GNU/Linux 12 (bookworm)', version: '12' });
  assert.equal(operatingSystemName(undefined, "DISTRIB_RELEASE='23.05.3'\nDISTRIB_DESCRIPTION='OpenWrt 23.05.3 r23809-234f1a2efa'\n"), { name: 'OpenWrt 23.05.3 r23809-234f1a2efa', version: '23.05.3' });
});

test.run();
