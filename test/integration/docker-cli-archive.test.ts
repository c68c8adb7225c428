// The real docker CLI's cp, export and diff against berth: files and directories both
// ways, into existing directories and under new names, and tar streams. Needs root, the
// docker CLI and a build.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, makeTempDir, run, REPO_ROOT, type TestDaemon, type RunResult } from '../helpers/daemon';

const IMAGE = 'localhost/busybox';
let daemon: TestDaemon | undefined;
let work: string;
let canRun = false;

async function ok(args: string[]): Promise<RunResult> {
  const r = await daemon!.docker(args, { timeoutMs: 60_000 });
  assert.is(r.code, 0, `docker ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

test.before(async () => {
  const hasDocker = (await run('docker', ['--version']).catch(() => ({ code: 1 }))).code === 0;
  canRun = hasDocker && process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar'));
  if (!canRun) return;
  work = makeTempDir('berth-docker-archive-');
  daemon = await startDaemon();
  const loaded = await daemon.cli(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
  assert.is(loaded.code, 0, loaded.stderr);
});

test.after(async () => {
  await daemon?.stop().catch(() => {});
  if (work) await run('rm', ['-rf', work]);
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('docker cp: a file and a directory into and out of a container', async () => {
  await ok(['run', '-d', '--name', 'dcp', IMAGE, 'sleep', '60']);
  const src = join(work, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'a.txt'), 'alpha\n');
  writeFileSync(join(src, 'sub', 'b.txt'), 'beta\n');

  await ok(['cp', join(src, 'a.txt'), 'dcp:/tmp/']);
  await ok(['cp', join(src, 'a.txt'), 'dcp:/tmp/renamed.txt']);
  await ok(['cp', src, 'dcp:/copied']);
  await ok(['cp', src, 'dcp:/tmp']);
  const inside = await ok(['exec', 'dcp', 'cat', '/tmp/a.txt', '/tmp/renamed.txt', '/copied/sub/b.txt', '/tmp/src/a.txt']);
  assert.is(inside.stdout, 'alpha\nalpha\nbeta\nalpha\n');

  await ok(['exec', 'dcp', 'sh', '-c', 'mkdir -p /out/d && echo gamma > /out/d/g.txt && echo delta > /out/f.txt']);
  await ok(['cp', 'dcp:/out/f.txt', join(work, 'f.txt')]);
  assert.is(readFileSync(join(work, 'f.txt'), 'utf8'), 'delta\n');
  await ok(['cp', 'dcp:/out', join(work, 'out-new')]);
  assert.is(readFileSync(join(work, 'out-new', 'd', 'g.txt'), 'utf8'), 'gamma\n');
  mkdirSync(join(work, 'into'));
  await ok(['cp', 'dcp:/out', join(work, 'into')]);
  assert.is(readFileSync(join(work, 'into', 'out', 'f.txt'), 'utf8'), 'delta\n');
  await ok(['cp', 'dcp:/out/.', join(work, 'contents')]);
  assert.is(readFileSync(join(work, 'contents', 'd', 'g.txt'), 'utf8'), 'gamma\n');

  const env = { ...process.env, DOCKER_HOST: daemon!.host, DOCKER_CONFIG: join(work, 'docker-config') };
  const streamed = await run('bash', ['-c', 'docker cp dcp:/out/f.txt - | tar -xOf -'], { env });
  assert.is(streamed.stdout, 'delta\n', streamed.stderr);

  const missing = await daemon!.docker(['cp', 'dcp:/nope', join(work, 'nope')]);
  assert.ok(missing.code !== 0);
  assert.match(missing.stderr, 'Could not find the file /nope in container dcp');
  await ok(['rm', '-f', 'dcp']);
});

t('docker export and docker diff', async () => {
  await ok(['run', '--name', 'dex', IMAGE, 'sh', '-c', 'rm /bin/ls; echo n > /newfile']);
  const diff = (await ok(['diff', 'dex'])).stdout.split('\n');
  for (const line of ['C /bin', 'D /bin/ls', 'A /newfile']) assert.ok(diff.includes(line), diff.join('\n'));
  const file = join(work, 'dex.tar');
  await ok(['export', '-o', file, 'dex']);
  const names = (await run('tar', ['-tf', file])).stdout.split('\n');
  for (const name of ['bin/busybox', 'etc/passwd', 'newfile']) assert.ok(names.includes(name), name);
  await ok(['rm', 'dex']);
});

test.run();
