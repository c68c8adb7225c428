// Container, exec and event routes against a scripted engine, over a real unix socket:
// status codes, wait headers before exit, exact hijack bytes, frames, half-close, and
// LuCI-style clients that read one message per HTTP chunk.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { ApiServer } from '../../../src/api/server';
import { buildRouter } from '../../../src/api/routes';
import { ApiClient } from '../../../src/api/client';
import { encodeFrame, parseDetachKeys } from '../../../src/api/hijack';
import type { DaemonServices } from '../../../src/daemon/services';
import { setLogSink } from '../../../src/util/log';
import { FakeEngine } from './containers-fixture';

setLogSink(() => {});
const dir = mkdtempSync(join(tmpdir(), 'berth-containers-'));
const socketPath = join(dir, 'api.sock');
let server: ApiServer;
let client: ApiClient;
let engine: FakeEngine;

test.before(async () => {
  engine = new FakeEngine();
  server = new ApiServer({ router: buildRouter(), services: { engine } as unknown as DaemonServices, socketOwner: { uid: process.getuid!(), gid: process.getgid!() } });
  await server.listenUnix(socketPath);
  client = new ApiClient({ host: `unix://${socketPath}` });
});
test.after(async () => { await server.close(100); rmSync(dir, { recursive: true, force: true }); });

async function createContainer(body: Record<string, unknown> = {}, name?: string): Promise<string> {
  const res = await client.json<{ Id: string }>('POST', '/containers/create', { query: { name }, body: { Image: 'busybox', ...body } });
  return res.Id;
}

/** Sends raw bytes and collects everything until the server closes; `during` runs once the socket is open. */
function rawExchange(text: string | Buffer, during?: (socket: Socket, received: () => Buffer) => Promise<void> | void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const chunks: Buffer[] = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('connect', () => {
      socket.write(text);
      void Promise.resolve(during?.(socket, () => Buffer.concat(chunks))).catch(reject);
    });
  });
}

function until(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (check()) resolve();
      else if (Date.now() > deadline) reject(new Error('condition not met in time'));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

function splitHead(data: Buffer): { head: string; body: Buffer } {
  const end = data.indexOf('\r\n\r\n');
  return { head: data.subarray(0, end + 4).toString('latin1'), body: data.subarray(end + 4) };
}

/** The chunks of a chunked HTTP body, each as sent. */
function dechunk(body: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', pos);
    const size = parseInt(body.subarray(pos, lineEnd).toString('latin1'), 16);
    if (!size) return chunks;
    chunks.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    pos = lineEnd + 2 + size + 2;
  }
}

function frames(data: Buffer): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let pos = 0;
  while (pos + 8 <= data.length) {
    const size = data.readUInt32BE(pos + 4);
    out.push([data[pos]!, data.subarray(pos + 8, pos + 8 + size).toString()]);
    pos += 8 + size;
  }
  return out;
}

test('create: 201 with Id and Warnings; unknown fields ignored', async () => {
  const res = await client.request('POST', '/containers/create', { query: { name: 'web' }, body: { Image: 'busybox', Cmd: ['true'], Nonsense: { a: 1 }, HostConfig: { Whatever: true } } });
  assert.is(res.status, 201);
  const body = JSON.parse(res.body.toString()) as { Id: string; Warnings: string[] };
  assert.match(body.Id, /^[0-9a-f]{64}$/);
  assert.equal(body.Warnings, []);
});

test('create: 404 No such image, 409 name conflict, 400 naming the bad field', async () => {
  const missing = await client.raw('POST', '/containers/create', { body: { Image: 'missing' } });
  assert.is(missing.statusCode, 404);
  assert.is(missing.headers['content-type'], 'application/json');
  await createContainer({}, 'taken');
  const conflict = await client.raw('POST', '/containers/create', { query: { name: 'taken' }, body: { Image: 'busybox' } });
  assert.is(conflict.statusCode, 409);
  try {
    await client.request('POST', '/containers/create', { body: { Image: 'busybox', HostConfig: { Memory: '1g' } } });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { status: number }).status, 400);
    assert.match((err as Error).message, 'HostConfig.Memory');
  }
  try {
    await client.request('POST', '/containers/create', { body: { Image: 'busybox', Env: 'A=1' } });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, '"Env"');
  }
  const badName = await client.raw('POST', '/containers/create', { query: { name: 'no spaces' }, body: { Image: 'busybox' } });
  assert.is(badName.statusCode, 400);
});

test('create: an oversized body is refused with 413', async () => {
  const res = await client.raw('POST', '/containers/create', { body: { Image: 'busybox', Env: ['X='.padEnd(2 * 1024 * 1024, 'x')] } });
  assert.is(res.statusCode, 413);
  res.resume();
});

test('start 204 then 304; stop 304 when stopped; rm 409 while running, 204 forced', async () => {
  const id = await createContainer();
  assert.is((await client.raw('POST', `/containers/${id}/start`)).statusCode, 204);
  assert.is((await client.raw('POST', `/containers/${id}/start`)).statusCode, 304);
  const running = await client.raw('DELETE', `/containers/${id}`);
  assert.is(running.statusCode, 409);
  running.resume();
  assert.is((await client.raw('POST', `/containers/${id}/stop`, { query: { t: 3, signal: 'SIGUSR1' } })).statusCode, 204);
  assert.ok(engine.calls.includes(`stop ${id} {"timeout":3,"signal":"SIGUSR1"}`));
  assert.is((await client.raw('POST', `/containers/${id}/stop`)).statusCode, 304);
  assert.is((await client.raw('DELETE', `/containers/${id}`, { query: { force: 1 } })).statusCode, 204);
  const gone = await client.raw('GET', `/containers/${id}/json`);
  assert.is(gone.statusCode, 404);
  gone.resume();
});

test('wait: 200 and headers arrive before the exit, the status code after it', async () => {
  const id = await createContainer();
  let gotHeaders = false;
  const body = new Promise<string>((resolve, reject) => {
    const req = request({ socketPath, method: 'POST', path: `/v1.47/containers/${id}/wait?condition=next-exit` }, (res) => {
      gotHeaders = true;
      assert.is(res.statusCode, 200);
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end();
  });
  await until(() => gotHeaders);
  await client.request('POST', `/containers/${id}/start`);
  engine.exit(id, 3);
  assert.equal(JSON.parse(await body), { StatusCode: 3, Error: null });
  const missing = await client.raw('POST', '/containers/nope/wait');
  assert.is(missing.statusCode, 404);
  missing.resume();
});

const UPGRADE_HEADERS = 'Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n';
const MULTIPLEXED_REPLY = 'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n';
const RAW_REPLY = 'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n';

test('attach: exact 101 bytes, framed output, and output keeps flowing after the client half-closes', async () => {
  const id = await createContainer();
  const data = await rawExchange(`POST /v1.47/containers/${id}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n${UPGRADE_HEADERS}`, async (socket, received) => {
    await until(() => received().length >= MULTIPLEXED_REPLY.length);
    socket.end(); // SHUT_WR, as docker run does without -i
    await new Promise((r) => setTimeout(r, 50));
    await client.request('POST', `/containers/${id}/start`);
    const c = engine.get(id);
    c.stdout.write('hello\n');
    c.stderr.write('oops\n');
    setTimeout(() => engine.exit(id, 0), 20);
  });
  assert.is(data.subarray(0, MULTIPLEXED_REPLY.length).toString('latin1'), MULTIPLEXED_REPLY);
  assert.equal(frames(data.subarray(MULTIPLEXED_REPLY.length)), [[1, 'hello\n'], [2, 'oops\n']]);
});

test('attach: stdin reaches the container and its end closes stdin; API < 1.42 says raw-stream but still frames', async () => {
  const id = await createContainer({ OpenStdin: true });
  await client.request('POST', `/containers/${id}/start`);
  const data = await rawExchange(`POST /v1.41/containers/${id}/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\n${UPGRADE_HEADERS}typed`, async (socket, received) => {
    await until(() => received().length >= RAW_REPLY.length);
    socket.end(' more');
    const c = engine.get(id);
    await until(() => c.stdinEnded);
    assert.is(c.stdinText, 'typed more');
    c.stdout.write('after eof\n');
    setTimeout(() => engine.exit(id, 0), 20);
  });
  assert.is(data.subarray(0, RAW_REPLY.length).toString('latin1'), RAW_REPLY);
  assert.equal(frames(data.subarray(RAW_REPLY.length)), [[1, 'after eof\n']]);
});

test('attach: a TTY gets raw bytes and ctrl-p ctrl-q detaches', async () => {
  const id = await createContainer({ Tty: true, OpenStdin: true });
  await client.request('POST', `/containers/${id}/start`);
  const data = await rawExchange(`POST /containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n${UPGRADE_HEADERS}`, async (socket, received) => {
    await until(() => received().length >= RAW_REPLY.length);
    engine.get(id).stdout.write('$ ');
    await until(() => received().length >= RAW_REPLY.length + 2);
    socket.write(Buffer.from([0x6c, 0x73, 0x10, 0x11]));
  });
  assert.is(data.toString('latin1'), `${RAW_REPLY}$ `);
  assert.is(engine.get(id).stdinText, 'ls');
  assert.is(engine.get(id).status, 'running');
  assert.equal([...parseDetachKeys('ctrl-a,x')!], [1, 0x78]);
});

test('attach without Upgrade: 200 with the raw-stream type', async () => {
  const id = await createContainer();
  const data = await rawExchange(`POST /containers/${id}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`, async (_socket, received) => {
    await until(() => received().includes('\r\n\r\n'));
    await client.request('POST', `/containers/${id}/start`);
    engine.get(id).stdout.write('x');
    setTimeout(() => engine.exit(id, 0), 20);
  });
  const { head, body } = splitHead(data);
  assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head, 'Content-Type: application/vnd.docker.raw-stream\r\n');
  assert.equal(dechunk(body).map((c) => frames(c)), [[[1, 'x']]]);
});

test('logs: multiplexed type and one frame per chunk for a LuCI-style client', async () => {
  const id = await createContainer();
  const c = engine.get(id);
  c.logs.push({ stream: 'stdout', line: Buffer.from('one\n'), time: '2024-01-01T00:00:00.000000001Z' }, { stream: 'stderr', line: Buffer.from('two\n'), time: '2024-01-01T00:00:01.000000001Z' });
  const data = await rawExchange(`GET /containers/${id}/logs?stdout=1&stderr=1&timestamps=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  const { head, body } = splitHead(data);
  assert.match(head, 'Content-Type: application/vnd.docker.multiplexed-stream\r\n');
  const chunks = dechunk(body);
  assert.equal(chunks.map((chunk) => frames(chunk)), [[[1, '2024-01-01T00:00:00.000000001Z one\n']], [[2, '2024-01-01T00:00:01.000000001Z two\n']]]);
  const onlyErr = await client.request('GET', `/v1.41/containers/${id}/logs`, { query: { stderr: 1 } });
  assert.is(onlyErr.headers['content-type'], 'application/vnd.docker.raw-stream');
  assert.equal(frames(onlyErr.body), [[2, 'two\n']]);
  const neither = await client.raw('GET', `/containers/${id}/logs`);
  assert.is(neither.statusCode, 400);
  neither.resume();
});

test('logs: TTY output is raw; follow ends when the container stops', async () => {
  const id = await createContainer({ Tty: true });
  await client.request('POST', `/containers/${id}/start`);
  engine.get(id).logs.push({ stream: 'stdout', line: Buffer.from('tty line\r\n'), time: 't' });
  const pending = client.request('GET', `/containers/${id}/logs`, { query: { stdout: 1, follow: 1 } });
  await new Promise((r) => setTimeout(r, 50));
  engine.exit(id, 0);
  const res = await pending;
  assert.is(res.headers['content-type'], 'application/vnd.docker.raw-stream');
  assert.is(res.body.toString(), 'tty line\r\n');
});

test('stats: stream=false is one document; streaming sends one JSON per chunk', async () => {
  const id = await createContainer();
  await client.request('POST', `/containers/${id}/start`);
  const one = await client.json<{ memory_stats: { usage: number } }>('GET', `/containers/${id}/stats`, { query: { stream: 0 } });
  assert.is(one.memory_stats.usage, 1024);
  const data = await rawExchange(`GET /containers/${id}/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, async (socket, received) => {
    await until(() => dechunk(splitHead(received()).body).length >= 2, 3000);
    socket.destroy();
    socket.emit('end');
  });
  const chunks = dechunk(splitHead(data).body);
  assert.ok(chunks.length >= 2);
  for (const chunk of chunks) assert.is((JSON.parse(chunk.toString()) as { memory_stats: { limit: number } }).memory_stats.limit, 4096);
});

test('exec: create 201, start hijacked with the body and stdin in one packet, ExitCode in inspect', async () => {
  const id = await createContainer();
  await client.request('POST', `/containers/${id}/start`);
  const noCmd = await client.raw('POST', `/containers/${id}/exec`, { body: { Cmd: [] } });
  assert.is(noCmd.statusCode, 400);
  noCmd.resume();
  const created = await client.request('POST', `/containers/${id}/exec`, { body: { Cmd: ['cat'], AttachStdin: true, AttachStdout: true, AttachStderr: true } });
  assert.is(created.status, 201);
  const execId = (JSON.parse(created.body.toString()) as { Id: string }).Id;
  const body = '{"Detach":false,"Tty":false}';
  const data = await rawExchange(`POST /v1.47/exec/${execId}/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n${body}abc`, async (socket, received) => {
    await until(() => received().length > MULTIPLEXED_REPLY.length);
    socket.end('def');
  });
  assert.is(data.subarray(0, MULTIPLEXED_REPLY.length).toString('latin1'), MULTIPLEXED_REPLY);
  assert.equal(frames(data.subarray(MULTIPLEXED_REPLY.length)).map(([s, t]) => `${s}:${t}`).join(''), '1:running cat\n1:abc1:def');
  const info = await client.json<{ ExitCode: number; Running: boolean }>('GET', `/exec/${execId}/json`);
  assert.equal([info.ExitCode, info.Running], [7, false]);
  assert.is((await client.raw('POST', `/exec/${execId}/resize`, { query: { h: 24, w: 80 } })).statusCode, 200);
});

test('exec: a chunked start body works too, and Detach answers 200 at once', async () => {
  const id = await createContainer();
  await client.request('POST', `/containers/${id}/start`);
  const execId = (await client.json<{ Id: string }>('POST', `/containers/${id}/exec`, { body: { Cmd: ['true'], Tty: true } })).Id;
  const body = '{"Detach":false,"Tty":true}';
  const data = await rawExchange(`POST /exec/${execId}/start HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`, async (_socket, received) => {
    await until(() => received().length > RAW_REPLY.length);
    engine.execs.get(execId)!.stdout!.end();
    engine.execs.get(execId)!.finish(0);
  });
  assert.is(data.toString('latin1'), `${RAW_REPLY}running true\n`);
  const detached = (await client.json<{ Id: string }>('POST', `/containers/${id}/exec`, { body: { Cmd: ['sleep', '1'] } })).Id;
  const res = await client.request('POST', `/exec/${detached}/start`, { body: { Detach: true } });
  assert.is(res.status, 200);
  const missing = await client.raw('POST', '/exec/nope/start', { body: { Detach: true } });
  assert.is(missing.statusCode, 404);
  missing.resume();
});

test('ps filters reach the engine in the new form; kill, rename, resize, top, update, prune', async () => {
  await client.request('GET', '/containers/json', { query: { all: 1, limit: 2, filters: JSON.stringify({ status: { running: true }, name: ['web'] }) } });
  assert.ok(engine.calls.includes('list {"all":true,"limit":2,"size":false,"filters":{"status":["running"],"name":["web"]}}'), engine.calls.join('\n'));
  const id = await createContainer();
  const notRunning = await client.raw('POST', `/containers/${id}/kill`);
  assert.is(notRunning.statusCode, 409);
  notRunning.resume();
  await client.request('POST', `/containers/${id}/start`);
  assert.is((await client.request('POST', `/containers/${id}/kill`, { query: { signal: 'INT' } })).status, 204);
  assert.ok(engine.calls.includes(`kill ${id} INT`));
  assert.is((await client.request('POST', `/containers/${id}/rename`, { query: { name: 'renamed' } })).status, 204);
  assert.is(engine.get(id).name, 'renamed');
  assert.is((await client.request('POST', `/containers/renamed/resize`, { query: { h: 30, w: 100 } })).status, 200);
  assert.ok(engine.calls.includes('resize renamed 30x100'));
  const badResize = await client.raw('POST', `/containers/renamed/resize`, { query: { h: 'x' } });
  assert.is(badResize.statusCode, 400);
  badResize.resume();
  assert.equal((await client.json<{ Titles: string[] }>('GET', `/containers/${id}/top`)).Titles, ['PID', 'CMD']);
  assert.equal(await client.json('POST', `/containers/${id}/update`, { body: { Memory: 1024, RestartPolicy: { Name: 'always' } } }), { Warnings: [] });
  const badUpdate = await client.raw('POST', `/containers/${id}/update`, { body: { RestartPolicy: { MaximumRetryCount: 'x' } } });
  assert.is(badUpdate.statusCode, 400);
  badUpdate.resume();
  const pruned = await client.json<{ ContainersDeleted: string[] }>('POST', '/containers/prune');
  assert.not.ok(pruned.ContainersDeleted.includes(id));
});

test('events: NDJSON, one event per chunk, replayed with since and ended by until', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  const id = await createContainer({}, 'evented');
  await client.request('POST', `/containers/${id}/start`);
  const untilTime = Date.now() / 1000 + 0.3;
  const data = await rawExchange(`GET /events?since=${since}&until=${untilTime}&filters=${encodeURIComponent(JSON.stringify({ container: ['evented'] }))} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, async () => {
    await new Promise((r) => setTimeout(r, 50));
    engine.exit(id, 0);
  });
  const events = dechunk(splitHead(data).body).map((chunk) => JSON.parse(chunk.toString()) as { Action: string; Actor: { Attributes: { name: string } }; status: string });
  assert.equal(events.map((e) => e.Action), ['create', 'start', 'die']);
  assert.is(events[0]!.Actor.Attributes.name, 'evented');
  assert.is(events[0]!.status, 'create');
});

test('frame encoding', () => {
  assert.equal([...encodeFrame('stderr', 'ab')], [2, 0, 0, 0, 0, 0, 0, 2, 0x61, 0x62]);
});

test.run();
