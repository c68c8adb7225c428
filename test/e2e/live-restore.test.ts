// kill -9 of the daemon with detached containers running, then a restart on the same
// data and exec roots: the containers still run and are listed, their logs go on, stop
// works and collects the exit code, a container that exited while the daemon was down
// has its exit recorded, and restart policy `always` brings back a container that dies.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, REPO_ROOT, startDaemon, type TestDaemon, until } from '../helpers/daemon';

const IMAGE = 'localhost/busybox:latest';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let roots: string;
let daemon: TestDaemon | undefined;

async function start(): Promise<TestDaemon> {
  daemon = await startDaemon({ dataRoot: join(roots, 'data'), execRoot: join(roots, 'exec') });
  return daemon;
}

async function inspect(d: TestDaemon, name: string, format: string): Promise<string> {
  const r = await d.cli(['inspect', '-f', format, name]);
  assert.is(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test.before(async () => {
  roots = makeTempDir('berth-restore-');
});

test.after(async () => {
  if (daemon) {
    await daemon.cli(['rm', '-f', 'ticker', 'quitter', 'phoenix']).catch(() => {});
    await daemon.stop();
  }
  rmSync(roots, { recursive: true, force: true });
});

test('containers outlive a SIGKILLed daemon and are adopted by the next one', async () => {
  let d = await start();
  assert.is((await d.cli(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')])).code, 0);
  assert.is((await d.cli(['run', '-d', '--name', 'ticker', IMAGE, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done'])).code, 0);
  assert.is((await d.cli(['run', '-d', '--name', 'quitter', IMAGE, 'sh', '-c', 'sleep 2; exit 7'])).code, 0);
  assert.is((await d.cli(['run', '-d', '--name', 'phoenix', '--restart', 'always', IMAGE, 'sh', '-c', 'sleep 1; exit 1'])).code, 0);
  const pid = await inspect(d, 'ticker', '{{.State.Pid}}');
  await sleep(500);

  await d.kill();
  daemon = undefined;
  // The daemon is gone; the container goes on (its helper is its parent, not the daemon).
  assert.ok(process.kill(Number(pid), 0));
  await sleep(2500); // quitter exits while no daemon runs

  d = await start();
  const ps = await d.cli(['ps', '--format', '{{.Names}} {{.Status}}']);
  assert.match(ps.stdout, /^ticker Up /m, ps.stdout);
  assert.is(await inspect(d, 'ticker', '{{.State.Pid}}'), pid);
  assert.is(await inspect(d, 'quitter', '{{.State.Status}} {{.State.ExitCode}}'), 'exited 7');

  // Logs written across the restart keep coming.
  const before = Number((await d.cli(['logs', '--tail', '1', 'ticker'])).stdout.match(/tick (\d+)/)![1]);
  await sleep(1000);
  const after = Number((await d.cli(['logs', '--tail', '1', 'ticker'])).stdout.match(/tick (\d+)/)![1]);
  assert.ok(after > before, `log went from ${before} to ${after}`);

  // The restart policy works for a container adopted from the previous daemon.
  await until('phoenix to restart', async () => Number(await inspect(d, 'phoenix', '{{.RestartCount}}')) >= 2);

  // Stop works and collects the exit code of a container started by the dead daemon.
  const stop = await d.cli(['stop', '-t', '1', 'ticker']);
  assert.is(stop.code, 0, stop.stderr);
  assert.match(await inspect(d, 'ticker', '{{.State.Status}} {{.State.ExitCode}}'), /^exited (137|143)$/);
});

test.run();
