// docker cp, export and diff through berth against the real daemon: files and
// directories both ways (running and stopped containers, tar on stdin/stdout), a hostile
// upload that tries to write outside the rootfs, the export of the busybox image, and
// the changes list. Needs root and a prior `npm run build`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import * as tar from 'tar-stream';
import { startDaemon, makeTempDir, run, REPO_ROOT, type TestDaemon, type RunResult } from '../helpers/daemon';
import { luciRequest } from '../helpers/raw-http';

const IMAGE = 'localhost/busybox';
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar'));
let daemon: TestDaemon | undefined;
let work: string;

async function ok(args: string[], input?: string): Promise<RunResult> {
  const r = await daemon!.cli(args, { input, timeoutMs: 60_000 });
  assert.is(r.code, 0, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

async function tarOf(entries: Array<{ header: Partial<tar.Header> & { name: string }; body?: string }>): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry(e.header, e.body ?? '');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function tarNames(file: string): Promise<string[]> {
  return (await run('tar', ['-tf', file])).stdout.split('\n').filter(Boolean);
}

test.before(async () => {
  if (!canRun) return;
  work = makeTempDir('berth-e2e-archive-');
  daemon = await startDaemon();
  await ok(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
});

test.after(async () => {
  await daemon?.stop().catch(() => {});
  if (work) await run('rm', ['-rf', work]);
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('cp copies a file and a directory both ways, running and stopped', async () => {
  await ok(['run', '-d', '--name', 'cp1', IMAGE, 'sleep', '60']);
  const src = join(work, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'a.txt'), 'alpha\n');
  writeFileSync(join(src, 'sub', 'b.txt'), 'beta\n');

  await ok(['cp', join(src, 'a.txt'), 'cp1:/tmp/']);
  await ok(['cp', join(src, 'a.txt'), 'cp1:/tmp/renamed.txt']);
  await ok(['cp', src, 'cp1:/srcdir']);
  assert.is((await ok(['exec', 'cp1', 'cat', '/tmp/a.txt', '/tmp/renamed.txt', '/srcdir/sub/b.txt'])).stdout, 'alpha\nalpha\nbeta\n');
  assert.is((await ok(['exec', 'cp1', 'stat', '-c', '%u:%g', '/srcdir/sub/b.txt'])).stdout, '0:0\n', 'owned by the container root');

  await ok(['exec', 'cp1', 'sh', '-c', 'mkdir -p /out/d && echo gamma > /out/d/g.txt && echo delta > /out/f.txt']);
  await ok(['cp', 'cp1:/out/f.txt', join(work, 'f.txt')]);
  assert.is(readFileSync(join(work, 'f.txt'), 'utf8'), 'delta\n');
  mkdirSync(join(work, 'into'));
  await ok(['cp', 'cp1:/out', join(work, 'into')]);
  assert.is(readFileSync(join(work, 'into', 'out', 'd', 'g.txt'), 'utf8'), 'gamma\n');
  await ok(['cp', 'cp1:/out/.', join(work, 'contents')]);
  assert.equal(readdirSync(join(work, 'contents')).sort(), ['d', 'f.txt']);

  // The same through tar streams on stdin and stdout.
  const streamed = await run('bash', ['-c', `${process.execPath} ${join(REPO_ROOT, 'bin/berth')} -H ${daemon!.host} cp cp1:/out/f.txt - | tar -xOf -`]);
  assert.is(streamed.stdout, 'delta\n');
  const upload = await run('bash', ['-c', `tar -C ${src} -cf - a.txt | ${process.execPath} ${join(REPO_ROOT, 'bin/berth')} -H ${daemon!.host} cp - cp1:/root`]);
  assert.is(upload.code, 0, upload.stderr);
  assert.is((await ok(['exec', 'cp1', 'cat', '/root/a.txt'])).stdout, 'alpha\n');

  // A stopped container's rootfs is mounted for the copy.
  await ok(['stop', '-t', '1', 'cp1']);
  await ok(['cp', join(src, 'sub'), 'cp1:/while-stopped']);
  await ok(['cp', 'cp1:/while-stopped/b.txt', join(work, 'b-stopped.txt')]);
  assert.is(readFileSync(join(work, 'b-stopped.txt'), 'utf8'), 'beta\n');

  const missing = await daemon!.cli(['cp', 'cp1:/no/such/file', join(work, 'x')]);
  assert.is(missing.code, 3);
  assert.match(missing.stderr, 'Could not find the file /no/such/file in container cp1');
  await ok(['rm', '-f', 'cp1']);
});

t('a hostile tar upload cannot write outside the rootfs', async () => {
  const id = (await ok(['create', '--name', 'hostile', IMAGE, 'true'])).stdout.trim();
  const marker = `berth-escape-${process.pid}-${Date.now()}`;
  const put = async (body: Buffer, path = '/') => luciRequest(daemon!.socket, 'PUT', `/containers/hostile/archive?path=${encodeURIComponent(path)}`, body, { 'Content-Type': 'application/x-tar' });

  // A name that climbs out of the destination is refused outright.
  const climb = await put(await tarOf([{ header: { name: `../../../../../../tmp/${marker}` }, body: 'x' }]), '/tmp');
  assert.is(climb.status, 400, climb.body.toString());
  assert.not.ok(existsSync(`/tmp/${marker}`));

  // Symlinks to host paths resolve inside the container instead.
  const links = await put(await tarOf([
    { header: { name: 'etc-link', type: 'symlink', linkname: '/etc' } },
    { header: { name: `etc-link/${marker}` }, body: 'inside' },
    { header: { name: 'up', type: 'symlink', linkname: '../../../../../../..' } },
    { header: { name: `up/tmp/${marker}` }, body: 'inside too' },
    { header: { name: 'hard', type: 'link', linkname: '../../../../etc/passwd' } },
  ]));
  assert.is(links.status, 400, 'the hardlink out of the destination fails the upload');
  assert.not.ok(existsSync(`/etc/${marker}`), 'nothing written to the host /etc');
  assert.not.ok(existsSync(`/tmp/${marker}`), 'nothing written to the host /tmp');

  // Without the bad hardlink the rest lands inside the container.
  const good = await put(await tarOf([
    { header: { name: 'etc-link', type: 'symlink', linkname: '/etc' } },
    { header: { name: `etc-link/${marker}` }, body: 'inside' },
  ]));
  assert.is(good.status, 200, good.body.toString());
  assert.not.ok(existsSync(`/etc/${marker}`));
  await ok(['cp', `hostile:/etc/${marker}`, join(work, marker)]);
  assert.is(readFileSync(join(work, marker), 'utf8'), 'inside');

  // Reading through a symlink to / stays in the container as well.
  await put(await tarOf([{ header: { name: 'rootlink', type: 'symlink', linkname: '/' } }]));
  await ok(['cp', 'hostile:/rootlink/etc/passwd', join(work, 'passwd-through-link')]);
  await ok(['cp', 'hostile:/etc/passwd', join(work, 'passwd-direct')]);
  assert.is(readFileSync(join(work, 'passwd-through-link'), 'utf8'), readFileSync(join(work, 'passwd-direct'), 'utf8'));

  // noOverwriteDirNonDir: a file may not replace a directory.
  const clash = await luciRequest(daemon!.socket, 'PUT', '/containers/hostile/archive?path=/&noOverwriteDirNonDir=true', await tarOf([{ header: { name: 'etc' }, body: 'flat' }]), { 'Content-Type': 'application/x-tar' });
  assert.is(clash.status, 400);
  assert.match(clash.body.toString(), 'cannot overwrite directory');
  assert.ok(lstatSync('/etc').isDirectory());
  await ok(['rm', id]);
});

t('export lists the busybox files; diff and changes report A, C, D', async () => {
  await ok(['run', '--name', 'ex1', IMAGE, 'sh', '-c', 'rm /bin/ls; mkdir /newdir; echo n > /newdir/f; echo m >> /etc/passwd']);
  const file = join(work, 'ex1.tar');
  await ok(['export', '-o', file, 'ex1']);
  const names = await tarNames(file);
  for (const name of ['bin/', 'bin/busybox', 'bin/sh', 'etc/passwd', 'newdir/f']) assert.ok(names.includes(name), `${name} in ${names.slice(0, 20).join(' ')}`);
  assert.not.ok(names.includes('bin/ls'), 'deleted files are not exported');

  const diff = (await ok(['diff', 'ex1'])).stdout.split('\n').filter(Boolean);
  for (const line of ['C /bin', 'D /bin/ls', 'C /etc', 'C /etc/passwd', 'A /newdir', 'A /newdir/f']) assert.ok(diff.includes(line), `${line} in\n${diff.join('\n')}`);
  assert.not.ok(diff.some((l) => /\/etc\/(hosts|hostname|resolv\.conf)$/.test(l)), 'the engine\'s own mount points are not changes');
  await ok(['rm', 'ex1']);
});

test.run();
