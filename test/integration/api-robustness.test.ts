// Malformed and abusive clients against a real daemon over raw sockets: bad JSON, wrong
// JSON types, oversized bodies, stalled headers, unknown paths, bad ids, a burst of
// requests, and clients that vanish mid-stream. After every case the daemon must still
// answer /_ping promptly. Needs root and a build (containers run for the stream cases).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { startDaemon, pingSocket, REPO_ROOT, type TestDaemon } from '../helpers/daemon';
import { exchange, luciRequest, openWith, parseResponse } from '../helpers/raw-http';

const IMAGE = 'localhost/busybox';
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar'));
let daemon: TestDaemon | undefined;

async function assertAlive(what: string): Promise<void> {
  const started = Date.now();
  assert.ok(await pingSocket(daemon!.socket), `daemon does not answer /_ping after: ${what}\n${daemon!.logs().slice(-2000)}`);
  assert.ok(Date.now() - started < 1000, `ping took ${Date.now() - started} ms after: ${what}`);
}

function jsonMessage(body: Buffer): string {
  return (JSON.parse(body.toString()) as { message: string }).message;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  if (!canRun) return;
  daemon = await startDaemon();
  const loaded = await daemon.cli(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
  assert.is(loaded.code, 0, loaded.stderr);
  const r = await daemon.cli(['run', '-d', '--name', 'talker', IMAGE, 'sh', '-c', 'while true; do echo tick; sleep 0.2; done']);
  assert.is(r.code, 0, r.stderr);
});

test.after(async () => {
  if (daemon) await daemon.cli(['rm', '-f', 'talker']).catch(() => {});
  await daemon?.stop().catch(() => {});
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('bad JSON gets 400 with a JSON message', async () => {
  for (const body of ['{not json', '[1,2', '"just a string"', '{"Image":']) {
    const r = await luciRequest(daemon!.socket, 'POST', '/containers/create', body);
    assert.is(r.status, 400, body);
    assert.is(r.headers['content-type'], 'application/json');
    assert.ok(jsonMessage(r.body).length > 0);
  }
  await assertAlive('bad JSON');
});

t('wrong JSON types get 400 naming the field', async () => {
  const cases: Array<[string, unknown, string]> = [
    ['/containers/create', { Image: 5 }, 'Image'],
    ['/containers/create', { Image: IMAGE, Cmd: { a: 1 } }, 'Cmd'],
    ['/containers/create', { Image: IMAGE, HostConfig: { Memory: 'lots' } }, 'HostConfig.Memory'],
    ['/containers/create', { Image: IMAGE, HostConfig: { RestartPolicy: { Name: 7 } } }, 'HostConfig.RestartPolicy.Name'],
    ['/containers/create', { Image: IMAGE, Env: 'A=1' }, 'Env'],
    ['/containers/talker/update', { CpuShares: '1024' }, 'CpuShares'],
  ];
  for (const [path, body, field] of cases) {
    const r = await luciRequest(daemon!.socket, 'POST', path, JSON.stringify(body));
    assert.is(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.body}`);
    assert.match(jsonMessage(r.body), `"${field}"`);
  }
  await assertAlive('wrong types');
});

t('oversized bodies get 413, declared or streamed', async () => {
  // Declared: answered from the headers, without waiting for the body.
  const declared = await exchange(daemon!.socket, 'POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{"Image":', { timeoutMs: 10_000 });
  assert.not.ok(declared.timedOut, 'the daemon answered a declared oversized body');
  assert.is(parseResponse(declared.raw).status, 413);
  // Chunked with no length: cut once past the limit.
  const chunk = Buffer.alloc(256 * 1024, 0x20);
  const conn = await openWith(daemon!.socket, 'POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
  for (let i = 0; i < 8 && !conn.socket.destroyed; i++) {
    conn.socket.write(`${chunk.length.toString(16)}\r\n`);
    conn.socket.write(chunk);
    conn.socket.write('\r\n');
    await sleep(10);
  }
  const deadline = Date.now() + 10_000;
  while (!conn.received().includes('\r\n\r\n') && Date.now() < deadline) await sleep(50);
  assert.is(parseResponse(conn.received()).status, 413);
  conn.socket.destroy();
  await assertAlive('oversized bodies');
});

t('a client stalled mid request line is cut, and others are served meanwhile', async () => {
  const stalled = await openWith(daemon!.socket, 'GET /_pi');
  const started = Date.now();
  // Served while the stalled one waits.
  for (let i = 0; i < 5; i++) await assertAlive('a stalled client is connected');
  await Promise.race([stalled.closed, sleep(25_000)]);
  assert.ok(stalled.socket.destroyed || stalled.socket.readableEnded, 'the stalled socket was closed by the daemon');
  assert.ok(Date.now() - started < 25_000);
  stalled.socket.destroy();
  await assertAlive('slow headers');
});

t('unknown paths answer 404 page not found as JSON', async () => {
  for (const [method, path] of [['GET', '/nope'], ['POST', '/containers/talker/teleport'], ['GET', '/v1.41/nothing/here'], ['DELETE', '/_ping'], ['GET', '/%zz']]) {
    const r = await luciRequest(daemon!.socket, method!, path!);
    assert.is(r.status, 404, `${method} ${path}`);
    assert.is(r.headers['content-type'], 'application/json');
    assert.is(jsonMessage(r.body), 'page not found');
  }
  await assertAlive('unknown paths');
});

t('bad ids answer 404 No such container', async () => {
  const paths: Array<[string, string]> = [
    ['GET', '/containers/nosuch/json'], ['POST', '/containers/nosuch/start'], ['POST', '/containers/nosuch/kill'],
    ['GET', '/containers/nosuch/logs?stdout=1'], ['GET', '/containers/nosuch/top'], ['GET', '/containers/nosuch/changes'],
    ['GET', '/containers/nosuch/export'], ['GET', '/containers/nosuch/archive?path=/'], ['GET', '/containers/nosuch/stats?stream=false'],
    ['DELETE', '/containers/nosuch'], ['GET', '/containers/..%2F..%2Fetc/json'], ['GET', `/containers/${'x'.repeat(5000)}/json`],
  ];
  for (const [method, path] of paths) {
    const r = await luciRequest(daemon!.socket, method, path);
    assert.is(r.status, 404, `${method} ${path}: ${r.body}`);
    assert.match(jsonMessage(r.body), 'No such container');
  }
  await assertAlive('bad ids');
});

t('1000 rapid requests all succeed', async () => {
  const one = (path: string): Promise<number> => new Promise((resolve, reject) => {
    const req = request({ socketPath: daemon!.socket, path }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('error', reject);
    req.end();
  });
  const paths = ['/_ping', '/version', '/containers/json', '/containers/talker/json', '/nope'];
  const statuses: number[] = [];
  for (let batch = 0; batch < 20; batch++) {
    statuses.push(...await Promise.all(Array.from({ length: 50 }, (_, i) => one(paths[(batch * 50 + i) % paths.length]!))));
  }
  assert.is(statuses.length, 1000);
  assert.is(statuses.filter((s) => s === 200).length, 800);
  assert.is(statuses.filter((s) => s === 404).length, 200);
  await assertAlive('1000 requests');
});

t('clients that disconnect mid-stream leave the daemon healthy', async () => {
  const streams = [
    'GET /containers/talker/logs?stdout=1&stderr=1&follow=1 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /events HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /containers/talker/stats HTTP/1.1\r\nHost: x\r\n\r\n',
    'POST /containers/talker/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n',
    'POST /containers/talker/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n',
    'GET /containers/talker/export HTTP/1.1\r\nHost: x\r\n\r\n',
  ];
  for (let round = 0; round < 3; round++) {
    for (const req of streams) {
      const conn = await openWith(daemon!.socket, req);
      await sleep(round === 0 ? 300 : 20);
      if (round === 2) conn.socket.end(); else conn.socket.destroy();
      await assertAlive(`disconnect from ${req.split('\r\n')[0]}`);
    }
  }
  // An upload cut half-way.
  const upload = await openWith(daemon!.socket, 'PUT /containers/talker/archive?path=/tmp HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: 1048576\r\n\r\n');
  upload.socket.write(Buffer.alloc(700, 0));
  await sleep(200);
  upload.socket.destroy();
  await assertAlive('an upload cut half-way');
  // The container kept running and its logs still follow.
  const inspect = await luciRequest(daemon!.socket, 'GET', '/containers/talker/json');
  assert.is((JSON.parse(inspect.body.toString()) as { State: { Running: boolean } }).State.Running, true);
});

test.run();
