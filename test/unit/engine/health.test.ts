// Health checks without a kernel: Docker's Healthcheck merge and validation, the status
// rules, output capping, and the monitor's schedule and timeout on fake timers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  goDuration, healthTiming, HealthMonitor, LimitedOutput, mergeHealthConfig, probeCommand, recordHealthResult, validateHealthConfig,
  type HealthProbe, type HealthResult, type HealthState, type HealthTimers,
} from '../../../src/engine/health';
import { mergeConfig } from '../../../src/engine/config';
import { matchesFilters, statusText, inspectDocument } from '../../../src/engine/present';
import { initialState, type ContainerRecord } from '../../../src/engine/record';

const S = 1_000_000_000;

test('goDuration prints what Docker prints', () => {
  assert.is(goDuration(30 * S), '30s');
  assert.is(goDuration(90 * S), '1m30s');
  assert.is(goDuration(3600 * S), '1h0m0s');
  assert.is(goDuration(1_000_000), '1ms');
  assert.is(goDuration(1.5 * S), '1.5s');
  assert.is(goDuration(0), '0s');
});

test('validation: Docker wording for too-short durations and negative retries, unknown test types', () => {
  assert.throws(() => validateHealthConfig({ Test: ['CMD', 'true'], Interval: 500_000 }), /^Interval in Healthcheck cannot be less than 1ms$/);
  assert.throws(() => validateHealthConfig({ Timeout: 10 }), /^Timeout in Healthcheck cannot be less than 1ms$/);
  assert.throws(() => validateHealthConfig({ StartPeriod: 10 }), /^StartPeriod in Healthcheck cannot be less than 1ms$/);
  assert.throws(() => validateHealthConfig({ StartInterval: 10 }), /^StartInterval in Healthcheck cannot be less than 1ms$/);
  assert.throws(() => validateHealthConfig({ Retries: -1 }), /^Retries in Healthcheck cannot be negative$/);
  assert.throws(() => validateHealthConfig({ Test: ['SHELL', 'x'] }), /unknown type 'SHELL'/);
  assert.throws(() => validateHealthConfig({ Test: 'true' }), /Test in Healthcheck must be a list of strings/);
  assert.is(validateHealthConfig(null), undefined);
  assert.equal(validateHealthConfig({ Test: ['CMD-SHELL', 'true'], Interval: 0, Retries: 0 }), { Test: ['CMD-SHELL', 'true'] });
});

test('merge: request fields override, zero inherits from the image, NONE disables', () => {
  const image = { Test: ['CMD', 'check'], Interval: 10 * S, Timeout: 3 * S, Retries: 5 };
  assert.equal(mergeHealthConfig(undefined, image), image);
  assert.equal(mergeHealthConfig({ Interval: 2 * S }, image), { Interval: 2 * S, Test: ['CMD', 'check'], Timeout: 3 * S, Retries: 5 });
  assert.equal(mergeHealthConfig({ Test: ['CMD-SHELL', 'other'] }, image), { Test: ['CMD-SHELL', 'other'], Interval: 10 * S, Timeout: 3 * S, Retries: 5 });
  const none = mergeHealthConfig({ Test: ['NONE'] }, image);
  assert.is(probeCommand(none), undefined, 'NONE switches the image check off');
  assert.is(mergeHealthConfig(undefined, null), undefined);
});

test('probe command: CMD is exec form, CMD-SHELL runs /bin/sh -c', () => {
  assert.equal(probeCommand({ Test: ['CMD', 'test', '-f', '/x'] }), ['test', '-f', '/x']);
  assert.equal(probeCommand({ Test: ['CMD-SHELL', 'test -f /x || exit 1'] }), ['/bin/sh', '-c', 'test -f /x || exit 1']);
  assert.is(probeCommand({}), undefined);
  assert.is(probeCommand(undefined), undefined);
});

test('defaults: interval 30s, timeout 30s, start period 0, retries 3', () => {
  assert.equal(healthTiming({ Test: ['CMD', 'x'] }), { intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, startIntervalMs: 5_000, retries: 3 });
});

test('create merges the request with the image and inspect shows the result', () => {
  const { config } = mergeConfig({ Image: 'x', Cmd: ['sh'], Healthcheck: { Interval: S } }, { Healthcheck: { Test: ['CMD', 'true'], Retries: 2 } }, 'h');
  assert.equal(config.Healthcheck, { Interval: S, Test: ['CMD', 'true'], Retries: 2 });
  assert.throws(() => mergeConfig({ Image: 'x', Cmd: ['sh'], Healthcheck: { Interval: 1 } }, {}, 'h'), /Interval in Healthcheck cannot be less than 1ms/);
  assert.is(mergeConfig({ Image: 'x', Cmd: ['sh'] }, {}, 'h').config.Healthcheck, undefined);
});

const at = (ms: number): HealthResult => ({ Start: new Date(ms).toISOString(), End: new Date(ms).toISOString(), ExitCode: 0, Output: '' });
const fail = (ms: number): HealthResult => ({ ...at(ms), ExitCode: 1 });

test('state machine: retries consecutive failures make it unhealthy, one success heals', () => {
  const timing = healthTiming({ Retries: 2 });
  const state: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };
  assert.is(recordHealthResult(state, fail(1000), timing, 0), false);
  assert.is(state.Status, 'starting');
  assert.is(state.FailingStreak, 1);
  assert.is(recordHealthResult(state, fail(2000), timing, 0), true);
  assert.is(state.Status, 'unhealthy');
  assert.is(recordHealthResult(state, at(3000), timing, 0), true);
  assert.equal([state.Status, state.FailingStreak], ['healthy', 0]);
  recordHealthResult(state, fail(4000), timing, 0);
  assert.equal([state.Status, state.FailingStreak], ['healthy', 1], 'one failure below retries stays healthy');
});

test('state machine: failures in the start period do not count while starting; the log keeps 5', () => {
  const timing = healthTiming({ Retries: 1, StartPeriod: 10 * S });
  const state: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };
  for (let i = 1; i <= 6; i++) recordHealthResult(state, fail(i * 1000), timing, 0);
  assert.equal([state.Status, state.FailingStreak], ['starting', 0]);
  assert.is(state.Log.length, 5);
  assert.is(state.Log[0]!.Start, new Date(2000).toISOString(), 'the oldest results go first');
  recordHealthResult(state, fail(11_000), timing, 0);
  assert.is(state.Status, 'unhealthy', 'after the start period a failure counts');
});

test('output is capped at 4096 bytes with "..." marking the cut', () => {
  const out = new LimitedOutput();
  out.write('a'.repeat(4000));
  out.write(Buffer.from('b'.repeat(200)));
  const text = out.toString();
  assert.is(text.length, 4096 + 3);
  assert.ok(text.endsWith('b...'));
  const small = new LimitedOutput();
  small.write('ok\n');
  assert.is(small.toString(), 'ok\n');
});

/** Timers that only move when the test says so. */
function fakeTimers() {
  let now = 0;
  let seq = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  const timers: HealthTimers = {
    now: () => now,
    setTimeout: (fn, ms) => { const id = ++seq; pending.set(id, { at: now + ms, fn }); return id; },
    clearTimeout: (h) => { pending.delete(h as number); },
  };
  const flush = () => new Promise((r) => setImmediate(r));
  async function advance(ms: number): Promise<void> {
    const until = now + ms;
    for (;;) {
      await flush();
      const next = [...pending.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      pending.delete(next[0]);
      now = next[1].at;
      next[1].fn();
    }
    now = until;
    await flush();
  }
  return { timers, advance, pendingCount: () => pending.size };
}

test('monitor: first probe after one interval, then each interval; events on status changes only', async () => {
  const clock = fakeTimers();
  const state: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };
  let healthy = false;
  const calls: string[][] = [];
  const probe: HealthProbe = async (cmd) => { calls.push(cmd); return { exitCode: healthy ? 0 : 1, output: healthy ? 'fine\n' : 'missing\n' }; };
  const changes: string[] = [];
  const monitor = new HealthMonitor({
    config: { Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: S, Retries: 2 }, command: ['/bin/sh', '-c', 'test -f /tmp/ok'],
    state, startedMs: 0, probe, timers: clock.timers, onResult: (changed) => { if (changed) changes.push(state.Status); },
  });
  monitor.start();
  await clock.advance(999);
  assert.is(calls.length, 0, 'no probe before the first interval');
  await clock.advance(1);
  assert.is(calls.length, 1);
  assert.equal(calls[0], ['/bin/sh', '-c', 'test -f /tmp/ok']);
  await clock.advance(1000);
  assert.is(state.Status, 'unhealthy');
  healthy = true;
  await clock.advance(1000);
  assert.is(state.Status, 'healthy');
  await clock.advance(3000);
  assert.equal(changes, ['unhealthy', 'healthy']);
  assert.is(state.Log.length, 5);
  assert.equal(state.Log.at(-1)!.ExitCode, 0);
  assert.is(state.Log.at(-1)!.Output, 'fine\n');
  monitor.stop();
  const before = calls.length;
  await clock.advance(10_000);
  assert.is(calls.length, before, 'no probes after stop');
  assert.is(clock.pendingCount(), 0, 'stop leaves no timers');
});

test('monitor: a probe past the timeout is aborted and fails with Docker\'s message', async () => {
  const clock = fakeTimers();
  const state: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };
  let aborted = 0;
  const probe: HealthProbe = (_cmd, signal) => new Promise((_resolve, reject) => {
    signal.addEventListener('abort', () => { aborted++; reject(new Error('aborted')); });
  });
  const monitor = new HealthMonitor({
    config: { Test: ['CMD', 'sleep', '10'], Interval: S, Timeout: S, Retries: 1 }, command: ['sleep', '10'],
    state, startedMs: 0, probe, timers: clock.timers, onResult: () => {},
  });
  monitor.start();
  await clock.advance(2000);
  assert.is(aborted, 1);
  assert.is(state.Status, 'unhealthy');
  assert.is(state.Log[0]!.ExitCode, -1);
  assert.is(state.Log[0]!.Output, 'Health check exceeded timeout (1s)');
  monitor.stop();
});

test('monitor: stop during a probe drops its late result', async () => {
  const clock = fakeTimers();
  const state: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };
  let finish!: (r: { exitCode: number; output: string }) => void;
  const probe: HealthProbe = () => new Promise((r) => { finish = r; });
  let results = 0;
  const monitor = new HealthMonitor({
    config: { Test: ['CMD', 'x'], Interval: S }, command: ['x'], state, startedMs: 0, probe, timers: clock.timers, onResult: () => { results++; },
  });
  monitor.start();
  await clock.advance(1000);
  monitor.stop();
  finish({ exitCode: 0, output: '' });
  await clock.advance(5000);
  assert.is(results, 0);
  assert.is(state.Log.length, 0);
  assert.is(state.Status, 'starting');
});

test('monitor: the start interval applies while starting inside the start period', async () => {
  const clock = fakeTimers();
  const state: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };
  const times: number[] = [];
  const monitor = new HealthMonitor({
    config: { Test: ['CMD', 'x'], Interval: 10 * S, StartPeriod: 5 * S, StartInterval: S }, command: ['x'], state, startedMs: 0,
    probe: async () => { times.push(clock.timers.now()); return { exitCode: 1, output: '' }; }, timers: clock.timers, onResult: () => {},
  });
  monitor.start();
  await clock.advance(7000);
  assert.equal(times, [1000, 2000, 3000, 4000, 5000]);
  monitor.stop();
});

function record(state: Partial<ContainerRecord['state']>, healthcheck?: object): ContainerRecord {
  return {
    version: 1, id: 'a'.repeat(64), name: '/c', created: new Date().toISOString(), request: { Image: 'x' },
    config: { Hostname: 'h', Domainname: '', User: '', AttachStdin: false, AttachStdout: false, AttachStderr: false, Tty: false, OpenStdin: false, StdinOnce: false, Env: [], Cmd: null, Image: 'x', Volumes: null, WorkingDir: '', Entrypoint: null, Labels: {}, ...(healthcheck ? { Healthcheck: healthcheck } : {}) },
    hostConfig: {}, path: 'sh', args: [], state: { ...initialState(), ...state }, restartCount: 0, manuallyStopped: false,
    imageId: 'sha256:' + 'b'.repeat(64) as ContainerRecord['imageId'], chainIds: [], storageDriver: 'copy', logPath: '', mounts: [], resolvConfPath: '', hostsPath: '', hostnamePath: '',
  };
}

test('ps status text and the health filter', () => {
  const started = new Date(Date.now() - 120_000).toISOString();
  const running = { Status: 'running' as const, Running: true, StartedAt: started };
  const healthy = record({ ...running, Health: { Status: 'healthy', FailingStreak: 0, Log: [] } });
  const starting = record({ ...running, Health: { Status: 'starting', FailingStreak: 0, Log: [] } });
  const unhealthy = record({ ...running, Health: { Status: 'unhealthy', FailingStreak: 3, Log: [] } });
  const plain = record(running);
  assert.is(statusText(healthy), 'Up 2 minutes (healthy)');
  assert.is(statusText(starting), 'Up 2 minutes (health: starting)');
  assert.is(statusText(unhealthy), 'Up 2 minutes (unhealthy)');
  assert.is(statusText(plain), 'Up 2 minutes');
  const pick = (value: string) => [healthy, starting, unhealthy, plain].filter((r) => matchesFilters(r, { health: [value] }, () => false)).map((r) => r.state.Health?.Status ?? 'none');
  assert.equal(pick('healthy'), ['healthy']);
  assert.equal(pick('starting'), ['starting']);
  assert.equal(pick('unhealthy'), ['unhealthy']);
  assert.equal(pick('none'), ['none']);
  assert.throws(() => matchesFilters(plain, { health: ['sick'] }, () => false), /Unrecognised filter value for health: sick/);
});

test('inspect: Config.Healthcheck and State.Health only when there is a check', () => {
  const hc = { Test: ['CMD-SHELL', 'true'], Interval: S };
  const doc = inspectDocument(record({ Status: 'running', Running: true, Health: { Status: 'healthy', FailingStreak: 0, Log: [at(1)] } }, hc), 'copy') as any;
  assert.equal(doc.Config.Healthcheck, hc);
  assert.is(doc.State.Health.Status, 'healthy');
  assert.is(doc.State.Health.Log.length, 1);
  const none = inspectDocument(record({ Status: 'running', Running: true }), 'copy') as any;
  assert.is(none.Config.Healthcheck, undefined);
  assert.is(none.State.Health, undefined);
});

test.run();
