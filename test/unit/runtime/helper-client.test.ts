// The ctl socket client against a fake helper: reply lines, frame decoding across chunk
// boundaries, raw frames, stdin half-close.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ctlCommand, openAttach } from '../../../src/runtime/helper-client';
import { isBerthError } from '../../../src/util/errors';

let dir = '';
let server: Server | undefined;
test.before.each(() => { dir = mkdtempSync(join(tmpdir(), 'berth-ctl-')); });
test.after.each(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function frame(stream: number, text: string): Buffer {
  const data = Buffer.from(text);
  const head = Buffer.alloc(5);
  head[0] = stream;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

/** A fake helper: `onLine` gets the request line, the socket, and what follows it. */
async function fakeHelper(onLine: (line: string, sock: Socket, rest: Buffer) => void): Promise<string> {
  const path = join(dir, 'ctl.sock');
  server = createServer({ allowHalfOpen: true }, (sock) => {
    let buf = Buffer.alloc(0);
    let seen = false;
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(10);
      if (seen || nl < 0) return;
      seen = true;
      onLine(buf.subarray(0, nl).toString(), sock, buf.subarray(nl + 1));
    });
  });
  await new Promise<void>((r) => server!.listen(path, () => r()));
  return path;
}

const read = (s: NodeJS.ReadableStream) => new Promise<string>((r) => { let t = ''; s.on('data', (d) => { t += d; }); s.on('end', () => r(t)); });

test('ok replies, error replies and a missing socket', async () => {
  const path = await fakeHelper((line, sock) => sock.end(line === 'state' ? 'ok pid 3 status running\n' : 'error the container is not running\n'));
  assert.is(await ctlCommand(path, 'state', 'container x'), 'pid 3 status running');
  try {
    await ctlCommand(path, 'signal 9', 'container x');
    assert.unreachable();
  } catch (err) {
    assert.ok(isBerthError(err, 'ECONFLICT'));
    assert.is((err as Error).message, 'container x: the container is not running');
  }
  try {
    await ctlCommand(join(dir, 'gone.sock'), 'state', 'container y');
    assert.unreachable();
  } catch (err) {
    assert.ok(isBerthError(err, 'ECONFLICT'));
    assert.is((err as Error).message, 'container y is not running');
  }
});

test('frames in the reply chunk and split byte by byte reach stdout and stderr', async () => {
  const path = await fakeHelper(async (line, sock) => {
    assert.is(line, 'attach');
    sock.write(Buffer.concat([Buffer.from('ok\n'), frame(1, 'hel')]));
    const rest = Buffer.concat([frame(1, 'lo\n'), frame(2, 'err\n'), frame(1, '')]);
    for (const b of rest) { sock.write(Buffer.of(b)); await new Promise((r) => setImmediate(r)); }
    sock.end();
  });
  const a = await openAttach(path, { stdin: false }, 'container x');
  assert.is(a.stdin, undefined);
  const [out, err] = await Promise.all([read(a.stdout), read(a.stderr), a.closed]);
  assert.is(out, 'hello\n');
  assert.is(err, 'err\n');
});

test('raw mode passes frames unchanged', async () => {
  const frames = Buffer.concat([frame(1, 'a'), frame(2, 'b')]);
  const path = await fakeHelper((_line, sock) => { sock.end(Buffer.concat([Buffer.from('ok\n'), frames])); });
  const a = await openAttach(path, { stdin: false, raw: true }, 'container x');
  const chunks: Buffer[] = [];
  a.frames!.on('data', (d: Buffer) => chunks.push(d));
  await a.closed;
  await new Promise((r) => setImmediate(r));
  assert.equal(Buffer.concat(chunks), frames);
});

test('stdin bytes go raw to the helper and end() half-closes', async () => {
  let received = '';
  const path = await fakeHelper((line, sock, rest) => {
    assert.is(line, 'attach stdin');
    received += rest.toString();
    sock.write('ok\n');
    sock.on('data', (d: Buffer) => { received += d.toString(); });
    sock.on('end', () => sock.end(frame(1, `got ${received.length}`)));
  });
  const a = await openAttach(path, { stdin: true }, 'container x');
  a.stdin!.write('abc');
  a.stdin!.end('de');
  const out = await read(a.stdout);
  assert.is(received, 'abcde');
  assert.is(out, 'got 5');
});

test('a refused attach is an error', async () => {
  const path = await fakeHelper((_l, sock) => sock.end("error the container's stdin is not open (spec: stdin 0)\n"));
  try {
    await openAttach(path, { stdin: true }, 'container x');
    assert.unreachable();
  } catch (err) {
    assert.ok(isBerthError(err, 'ECONFLICT'));
    assert.match((err as Error).message, /stdin is not open/);
  }
});

test.run();
