// Health checks through the berth CLI against the real daemon and helper: --health-* flags,
// the starting -> unhealthy -> healthy path, ps status and filter, inspect's log, events,
// the timeout, no check at all, and the checks picking up again after a daemon restart.
// Needs root and a prior `npm run build`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, makeTempDir, REPO_ROOT, type TestDaemon, type RunResult, until } from '../helpers/daemon';

const IMAGE = 'localhost/busybox';
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let daemon: TestDaemon | undefined;
let roots: string;

async function ok(args: string[]): Promise<RunResult> {
  const r = await daemon!.cli(args, { timeoutMs: 60_000 });
  assert.is(r.code, 0, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** State.Health.Status, or "none" when the container has no Health. */
const healthOf = async (name: string): Promise<string> => (JSON.parse((await ok(['inspect', '-f', '{{json .State.Health}}', name])).stdout) ?? { Status: 'none' }).Status;

test.before(async () => {
  if (!canRun) return;
  roots = makeTempDir('berth-e2e-health-');
  daemon = await startDaemon({ dataRoot: join(roots, 'data'), execRoot: join(roots, 'exec') });
  await ok(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
});

test.after(async () => {
  if (daemon) {
    const left = (await daemon.cli(['ps', '-aq']).catch(() => undefined))?.stdout.split('\n').filter(Boolean) ?? [];
    if (left.length) await daemon.cli(['rm', '-f', ...left]).catch(() => {});
    await daemon.stop().catch(() => {});
  }
  if (roots) rmSync(roots, { recursive: true, force: true });
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('starting -> unhealthy -> healthy, in ps, its filter, inspect and events', async () => {
  const since = String(Math.floor(Date.now() / 1000) - 1);
  await ok(['run', '-d', '--name', 'hc', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '1s', '--health-retries', '2', IMAGE, 'sleep', '300']);
  assert.is(await healthOf('hc'), 'starting');
  assert.match((await ok(['ps', '--filter', 'name=hc', '--format', '{{.Status}}'])).stdout, /^Up .* \(health: starting\)\n$/);
  const config = JSON.parse((await ok(['inspect', '-f', '{{json .Config.Healthcheck}}', 'hc'])).stdout);
  assert.equal(config, { Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: 1_000_000_000, Retries: 2 });

  await until('unhealthy', async () => (await healthOf('hc')) === 'unhealthy');
  assert.match((await ok(['ps', '--filter', 'name=hc', '--format', '{{.Status}}'])).stdout, /^Up .* \(unhealthy\)\n$/);
  assert.is((await ok(['ps', '-q', '--filter', 'health=unhealthy'])).stdout.trim().length, 12);
  assert.is((await ok(['ps', '-q', '--filter', 'health=healthy'])).stdout, '');

  await ok(['exec', 'hc', 'touch', '/tmp/ok']);
  await until('healthy', async () => (await healthOf('hc')) === 'healthy');
  const ps = await ok(['ps', '--filter', 'name=hc']);
  assert.match(ps.stdout, /Up .* \(healthy\) +hc\n/);
  assert.match((await ok(['ps', '--filter', 'health=healthy', '--format', '{{.Names}}'])).stdout, /^hc\n$/);
  const health = JSON.parse((await ok(['inspect', '-f', '{{json .State.Health}}', 'hc'])).stdout);
  assert.is(health.FailingStreak, 0);
  assert.ok(health.Log.length >= 3 && health.Log.length <= 5, `log of ${health.Log.length}`);
  assert.is(health.Log.at(-1).ExitCode, 0);
  assert.ok(health.Log.some((r: { ExitCode: number }) => r.ExitCode === 1), 'the failures are in the log');
  assert.match(health.Log.at(-1).Start, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);

  const events = await ok(['events', '--since', since, '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'container=hc', '--filter', 'event=health_status', '--format', '{{.Action}}']);
  assert.is(events.stdout, 'health_status: unhealthy\nhealth_status: healthy\n');
});

t('probe output is captured; a check that outlives its timeout fails with Docker\'s message', async () => {
  await ok(['run', '-d', '--name', 'slow', '--health-cmd', 'echo probing; sleep 5', '--health-interval', '1s', '--health-timeout', '1s', '--health-retries', '1', IMAGE, 'sleep', '300']);
  await until('unhealthy', async () => (await healthOf('slow')) === 'unhealthy');
  const log = JSON.parse((await ok(['inspect', '-f', '{{json .State.Health.Log}}', 'slow'])).stdout);
  assert.is(log[0].ExitCode, -1);
  assert.is(log[0].Output, 'Health check exceeded timeout (1s)');
  const took = Date.parse(log[0].End) - Date.parse(log[0].Start);
  assert.ok(took >= 900 && took < 3000, `the check was cut at the timeout, took ${took} ms`);
  // The killed check takes its children with it: no sleep 5 piles up in the container.
  await sleep(500);
  const top = (await ok(['top', 'slow'])).stdout;
  assert.ok((top.match(/sleep 5/g) ?? []).length <= 1, top);
  await ok(['rm', '-f', 'slow']);

  await ok(['run', '-d', '--name', 'hc-out', '--health-cmd', 'echo out; echo err >&2', '--health-interval', '1s', IMAGE, 'sleep', '300']);
  await until('healthy', async () => (await healthOf('hc-out')) === 'healthy');
  const out = JSON.parse((await ok(['inspect', '-f', '{{json .State.Health.Log}}', 'hc-out'])).stdout);
  assert.is(out[0].Output, 'out\nerr\n');
  await ok(['rm', '-f', 'hc-out']);
});

t('no check: an image without one and --no-healthcheck show no Health', async () => {
  await ok(['run', '-d', '--name', 'plain', IMAGE, 'sleep', '300']);
  await ok(['run', '-d', '--name', 'off', '--no-healthcheck', IMAGE, 'sleep', '300']);
  assert.is(await healthOf('plain'), 'none');
  assert.is(await healthOf('off'), 'none');
  assert.equal(JSON.parse((await ok(['inspect', '-f', '{{json .Config.Healthcheck}}', 'off'])).stdout), { Test: ['NONE'] });
  assert.match((await ok(['ps', '--filter', 'name=plain', '--format', '{{.Status}}'])).stdout, /^Up [^(]*\n$/);
  const none = (await ok(['ps', '--filter', 'health=none', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean).sort();
  assert.equal(none, ['off', 'plain']);
  const conflict = await daemon!.cli(['run', '-d', '--no-healthcheck', '--health-cmd', 'true', IMAGE, 'true']);
  assert.ok(conflict.code !== 0);
  assert.match(conflict.stderr, /--no-healthcheck conflicts with --health-\* options/);
  const tooShort = await daemon!.cli(['create', '--health-cmd', 'true', '--health-interval', '100us', IMAGE]);
  assert.ok(tooShort.code !== 0);
  assert.match(tooShort.stderr, /Interval in Healthcheck cannot be less than 1ms/);
  await ok(['rm', '-f', 'plain', 'off']);
});

t('stop ends the checks; after a daemon restart the status is kept, and checks resume on live restore', async () => {
  // hc is healthy from the first test; a second container stops with its last status.
  await ok(['run', '-d', '--name', 'stopped', '--health-cmd', 'true', '--health-interval', '1s', IMAGE, 'sleep', '300']);
  await until('healthy', async () => (await healthOf('stopped')) === 'healthy');
  await ok(['stop', '-t', '0', 'stopped']);
  const afterStop = JSON.parse((await ok(['inspect', '-f', '{{json .State.Health}}', 'stopped'])).stdout);
  assert.is(afterStop.Status, 'unhealthy', 'Docker reports a stopped check as unhealthy');
  await sleep(1500);
  const later = JSON.parse((await ok(['inspect', '-f', '{{json .State.Health}}', 'stopped'])).stdout);
  assert.is(later.Log.length, afterStop.Log.length, 'no probes once stopped');

  const logBefore = JSON.parse((await ok(['inspect', '-f', '{{json .State.Health.Log}}', 'hc'])).stdout);
  await daemon!.stop();
  daemon = await startDaemon({ dataRoot: join(roots, 'data'), execRoot: join(roots, 'exec') });
  const restored = JSON.parse((await ok(['inspect', '-f', '{{json .State.Health}}', 'stopped'])).stdout);
  assert.is(restored.Status, 'unhealthy');
  assert.ok(restored.Log.length > 0, 'the log survives the restart');
  const adopted = JSON.parse((await ok(['inspect', '-f', '{{json .State.Health}}', 'hc'])).stdout);
  assert.is(adopted.Status, 'starting', 'a live-restored container starts its checks over');
  assert.ok(adopted.Log.length >= logBefore.length, 'with the log kept');
  await until('healthy again', async () => (await healthOf('hc')) === 'healthy');

  await ok(['start', 'stopped']);
  assert.is(await healthOf('stopped'), 'starting');
  await until('healthy after start', async () => (await healthOf('stopped')) === 'healthy');
  await ok(['rm', '-f', 'hc', 'stopped']);
});

test.run();
