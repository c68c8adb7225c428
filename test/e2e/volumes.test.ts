// Volumes through the real daemon: the API's shapes, the berth CLI (`volume ls/create/
// inspect/rm/prune`) and the real docker CLI (`docker volume ...`) against berth's socket.
// A volume made with `volume create` is the one `run -v name:/data` mounts, keeps its
// files after the container is gone, and cannot be removed while a container uses it.
// Needs root and a prior `npm run build`; the docker CLI test skips without `docker`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, REPO_ROOT, type TestDaemon, type RunResult } from '../helpers/daemon';

const IMAGE = 'localhost/busybox';
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar'));
const hasDocker = spawnSync('docker', ['--version'], { stdio: 'ignore' }).status === 0;
let daemon: TestDaemon | undefined;

async function ok(args: string[], code = 0, input?: string): Promise<RunResult> {
  const r = await daemon!.cli(args, { input, timeoutMs: 60_000 });
  assert.is(r.code, code, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

async function docker(args: string[], code = 0): Promise<RunResult> {
  const r = await daemon!.docker(args, { timeoutMs: 60_000 });
  assert.is(r.code, code, `docker ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** One API call on the daemon's socket: status and parsed JSON body (undefined when empty). */
function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request({ socketPath: daemon!.socket, method, path, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try { resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : undefined }); } catch (err) { reject(new Error(`${method} ${path}: not JSON: ${text}`, { cause: err })); }
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

const names = async (): Promise<string[]> => (await ok(['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean);

test.before(async () => {
  if (!canRun) return;
  daemon = await startDaemon();
  await ok(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
});

test.after(async () => {
  await daemon?.stop().catch(() => {});
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('the API answers Docker shapes: list, create (idempotent), inspect, delete, 404s and 400s', async () => {
  const empty = await api('GET', '/volumes');
  assert.is(empty.status, 200);
  assert.equal(empty.json, { Volumes: [], Warnings: [] });

  const created = await api('POST', '/volumes/create', { Name: 'apivol', Labels: { team: 'net' } });
  assert.is(created.status, 201);
  assert.equal(Object.keys(created.json).sort(), ['CreatedAt', 'Driver', 'Labels', 'Mountpoint', 'Name', 'Options', 'Scope']);
  assert.is(created.json.Name, 'apivol');
  assert.is(created.json.Driver, 'local');
  assert.is(created.json.Scope, 'local');
  assert.equal(created.json.Labels, { team: 'net' });
  assert.equal(created.json.Options, {});
  assert.is(created.json.Mountpoint, join(daemon!.dataRoot, 'volumes', 'apivol', '_data'));
  assert.match(created.json.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.ok(existsSync(created.json.Mountpoint));

  // An existing name answers the existing volume, labels as they were.
  const again = await api('POST', '/volumes/create', { Name: 'apivol', Labels: { other: '1' } });
  assert.is(again.status, 201);
  assert.equal(again.json, created.json);

  const unnamed = await api('POST', '/volumes/create', {});
  assert.is(unnamed.status, 201);
  assert.match(unnamed.json.Name, /^[0-9a-f]{64}$/);

  const listed = await api('GET', '/volumes');
  assert.equal(listed.json.Volumes.map((v: { Name: string }) => v.Name).sort(), ['apivol', unnamed.json.Name].sort());
  assert.equal(listed.json.Warnings, []);
  const byLabel = await api('GET', `/volumes?filters=${encodeURIComponent(JSON.stringify({ label: ['team=net'] }))}`);
  assert.equal(byLabel.json.Volumes.map((v: { Name: string }) => v.Name), ['apivol']);
  const byName = await api('GET', `/volumes?filters=${encodeURIComponent(JSON.stringify({ name: { api: true } }))}`);
  assert.equal(byName.json.Volumes.map((v: { Name: string }) => v.Name), ['apivol']);
  assert.is((await api('GET', `/volumes?filters=${encodeURIComponent(JSON.stringify({ bogus: ['x'] }))}`)).status, 400);

  assert.equal((await api('GET', '/volumes/apivol')).json, created.json);
  const missing = await api('GET', '/volumes/nosuch');
  assert.is(missing.status, 404);
  assert.match(missing.json.message, /no such volume/);
  assert.is((await api('GET', '/volumes/..')).status, 404, 'names never reach outside the volumes directory');
  assert.is((await api('POST', '/volumes/create', { Name: 'bad/name' })).status, 400);
  assert.is((await api('POST', '/volumes/create', { Name: 'x', Driver: 'nfs' })).status, 400);
  assert.is((await api('POST', '/volumes/create', { Name: 5 })).status, 400);
  assert.is((await api('POST', '/volumes/create', { Name: 'lbl', Labels: { a: 1 } })).status, 400);

  assert.is((await api('DELETE', '/volumes/nosuch')).status, 404);
  assert.is((await api('DELETE', '/volumes/nosuch?force=1')).status, 204);
  assert.is((await api('DELETE', '/volumes/apivol')).status, 204);
  assert.is((await api('DELETE', `/volumes/${unnamed.json.Name}`)).status, 204);
  assert.ok(!existsSync(join(daemon!.dataRoot, 'volumes', 'apivol')));
  assert.equal((await api('GET', '/volumes')).json.Volumes, []);
});

t('berth volume create/ls/inspect; run -v uses the volume, which outlives the container and is kept while in use', async () => {
  assert.is((await ok(['volume', 'create', '--label', 'app=web', 'data1'])).stdout, 'data1\n');
  const ls = await ok(['volume', 'ls']);
  assert.match(ls.stdout, /^DRIVER {4}VOLUME NAME\nlocal {5}data1\n$/);
  const [doc] = JSON.parse((await ok(['volume', 'inspect', 'data1'])).stdout);
  assert.is(doc.Name, 'data1');
  assert.equal(doc.Labels, { app: 'web' });
  const mountpoint = (await ok(['volume', 'inspect', '-f', '{{.Mountpoint}}', 'data1'])).stdout.trim();
  assert.is(mountpoint, doc.Mountpoint);
  await ok(['volume', 'inspect', 'data1', 'nosuch'], 3);

  // The container writes into the volume created above, and the host sees it there.
  await ok(['run', '--rm', '-v', 'data1:/data', IMAGE, 'sh', '-c', 'echo from-container > /data/f']);
  assert.is(readFileSync(join(mountpoint, 'f'), 'utf8'), 'from-container\n');
  assert.equal(await names(), ['data1'], 'run -v data1 made no second volume');
  // It survives the container (--rm removes anonymous volumes only) and a new container sees it.
  writeFileSync(join(mountpoint, 'g'), 'from-host\n');
  assert.is((await ok(['run', '--rm', '-v', 'data1:/data', IMAGE, 'cat', '/data/f', '/data/g'])).stdout, 'from-container\nfrom-host\n');

  // In use (a running container, then a stopped one): rm and rm -f are refused with 409.
  const id = (await ok(['run', '-d', '--name', 'user1', '-v', 'data1:/data', IMAGE, 'sleep', '60'])).stdout.trim();
  const refused = await ok(['volume', 'rm', 'data1'], 1);
  assert.match(refused.stderr, new RegExp(`remove data1: volume is in use - \\[${id}\\]`));
  await ok(['volume', 'rm', '-f', 'data1'], 1);
  assert.equal(await names(), ['data1']);
  assert.is((await ok(['volume', 'ls', '--filter', 'dangling=true', '-q'])).stdout, '');
  assert.is((await ok(['volume', 'ls', '--filter', 'dangling=false', '-q'])).stdout, 'data1\n');
  await ok(['stop', '-t', '0', 'user1']);
  await ok(['volume', 'rm', 'data1'], 1);
  const deleted = await api('DELETE', '/volumes/data1');
  assert.is(deleted.status, 409);
  await ok(['rm', 'user1']);
  assert.ok(existsSync(join(mountpoint, 'f')), 'removing the container kept the named volume');

  assert.is((await ok(['volume', 'rm', 'data1'])).stdout, 'data1\n');
  assert.ok(!existsSync(mountpoint));
  const gone = await ok(['volume', 'rm', 'data1'], 1);
  assert.match(gone.stderr, /no such volume/);
  await ok(['volume', 'rm', '-f', 'data1']);
  await ok(['volume', 'create', 'bad/name'], 2);
});

t('volumes made by run -v show up; prune takes unused anonymous volumes, -a every unused one', async () => {
  await ok(['run', '--rm', '-v', 'implicit:/x', IMAGE, 'true']);
  await ok(['run', '--name', 'anon', '-v', '/anon', IMAGE, 'true']);
  await ok(['volume', 'create', 'kept']);
  await ok(['run', '-d', '--name', 'holder', '-v', 'kept:/k', IMAGE, 'sleep', '60']);
  const all = await names();
  assert.is(all.length, 3);
  assert.ok(all.includes('implicit') && all.includes('kept'));
  const anon = all.find((n) => /^[0-9a-f]{64}$/.test(n))!;
  const [anonDoc] = JSON.parse((await ok(['volume', 'inspect', anon])).stdout);
  assert.equal(anonDoc.Labels, { 'com.docker.volume.anonymous': '' });

  // Still used by the stopped container "anon": nothing goes.
  assert.is((await ok(['volume', 'prune', '-f'])).stdout, 'Total reclaimed space: 0B\n');
  await ok(['rm', 'anon']);
  writeFileSync(join(daemon!.dataRoot, 'volumes', anon, '_data', 'blob'), Buffer.alloc(2000));
  const pruned = await ok(['volume', 'prune', '-f']);
  assert.is(pruned.stdout, `Deleted Volumes:\n${anon}\n\nTotal reclaimed space: 2kB\n`);
  assert.equal((await names()).sort(), ['implicit', 'kept']);
  // -a: named ones too, but not "kept", which a container uses.
  assert.match((await ok(['volume', 'prune', '-a', '-f'])).stdout, /^Deleted Volumes:\nimplicit\n\n/);
  assert.equal(await names(), ['kept']);
  // The prompt: anything but y keeps everything.
  await ok(['rm', '-f', 'holder']);
  assert.not.match((await ok(['volume', 'prune', '-a'], 0, 'n\n')).stdout, /Deleted/);
  assert.equal(await names(), ['kept']);
  const report = await api('POST', `/volumes/prune?filters=${encodeURIComponent(JSON.stringify({ all: ['true'] }))}`);
  assert.equal(report.json, { VolumesDeleted: ['kept'], SpaceReclaimed: 0 });
  assert.equal((await api('POST', '/volumes/prune')).json, { VolumesDeleted: null, SpaceReclaimed: 0 });
});

t('the real docker CLI: volume create/ls/inspect/rm/prune, and run -v with the created volume', async () => {
  if (!hasDocker) return;
  assert.is((await docker(['volume', 'create', '--label', 'k=v', 'dv'])).stdout, 'dv\n');
  assert.match((await docker(['volume', 'ls'])).stdout, /^DRIVER {4}VOLUME NAME\nlocal {5}dv\n$/);
  assert.is((await docker(['volume', 'ls', '-q', '--filter', 'label=k=v'])).stdout, 'dv\n');
  assert.is((await docker(['volume', 'ls', '-q', '--filter', 'label=k=other'])).stdout, '');
  const [doc] = JSON.parse((await docker(['volume', 'inspect', 'dv'])).stdout);
  assert.is(doc.Name, 'dv');
  assert.is(doc.Driver, 'local');
  assert.is(doc.Scope, 'local');
  assert.equal(doc.Labels, { k: 'v' });
  assert.is((await docker(['volume', 'inspect', '-f', '{{.Mountpoint}}', 'dv'])).stdout, `${doc.Mountpoint}\n`);
  const missing = await docker(['volume', 'inspect', 'nosuch'], 1);
  assert.match(missing.stderr, /no such volume/);

  await docker(['run', '--rm', '-v', 'dv:/data', IMAGE, 'sh', '-c', 'echo via-docker > /data/f']);
  assert.is(readFileSync(join(doc.Mountpoint, 'f'), 'utf8'), 'via-docker\n');
  assert.is((await docker(['run', '--rm', '-v', 'dv:/data', IMAGE, 'cat', '/data/f'])).stdout, 'via-docker\n');

  await docker(['run', '-d', '--name', 'dholder', '-v', 'dv:/data', IMAGE, 'sleep', '60']);
  const refused = await docker(['volume', 'rm', 'dv'], 1);
  assert.match(refused.stderr, /volume is in use/);
  await docker(['rm', '-f', 'dholder']);
  assert.is((await docker(['volume', 'rm', 'dv'])).stdout, 'dv\n');
  assert.is((await docker(['volume', 'ls', '-q'])).stdout, '');

  await docker(['volume', 'create', 'dp']);
  assert.not.match((await docker(['volume', 'prune', '-f'])).stdout, /dp/, 'a named volume is not pruned without -a');
  assert.match((await docker(['volume', 'prune', '-a', '-f'])).stdout, /Deleted Volumes:\ndp\n/);
  assert.is((await docker(['volume', 'ls', '-q'])).stdout, '');
});

test.run();
