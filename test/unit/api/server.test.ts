// The server framework in-process: error mapping, JSON streams, body limits, upgrade
// requests. Uses a router of test routes on a temp socket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { ApiServer } from '../../../src/api/server';
import { Router } from '../../../src/api/router';
import { JsonStream, sendJson, sendEmpty } from '../../../src/api/response';
import { ApiClient, DaemonError } from '../../../src/api/client';
import { BerthError } from '../../../src/util/errors';
import type { DaemonServices } from '../../../src/daemon/services';
import { setLogSink } from '../../../src/util/log';

setLogSink(() => {});
const dir = mkdtempSync(join(tmpdir(), 'berth-api-'));
const socket = join(dir, 'api.sock');
let server: ApiServer;
let client: ApiClient;

const router = new Router()
  .add('GET', '/images/{name}/json', (ctx) => sendJson(ctx.res, 200, { name: ctx.param('name'), v: ctx.apiVersion, all: ctx.query.bool('all') }))
  .add('GET', '/missing/{name}', (ctx) => { throw new BerthError('ENOIMAGE', `No such image: ${ctx.param('name')}`); })
  .add('GET', '/bug', () => { throw new TypeError('oops'); })
  .add('POST', '/echo', async (ctx) => sendJson(ctx.res, 200, (await ctx.json()) ?? null))
  .add('POST', '/small', async (ctx) => { await ctx.body(8); sendEmpty(ctx.res); })
  .add('POST', '/pull', async (ctx) => {
    const stream = new JsonStream(ctx.res);
    stream.write({ status: 'Pulling from library/alpine', id: 'latest' });
    await new Promise((r) => setTimeout(r, 20));
    stream.write({ status: 'Downloading', progressDetail: { current: 1, total: 2 } });
    if (ctx.query.bool('fail')) throw new BerthError('EREGISTRY', 'registry went away');
    stream.end();
  })
  .add('POST', '/early-fail', (ctx) => new JsonStream(ctx.res).error(new BerthError('ENOIMAGE', 'No such image: x')));

test.before(async () => {
  server = new ApiServer({ router, services: {} as DaemonServices, socketOwner: { uid: process.getuid!(), gid: process.getgid!() } });
  await server.listenUnix(socket);
  client = new ApiClient({ host: `unix://${socket}` });
});
test.after(async () => { await server.close(100); rmSync(dir, { recursive: true, force: true }); });

test('params, query booleans and version reach the handler', async () => {
  const v = await client.json<{ name: string; v: string; all: boolean }>('GET', '/images/reg:5000/a/b:1/json', { query: { all: 'true' } });
  assert.equal(v, { name: 'reg:5000/a/b:1', v: '1.47', all: true });
  const pinned = new ApiClient({ host: socket, apiVersion: '1.41' });
  assert.is((await pinned.json<{ v: string }>('GET', '/images/x/json')).v, '1.41');
});

test('thrown BerthErrors map once to status and {"message"}', async () => {
  const res = await client.raw('GET', '/missing/alpine');
  assert.is(res.statusCode, 404);
  assert.is(res.headers['content-type'], 'application/json');
  try {
    await client.request('GET', '/missing/alpine');
    assert.unreachable();
  } catch (err) {
    assert.instance(err, DaemonError);
    assert.is((err as DaemonError).message, 'No such image: alpine');
    assert.is((err as DaemonError).code, 'ENOTFOUND');
  }
});

test('unexpected errors become 500 and the server keeps serving', async () => {
  const res = await client.raw('GET', '/bug');
  assert.is(res.statusCode, 500);
  assert.is((await client.json<{ name: string }>('GET', '/images/a/json')).name, 'a');
});

test('JSON bodies and the size limit', async () => {
  assert.equal(await client.json('POST', '/echo', { body: { a: [1, 2] } }), { a: [1, 2] });
  assert.is(await client.json('POST', '/echo'), null);
  const bad = await client.raw('POST', '/echo', { body: '{nope', headers: { 'Content-Type': 'application/json' } });
  assert.is(bad.statusCode, 400);
  const big = await client.raw('POST', '/small', { body: 'x'.repeat(100) });
  assert.is(big.statusCode, 413);
  assert.is((await client.raw('POST', '/small', { body: 'tiny' })).statusCode, 204);
});

test('JSON streams deliver messages and an error after output started', async () => {
  const got: unknown[] = [];
  for await (const m of client.stream('POST', '/pull')) got.push(m);
  assert.is(got.length, 2);
  const seen: unknown[] = [];
  try {
    for await (const m of client.stream('POST', '/pull', { query: { fail: true } })) seen.push(m);
    assert.unreachable();
  } catch (err) {
    assert.is((err as Error).message, 'registry went away');
  }
  assert.is(seen.length, 2);
  const early = await client.raw('POST', '/early-fail');
  assert.is(early.statusCode, 404);
});

test('each stream message is its own chunk ending in \\r\\n', async () => {
  const text = await new Promise<string>((resolve, reject) => {
    const sock = connect(socket, () => sock.write('POST /pull HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'));
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => resolve(data));
    sock.on('error', reject);
  });
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  assert.match(text, /Transfer-Encoding: chunked/);
  assert.match(text, /Content-Type: application\/json\r\n/);
  const first = JSON.stringify({ status: 'Pulling from library/alpine', id: 'latest' }) + '\r\n';
  assert.ok(body.startsWith(`${Buffer.byteLength(first).toString(16)}\r\n${first}\r\n`), body);
});

test('upgrade requests to ordinary routes are answered and closed', async () => {
  const text = await new Promise<string>((resolve, reject) => {
    const sock = connect(socket, () => sock.write('GET /images/u/json HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n'));
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => resolve(data));
    sock.on('error', reject);
  });
  assert.match(text, /^HTTP\/1\.1 200 OK/);
  assert.match(text, /"name":"u"/);
});

test.run();
