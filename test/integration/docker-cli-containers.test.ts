// The real docker CLI against berth for containers: run (attach and wait before start,
// exit status), detached runs, ps, logs, exec, stop, rm, inspect, binds, stats, events,
// top and `run -it` under a pseudo-terminal. Needs root, the docker CLI and a build.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, makeTempDir, run, REPO_ROOT, type TestDaemon, type RunResult } from '../helpers/daemon';

const IMAGE = 'localhost/busybox';
let daemon: TestDaemon | undefined;
let work: string;
let canRun = false;

async function docker(args: string[], input?: string): Promise<RunResult> {
  return daemon!.docker(args, { input, timeoutMs: 60_000 });
}

async function ok(args: string[], code = 0): Promise<RunResult> {
  const r = await docker(args);
  assert.is(r.code, code, `docker ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

test.before(async () => {
  const hasDocker = (await run('docker', ['--version']).catch(() => ({ code: 1 }))).code === 0;
  canRun = hasDocker && process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar'));
  if (!canRun) return;
  work = makeTempDir('berth-docker-containers-');
  daemon = await startDaemon();
  const loaded = await daemon.cli(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
  assert.is(loaded.code, 0, loaded.stderr);
});

test.after(async () => {
  await daemon?.stop().catch(() => {});
  if (work) await run('rm', ['-rf', work]);
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('docker run --rm: output and exit status', async () => {
  assert.is((await ok(['run', '--rm', IMAGE, 'echo', 'hi'])).stdout, 'hi\n');
  const three = await ok(['run', '--rm', IMAGE, 'sh', '-c', 'echo err >&2; exit 3'], 3);
  assert.is(three.stderr, 'err\n');
  assert.is((await docker(['run', '--rm', '-i', IMAGE, 'cat'], 'piped\n')).stdout, 'piped\n');
});

t('docker run -d, ps, logs, exec, inspect, top, stats, stop, rm', async () => {
  const id = (await ok(['run', '-d', '--name', 'web1', IMAGE, 'sh', '-c', 'echo started; sleep 60'])).stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const ps = await ok(['ps']);
  assert.match(ps.stdout, new RegExp(`^${id.slice(0, 12)} +${IMAGE} .* Up .* web1$`, 'm'));
  assert.is((await ok(['ps', '-a', '-q'])).stdout, `${id.slice(0, 12)}\n`);
  await new Promise((r) => setTimeout(r, 300));
  assert.is((await ok(['logs', 'web1'])).stdout, 'started\n');
  assert.is((await ok(['exec', 'web1', 'echo', 'in'])).stdout, 'in\n');
  await ok(['exec', 'web1', 'sh', '-c', 'exit 4'], 4);
  assert.is((await ok(['inspect', '-f', '{{.State.Status}}', 'web1'])).stdout, 'running\n');
  assert.match((await ok(['top', 'web1'])).stdout, /sleep 60/);
  assert.match((await ok(['stats', '--no-stream', 'web1'])).stdout, /web1 +\d+\.\d\d%/);
  const follow = docker(['logs', '-f', 'web1']);
  await new Promise((r) => setTimeout(r, 500));
  await ok(['stop', '-t', '1', 'web1']);
  assert.is((await follow).stdout, 'started\n');
  await ok(['rm', 'web1']);
  const gone = await docker(['inspect', 'web1']);
  assert.ok(gone.code !== 0);
  assert.match(gone.stderr, 'No such object: web1');
});

t('docker run -e -v -w writes a file on the host', async () => {
  const dir = join(work, 'd');
  mkdirSync(dir);
  await ok(['run', '--rm', '-e', 'A=1', '-v', `${dir}:/d`, '-w', '/d', IMAGE, 'sh', '-c', 'echo $A > f']);
  assert.is(readFileSync(join(dir, 'f'), 'utf8'), '1\n');
});

t('docker events shows create, start and die', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  await ok(['run', '--rm', '--name', 'evt1', IMAGE, 'true']);
  const r = await ok(['events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'container=evt1', '--format', '{{.Action}}']);
  for (const action of ['create', 'start', 'die']) assert.ok(r.stdout.split('\n').includes(action), r.stdout);
});

t('docker run -it under a pseudo-terminal relays typed input', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: daemon!.host, DOCKER_CONFIG: join(work, 'docker-config') };
  delete env.DOCKER_CONTEXT;
  const r = await run('bash', ['-c', `(sleep 1.5; printf 'typed\\r'; sleep 1.5) | script -qec "docker run -it --rm ${IMAGE} sh -c 'read x; echo got:\\$x; exit 6'" /dev/null`], { env, timeoutMs: 30_000 });
  assert.match(r.stdout.replace(/\r/g, ''), 'got:typed\n');
  assert.is(r.code, 6);
});

t('docker exec -it under a pseudo-terminal relays typed input', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: daemon!.host, DOCKER_CONFIG: join(work, 'docker-config') };
  delete env.DOCKER_CONTEXT;
  await ok(['run', '-d', '--name', 'tty1', IMAGE, 'sleep', '60']);
  try {
    const r = await run('bash', ['-c', `(sleep 1.5; printf 'typed\\r'; sleep 1.5) | script -qec "docker exec -it tty1 sh -c 'read x; echo got:\\$x; exit 5'" /dev/null`], { env, timeoutMs: 30_000 });
    assert.match(r.stdout.replace(/\r/g, ''), 'got:typed\n');
    assert.is(r.code, 5);
  } finally {
    await docker(['rm', '-f', 'tty1']);
  }
});

t('docker run --health-cmd: ps shows (healthy), inspect formats State.Health', async () => {
  await ok(['run', '-d', '--name', 'checked', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '1s', '--health-retries', '2', IMAGE, 'sleep', '60']);
  const status = async () => (await ok(['inspect', '--format', '{{.State.Health.Status}}', 'checked'])).stdout.trim();
  const until = async (want: string) => {
    const deadline = Date.now() + 15_000;
    while ((await status()) !== want) {
      assert.ok(Date.now() < deadline, `never became ${want}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  await until('unhealthy');
  assert.match((await ok(['ps', '--filter', 'health=unhealthy'])).stdout, /Up .* \(unhealthy\) +checked\n/);
  await ok(['exec', 'checked', 'touch', '/tmp/ok']);
  await until('healthy');
  assert.match((await ok(['ps'])).stdout, /Up .* \(healthy\) +checked\n/);
  assert.is((await ok(['inspect', '--format', '{{(index .State.Health.Log 0).ExitCode}} {{json .Config.Healthcheck.Test}}', 'checked'])).stdout, '1 ["CMD-SHELL","test -f /tmp/ok"]\n');
  await ok(['rm', '-f', 'checked']);
});

test.run();
