// Docker's create-time rules without a kernel: config merge, host config validation,
// limits, signals, mounts, /etc files, ps status text and filters.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { limitsOf, mergeConfig, normaliseHostConfig, parseSignal, processEnv, updatedHostConfig } from '../../../src/engine/config';
import { containerHosts, containerResolvConf, planMounts } from '../../../src/engine/mounts';
import { humanDuration, matchesFilters, statusText } from '../../../src/engine/present';
import { initialState, type ContainerRecord } from '../../../src/engine/record';
import { autoName, lookup, normaliseName } from '../../../src/engine/names';
import { isBerthError } from '../../../src/util/errors';

const image = { Env: ['PATH=/img/bin', 'A=1'], Entrypoint: ['/entry'], Cmd: ['default'], WorkingDir: '/w', User: 'nobody', Labels: { a: 'img', b: 'img' }, ExposedPorts: { '80/tcp': {} }, Volumes: { '/data': {} } };

function throwsCode(fn: () => unknown, code: string, message?: RegExp): void {
  try { fn(); } catch (err) {
    assert.ok(isBerthError(err), String(err));
    assert.is((err as { code: string }).code, code);
    if (message) assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('entrypoint and cmd: image defaults, user cmd, user entrypoint drops the image cmd, reset', () => {
  assert.equal(mergeConfig({ Image: 'x' }, image, 'h').args, ['default']);
  assert.is(mergeConfig({ Image: 'x' }, image, 'h').path, '/entry');
  assert.equal(mergeConfig({ Image: 'x', Cmd: ['a', 'b'] }, image, 'h').args, ['a', 'b']);
  const own = mergeConfig({ Image: 'x', Entrypoint: ['/own'] }, image, 'h');
  assert.is(own.path, '/own');
  assert.equal(own.args, []);
  assert.is(own.config.Cmd, null);
  const reset = mergeConfig({ Image: 'x', Entrypoint: [''], Cmd: ['sh'] }, image, 'h');
  assert.is(reset.path, 'sh');
  assert.is(reset.config.Entrypoint, null);
  assert.is(mergeConfig({ Image: 'x', Cmd: 'echo' }, {}, 'h').path, 'echo');
  throwsCode(() => mergeConfig({ Image: 'x' }, {}, 'h'), 'EINVAL', /No command specified/);
});

test('env, labels, ports, user, workdir merge; process env gets PATH, HOSTNAME, TERM', () => {
  const { config } = mergeConfig({ Image: 'x', Env: ['A=2', 'B=3'], Labels: { b: 'user' }, ExposedPorts: { '53/udp': {} }, Tty: true }, image, 'abc');
  assert.equal(config.Env, ['PATH=/img/bin', 'A=2', 'B=3']);
  assert.equal(config.Labels, { a: 'img', b: 'user' });
  assert.equal(Object.keys(config.ExposedPorts!).sort(), ['53/udp', '80/tcp']);
  assert.is(config.User, 'nobody');
  assert.is(config.WorkingDir, '/w');
  assert.is(config.Hostname, 'abc');
  assert.equal(processEnv(config), ['PATH=/img/bin', 'HOSTNAME=abc', 'TERM=xterm', 'A=2', 'B=3']);
  const bare = mergeConfig({ Image: 'x', Cmd: ['x'] }, {}, 'h').config;
  assert.equal(processEnv(bare), ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=h']);
});

test('host config: defaults, restart policy rules, AutoRemove conflict, memory swap default', () => {
  const hc = normaliseHostConfig({ NetworkMode: 'default', Memory: 32 << 20 });
  assert.equal(hc.RestartPolicy, { Name: 'no', MaximumRetryCount: 0 });
  assert.is(hc.NetworkMode, 'bridge');
  assert.equal(hc.LogConfig, { Type: 'json-file', Config: {} });
  assert.is(hc.MemorySwap, 64 << 20);
  throwsCode(() => normaliseHostConfig({ AutoRemove: true, RestartPolicy: { Name: 'always' } }), 'EINVAL', /AutoRemove/);
  throwsCode(() => normaliseHostConfig({ RestartPolicy: { Name: 'always', MaximumRetryCount: 2 } }), 'EINVAL');
  throwsCode(() => normaliseHostConfig({ RestartPolicy: { Name: 'sometimes' as 'always' } }), 'EINVAL');
  assert.equal(normaliseHostConfig({ RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } }).RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 2 });
  throwsCode(() => normaliseHostConfig({ LogConfig: { Type: 'syslog' } }), 'EINVAL');
  assert.equal(limitsOf({ NanoCpus: 5e8, PidsLimit: 10, Memory: 0, CpuShares: 512 }), { nanoCpus: 5e8, cpuShares: 512, pidsLimit: 10 });
  const updated = updatedHostConfig(normaliseHostConfig({ Memory: 32 << 20 }), { Memory: 64 << 20, RestartPolicy: { Name: 'always' } });
  assert.is(updated.Memory, 64 << 20);
  assert.is(updated.MemorySwap, 128 << 20);
  assert.is(updated.RestartPolicy!.Name, 'always');
});

test('signals by name and number', () => {
  assert.is(parseSignal('SIGTERM'), 15);
  assert.is(parseSignal('kill'), 9);
  assert.is(parseSignal('HUP'), 1);
  assert.is(parseSignal('10'), 10);
  assert.is(parseSignal(undefined), 15);
  throwsCode(() => parseSignal('SIGNOPE'), 'EINVAL');
});

test('mounts: binds, named and anonymous volumes, tmpfs, duplicates', () => {
  const mounts = planMounts({ Binds: ['/host:/ctr:ro', 'named:/n', '/anon'], Tmpfs: { '/run': 'size=1m' } }, { '/data': {}, '/n': {} }, '/vols');
  assert.equal(mounts.map((m) => [m.Type, m.Destination, m.RW]), [['bind', '/ctr', false], ['volume', '/n', true], ['volume', '/anon', true], ['tmpfs', '/run', true], ['volume', '/data', true]]);
  assert.is(mounts[1]!.Source, '/vols/named/_data');
  assert.ok(mounts[2]!.anonymous && mounts[4]!.anonymous);
  throwsCode(() => planMounts({ Binds: ['/a:/x', '/b:/x'] }, null, '/v'), 'EINVAL', /Duplicate mount point/);
  throwsCode(() => planMounts({ Binds: ['/a:rel'] }, null, '/v'), 'EINVAL');
  throwsCode(() => planMounts({ Binds: ['bad name:/x'] }, null, '/v'), 'EINVAL');
});

test('resolv.conf drops local nameservers; hosts has localhost and the hostname', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-etc-'));
  try {
    writeFileSync(join(dir, 'local'), 'search lan\nnameserver 127.0.0.1\n');
    writeFileSync(join(dir, 'auto'), 'nameserver 192.0.2.53\n');
    const base = { hostname: 'h1', domainname: '', networkMode: 'bridge', hostsSource: '/nonexistent' };
    assert.is(await containerResolvConf({ ...base, resolvConfSources: [join(dir, 'local'), join(dir, 'auto')] }), 'nameserver 192.0.2.53\n');
    assert.is(await containerResolvConf({ ...base, resolvConfSources: [join(dir, 'local')] }), 'search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    assert.is(await containerResolvConf({ ...base, networkMode: 'host', resolvConfSources: [join(dir, 'local')] }), 'search lan\nnameserver 127.0.0.1\n');
    assert.match(await containerResolvConf({ ...base, dns: ['1.1.1.1'], resolvConfSources: [join(dir, 'local')] }), /^search lan\nnameserver 1\.1\.1\.1\n$/);
    const hosts = containerHosts({ ...base, resolvConfSources: [], extraHosts: ['db:10.0.0.2'] }, '');
    assert.match(hosts, /^127\.0\.0\.1\tlocalhost$/m);
    assert.match(hosts, /\th1$/m);
    assert.match(hosts, /^10\.0\.0\.2\tdb$/m);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('status text and human durations as docker ps prints them', () => {
  assert.is(humanDuration(500), 'Less than a second');
  assert.is(humanDuration(1000), '1 second');
  assert.is(humanDuration(45_000), '45 seconds');
  assert.is(humanDuration(90_000), 'About a minute');
  assert.is(humanDuration(3 * 60_000), '3 minutes');
  assert.is(humanDuration(3600_000), 'About an hour');
  assert.is(humanDuration(5 * 3600_000), '5 hours');
  assert.is(humanDuration(3 * 86400_000), '3 days');
  const now = Date.parse('2024-01-01T00:10:00Z');
  const rec = { state: { ...initialState() }, config: { Labels: { env: 'prod' } }, name: '/web', id: 'abc123' } as unknown as ContainerRecord;
  assert.is(statusText(rec, now), 'Created');
  Object.assign(rec.state, { Status: 'running', StartedAt: '2024-01-01T00:07:00Z' });
  assert.is(statusText(rec, now), 'Up 3 minutes');
  Object.assign(rec.state, { Status: 'paused' });
  assert.is(statusText(rec, now), 'Up 3 minutes (Paused)');
  Object.assign(rec.state, { Status: 'exited', ExitCode: 0, FinishedAt: '2024-01-01T00:09:55Z' });
  assert.is(statusText(rec, now), 'Exited (0) 5 seconds ago');
  const none = () => false;
  assert.ok(matchesFilters(rec, { status: ['exited'], label: ['env=prod'], name: ['we'], id: ['abc'] }, none));
  assert.not.ok(matchesFilters(rec, { label: ['env=dev'] }, none));
  assert.ok(matchesFilters(rec, { exited: ['0'] }, none));
  assert.not.ok(matchesFilters(rec, { exited: ['1'] }, none));
  try { matchesFilters(rec, { status: ['sleeping'] }, none); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'EINVAL')); }
});

test('names and lookups: full id, name, unique prefix, ambiguity', () => {
  assert.is(normaliseName('web'), '/web');
  throwsCode(() => normaliseName('-bad'), 'EINVAL');
  const byId = new Map([['aaaa1111', 1], ['aaaa2222', 2], ['bbbb0000', 3]]);
  const names = new Map([['/web', 'bbbb0000']]);
  const find = (ref: string) => lookup(ref, byId, (n) => names.get(n));
  assert.is(find('aaaa1111'), 1);
  assert.is(find('web'), 3);
  assert.is(find('aaaa2'), 2);
  throwsCode(() => find('aaaa'), 'EINVAL', /multiple IDs/);
  throwsCode(() => find('zzz'), 'ENOCONTAINER', /^No such container: zzz$/);
  assert.match(autoName(() => false), /^\/[a-z]+_[a-z]+$/);
});

test.run();
