// The daemon end to end: the built binary, its socket, the real docker CLI (v28) and
// berth's own CLI. Needs root (socket chown) and a prior `npm run build`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request, type IncomingHttpHeaders } from 'node:http';
import { statSync, writeFileSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runBerth, makeTempDir, type TestDaemon } from '../helpers/daemon';

interface RawResponse { status: number; headers: IncomingHttpHeaders; body: string }

function raw(socket: string, method: string, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

let d: TestDaemon;

test.before(async () => { d = await startDaemon(); });
test.after(async () => { await d?.stop(); });

test('docker version talks to berth and shows its version and API 1.47', async () => {
  const r = await d.docker(['version']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stderr, '');
  assert.match(r.stdout, /Server: berth/);
  assert.match(r.stdout, /API version:\s+1\.47 \(minimum version 1\.24\)/);
  assert.match(r.stdout, /Version:\s+\d+\.\d+\.\d+/);
  const f = await d.docker(['version', '--format', '{{.Server.APIVersion}}']);
  assert.is(f.code, 0, f.stderr);
  assert.is(f.stdout.trim(), '1.47');
});

test('docker info prints the server section without errors', async () => {
  const r = await d.docker(['info']);
  assert.is(r.code, 0, r.stderr);
  assert.not.match(r.stdout + r.stderr, /ERROR|error/);
  assert.match(r.stdout, /Server Version: \d+\.\d+\.\d+/);
  assert.match(r.stdout, /Images: 0/);
  assert.match(r.stdout, /Default Runtime: berth/);
  assert.match(r.stdout, /Live Restore Enabled: true/);
  assert.match(r.stdout, new RegExp(`Docker Root Dir: ${d.dataRoot}`));
  const f = await d.docker(['info', '--format', '{{json .}}']);
  assert.is(f.code, 0, f.stderr);
  const info = JSON.parse(f.stdout);
  assert.is(info.OSType, 'linux');
  assert.is(info.Swarm.LocalNodeState, 'inactive');
  assert.ok(info.NCPU > 0);
  assert.ok(info.MemTotal > 0);
  assert.ok(['1', '2', ''].includes(info.CgroupVersion));
});

test('the engine ID is persisted and stable', async () => {
  const first = JSON.parse((await raw(d.socket, 'GET', '/info')).body).ID;
  assert.match(first, /^[0-9a-f-]{36}$/);
  assert.is(readFileSync(join(d.dataRoot, 'engine-id'), 'utf8').trim(), first);
  assert.is(JSON.parse((await raw(d.socket, 'GET', '/v1.41/info')).body).ID, first);
});

test('socket is mode 0660 owned by root', () => {
  const st = statSync(d.socket);
  assert.ok(st.isSocket());
  assert.is(st.mode & 0o777, 0o660);
  assert.is(st.uid, 0);
  assert.is(st.gid, 0);
});

test('versioned and unversioned ping; HEAD carries the ping headers', async () => {
  for (const path of ['/_ping', '/v1.24/_ping', '/v1.47/_ping']) {
    const r = await raw(d.socket, 'GET', path);
    assert.is(r.status, 200, path);
    assert.is(r.body, 'OK');
  }
  const h = await raw(d.socket, 'HEAD', '/_ping');
  assert.is(h.status, 200);
  assert.is(h.body, '');
  assert.is(h.headers['api-version'], '1.47');
  assert.is(h.headers['ostype'], 'linux');
  assert.match(String(h.headers['server']), /^berth\/\S+ \(linux\)$/);
  assert.is(h.headers['docker-experimental'], 'false');
  assert.is(h.headers['swarm'], 'inactive');
  assert.is(h.headers['cache-control'], 'no-cache, no-store, must-revalidate');
  assert.is(h.headers['pragma'], 'no-cache');
  assert.ok('builder-version' in h.headers);
});

test('version out of range -> 400 with exact message and content type', async () => {
  const tooNew = await raw(d.socket, 'GET', '/v9.99/version');
  assert.is(tooNew.status, 400);
  assert.is(tooNew.headers['content-type'], 'application/json');
  assert.is(JSON.parse(tooNew.body).message, 'client version 9.99 is too new. Maximum supported API version is 1.47');
  const tooOld = await raw(d.socket, 'GET', '/v1.12/version');
  assert.is(tooOld.status, 400);
  assert.is(JSON.parse(tooOld.body).message, 'client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version');
});

test('unknown route -> 404 page not found', async () => {
  const r = await raw(d.socket, 'GET', '/v1.47/nothing/here');
  assert.is(r.status, 404);
  assert.is(r.headers['content-type'], 'application/json');
  assert.equal(JSON.parse(r.body), { message: 'page not found' });
  assert.is(r.headers['api-version'], '1.47');
});

test('Connection: close clients get a complete body and a closed connection', async () => {
  const r = await raw(d.socket, 'GET', '/version', { Connection: 'close' });
  assert.is(r.status, 200);
  assert.is(r.headers['connection'], 'close');
  assert.is(Number(r.headers['content-length']), Buffer.byteLength(r.body));
  assert.is(JSON.parse(r.body).ApiVersion, '1.47');
});

test('berth version and berth info', async () => {
  const v = await d.cli(['version']);
  assert.is(v.code, 0, v.stderr);
  assert.match(v.stdout, /^Client:\n Version:/);
  assert.match(v.stdout, /Server: berth\n Engine:\n  Version:/);
  assert.match(v.stdout, /API version:\s+1\.47 \(minimum version 1\.24\)/);
  const i = await d.cli(['info']);
  assert.is(i.code, 0, i.stderr);
  for (const label of ['Server Version', 'Storage Driver', 'Images', 'Containers', 'Cgroup Driver', 'Kernel Version', 'Operating System', 'Architecture', 'CPUs', 'Total Memory', 'Docker Root Dir', 'Live Restore Enabled']) {
    assert.match(i.stdout, new RegExp(`^ ${label}: `, 'm'), label);
  }
  const alias = await d.cli(['system', 'info', '--format', '{{.ServerVersion}}']);
  assert.is(alias.code, 0, alias.stderr);
  assert.match(alias.stdout.trim(), /^\d+\.\d+\.\d+/);
  const json = await d.cli(['version', '--format', '{{json .}}']);
  assert.is(JSON.parse(json.stdout).Server.ApiVersion, '1.47');
});

test('a second daemon on the same data root refuses', async () => {
  const tmp = makeTempDir();
  try {
    const r = await runBerth(['daemon', '--data-root', d.dataRoot, '--exec-root', join(tmp, 'exec'), '--host', `unix://${join(tmp, 'other.sock')}`]);
    assert.ok(r.code !== 0 && r.code !== null);
    assert.is(r.stderr.trim(), `berth daemon: data root ${d.dataRoot} is in use by another daemon (pid ${d.pid})`);
    assert.not.ok(existsSync(join(tmp, 'other.sock')));
    // The first daemon still answers.
    assert.is((await raw(d.socket, 'GET', '/_ping')).status, 200);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('a SIGKILLed daemon does not block the next one; SIGTERM exits 0', async () => {
  const dataRoot = join(makeTempDir(), 'data');
  try {
    const first = await startDaemon({ dataRoot });
    await first.kill();
    const second = await startDaemon({ dataRoot });
    assert.is(readFileSync(join(dataRoot, 'berth.lock'), 'utf8').trim(), String(second.pid));
    const socket = second.socket;
    assert.is(await second.stop('SIGTERM'), 0);
    assert.not.ok(existsSync(socket));
  } finally {
    rmSync(join(dataRoot, '..'), { recursive: true, force: true });
  }
});

test('the CLI against a missing socket prints the cannot-connect message', async () => {
  const r = await runBerth(['-H', 'unix:///nonexistent/berth.sock', 'info']);
  assert.is(r.stderr.trim(), 'Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?');
  assert.is(r.code, 9);
  const env = { ...process.env, BERTH_HOST: 'unix:///nonexistent/x.sock' };
  const viaEnv = await runBerth(['info'], { env });
  assert.match(viaEnv.stderr, /unix:\/\/\/nonexistent\/x\.sock/);
});

test('unknown command exits 2', async () => {
  const r = await runBerth(['frobnicate']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /berth: 'frobnicate' is not a berth command\./);
});

test('a bad config key exits 2 naming the key', async () => {
  const tmp = makeTempDir();
  try {
    const file = join(tmp, 'daemon.json');
    writeFileSync(file, JSON.stringify({ 'data-root': join(tmp, 'data'), 'debug-everything': true }));
    const r = await runBerth(['daemon', '--config', file]);
    assert.is(r.code, 2);
    assert.match(r.stderr, /"debug-everything"/);
    writeFileSync(file, JSON.stringify({ 'max-concurrent-downloads': 'lots' }));
    const v = await runBerth(['daemon', '--config', file]);
    assert.is(v.code, 2);
    assert.match(v.stderr, /"max-concurrent-downloads"/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
