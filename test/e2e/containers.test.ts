// The container verbs of the berth CLI against the real daemon and helper: the built
// binary, the bundled busybox image, containers with real namespaces. Needs root and a
// prior `npm run build`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, makeTempDir, run, REPO_ROOT, BERTH_BIN, type TestDaemon, type RunResult } from '../helpers/daemon';

const IMAGE = 'localhost/busybox';
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar'));
let daemon: TestDaemon | undefined;
let work: string;

async function berth(args: string[], input?: string): Promise<RunResult> {
  return daemon!.cli(args, { input, timeoutMs: 60_000 });
}

async function ok(args: string[], code = 0): Promise<RunResult> {
  const r = await berth(args);
  assert.is(r.code, code, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

test.before(async () => {
  if (!canRun) return;
  work = makeTempDir('berth-e2e-containers-');
  daemon = await startDaemon();
  await ok(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
});

test.after(async () => {
  await daemon?.stop().catch(() => {});
  if (work) await run('rm', ['-rf', work]);
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('run --rm prints the output and exits with the container status', async () => {
  const hi = await ok(['run', '--rm', IMAGE, 'echo', 'hi']);
  assert.is(hi.stdout, 'hi\n');
  const three = await ok(['run', '--rm', IMAGE, 'sh', '-c', 'echo out; echo err >&2; exit 3'], 3);
  assert.is(three.stdout, 'out\n');
  assert.is(three.stderr, 'err\n');
  assert.is((await ok(['ps', '-a', '-q'])).stdout, '', '--rm removed them');
});

t('run -d, ps, logs, logs -f, exec, inspect, top, stats, stop, rm', async () => {
  const id = (await ok(['run', '-d', '--name', 'web1', IMAGE, 'sh', '-c', 'echo started; sleep 60'])).stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const ps = await ok(['ps']);
  assert.match(ps.stdout, /^CONTAINER ID {3}IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES\n/);
  assert.match(ps.stdout, new RegExp(`^${id.slice(0, 12)} +${IMAGE} +"sh -c echo started;…" .* Up .* web1$`, 'm'));
  assert.is((await ok(['ps', '-a', '-q'])).stdout, `${id.slice(0, 12)}\n`);
  await new Promise((r) => setTimeout(r, 300));
  assert.is((await ok(['logs', 'web1'])).stdout, 'started\n');
  assert.is((await ok(['exec', 'web1', 'echo', 'in'])).stdout, 'in\n');
  await ok(['exec', 'web1', 'sh', '-c', 'exit 4'], 4);
  assert.is((await berth(['exec', '-i', 'web1', 'cat'], 'piped in\n')).stdout, 'piped in\n');
  assert.is((await ok(['inspect', '-f', '{{.State.Status}} {{.Name}}', 'web1'])).stdout, 'running /web1\n');
  assert.match((await ok(['top', 'web1'])).stdout, /sleep 60/);
  const stats = await ok(['stats', '--no-stream', 'web1']);
  assert.match(stats.stdout, /^CONTAINER ID +NAME +CPU % +MEM USAGE \/ LIMIT +MEM % +NET I\/O +BLOCK I\/O +PIDS\n/);
  assert.match(stats.stdout, /web1 +\d+\.\d\d%/);

  const follow = berth(['logs', '-f', 'web1']);
  await new Promise((r) => setTimeout(r, 500));
  assert.is((await ok(['stop', '-t', '1', 'web1'])).stdout, 'web1\n');
  const followed = await follow;
  assert.is(followed.code, 0);
  assert.is(followed.stdout, 'started\n', 'logs -f ends when the container stops');
  assert.is((await ok(['rm', 'web1'])).stdout, 'web1\n');
  const gone = await berth(['inspect', 'web1']);
  assert.ok(gone.code !== 0);
  assert.is(gone.stderr, 'Error: No such object: web1\n');
});

t('run -e -v -w writes a file on the host', async () => {
  const dir = join(work, 'd');
  mkdirSync(dir);
  await ok(['run', '--rm', '-e', 'A=1', '-v', `${dir}:/d`, '-w', '/d', IMAGE, 'sh', '-c', 'echo $A > f']);
  assert.is(readFileSync(join(dir, 'f'), 'utf8'), '1\n');
});

t('events shows create, start and die', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  await ok(['run', '--rm', '--name', 'evt1', IMAGE, 'true']);
  const events = await ok(['events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'container=evt1', '--format', '{{.Action}}']);
  const actions = events.stdout.trim().split('\n');
  for (const action of ['create', 'start', 'die']) assert.ok(actions.includes(action), events.stdout);
});

t('run -it under a pseudo-terminal relays typed input', async () => {
  const cli = `${process.execPath} ${BERTH_BIN} -H ${daemon!.host}`;
  const r = await run('bash', ['-c', `(sleep 1.5; printf 'typed\\r'; sleep 1.5) | script -qec "${cli} run -it --rm ${IMAGE} sh -c 'read x; echo got:\\$x; exit 6'" /dev/null`], { timeoutMs: 30_000 });
  assert.match(r.stdout.replace(/\r/g, ''), 'got:typed\n');
  assert.is(r.code, 6);
});

t('exec -it under a pseudo-terminal relays typed input', async () => {
  const cli = `${process.execPath} ${BERTH_BIN} -H ${daemon!.host}`;
  await ok(['run', '-d', '--name', 'tty1', IMAGE, 'sleep', '60']);
  try {
    const r = await run('bash', ['-c', `(sleep 1.5; printf 'typed\\r'; sleep 1.5) | script -qec "${cli} exec -it tty1 sh -c 'read x; echo got:\\$x; exit 5'" /dev/null`], { timeoutMs: 30_000 });
    assert.match(r.stdout.replace(/\r/g, ''), 'got:typed\n');
    assert.is(r.code, 5);
  } finally {
    await berth(['rm', '-f', 'tty1']);
  }
});

test.run();
