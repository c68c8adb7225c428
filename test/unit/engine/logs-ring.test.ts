import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough, Duplex } from 'node:stream';
import { RingLog, feedFromAttach } from '../../../src/engine/logs/ring';
import type { LogEntry, LogsOptions } from '../../../src/engine/types';
import type { AttachStream } from '../../../src/runtime/types';

function opts(extra: Partial<LogsOptions> = {}): LogsOptions {
  return { stdout: true, stderr: true, follow: false, timestamps: false, ...extra };
}
const BASE = Date.UTC(2024, 0, 1) / 1000;
function entry(text: string, second = 0, stream: 'stdout' | 'stderr' = 'stdout'): LogEntry {
  return { stream, line: Buffer.from(text), time: new Date((BASE + second) * 1000).toISOString().replace('Z', '000000Z') };
}
async function collect(it: AsyncIterable<LogEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of it) out.push(e.line.toString());
  return out;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('keeps the newest entries within maxBytes', () => {
  const ring = new RingLog(1000);
  for (let i = 0; i < 100; i++) ring.append(entry(`line ${String(i).padStart(3, '0')}\n`, i));
  assert.ok(ring.bytes <= 1000, `holds ${ring.bytes} bytes`);
  assert.ok(ring.length > 3 && ring.length < 100);
  // An entry bigger than the ring still stays (alone) so tail 1 shows it.
  ring.append(entry('y'.repeat(5000)));
  assert.is(ring.length, 1);
});

test('reads in order with filters and tail; the caller buffer is copied', async () => {
  const ring = new RingLog(1 << 20);
  const buf = Buffer.from('o0\n');
  ring.append({ ...entry('', 0), line: buf });
  buf.write('XX');
  ring.append(entry('e1\n', 1, 'stderr'));
  ring.append(entry('o2\n', 2));
  ring.append(entry('e3\n', 3, 'stderr'));
  assert.equal(await collect(ring.read(opts())), ['o0\n', 'e1\n', 'o2\n', 'e3\n']);
  assert.equal(await collect(ring.read(opts({ stderr: false }))), ['o0\n', 'o2\n']);
  assert.equal(await collect(ring.read(opts({ tail: 1, stdout: false }))), ['e3\n']);
  assert.equal(await collect(ring.read(opts({ tail: 0 }))), []);
  assert.equal(await collect(ring.read(opts({ tail: 99 }))), ['o0\n', 'e1\n', 'o2\n', 'e3\n']);
  assert.equal(await collect(ring.read(opts({ since: BASE + 1, until: BASE + 2 }))), ['e1\n', 'o2\n']);
  assert.equal(await collect(ring.read(opts({ since: BASE + 1.5 }))), ['o2\n', 'e3\n']);
});

test('followers get new entries; abort and stopWhen end them', async () => {
  const ring = new RingLog();
  ring.append(entry('before\n'));
  const ac = new AbortController();
  const got: string[] = [];
  const done = (async () => { for await (const e of ring.read(opts({ follow: true, tail: 0 }), ac.signal)) got.push(e.line.toString()); })();
  await sleep(10);
  ring.append(entry('a\n'));
  ring.append(entry('b\n'));
  await sleep(10);
  assert.equal(got, ['a\n', 'b\n']);
  ac.abort();
  await done;

  let exited!: () => void;
  const stopWhen = new Promise<void>((r) => { exited = r; });
  const all = collect(ring.read(opts({ follow: true }), undefined, stopWhen));
  ring.append(entry('c\n'));
  exited();
  ring.append(entry('d\n')); // appended before the follower ran again: still drained
  assert.equal(await all, ['before\n', 'a\n', 'b\n', 'c\n', 'd\n']);
});

test('a follower that falls behind skips what was evicted', async () => {
  const ring = new RingLog(300);
  const ac = new AbortController();
  const it = ring.read(opts({ follow: true }), ac.signal)[Symbol.asyncIterator]();
  ring.append(entry('first\n'));
  assert.is((await it.next()).value?.line.toString(), 'first\n');
  for (let i = 0; i < 50; i++) ring.append(entry(`n${i}\n`));
  const next = (await it.next()).value?.line.toString();
  assert.ok(next !== 'n0\n' && next?.startsWith('n'), `resumed at ${next}`);
  ac.abort();
  await it.return?.();
});

function fakeAttach() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let close!: () => void;
  const closed = new Promise<void>((r) => { close = r; });
  const attach: AttachStream = { stdout, stderr, closed, close: () => close(), socket: new Duplex({ read() {}, write(_c, _e, cb) { cb(); } }) };
  return { attach, stdout, stderr, close };
}

test('feedFromAttach splits lines, stamps them, and flushes partial lines', async () => {
  const ring = new RingLog();
  const { attach, stdout, stderr } = fakeAttach();
  const fed = feedFromAttach(attach, ring);
  stdout.write('hel');
  stdout.write('lo\nwor');
  stderr.write('oops\n');
  const euro = Buffer.from('€\n', 'utf8');
  stdout.write(Buffer.concat([Buffer.from('ld\n'), euro.subarray(0, 2)])); // ends mid-character
  stdout.write(euro.subarray(2));
  stdout.write('no newline at the end');
  stdout.write('x'.repeat(20000) + '\n');
  stdout.end();
  stderr.end();
  await fed;
  const entries: LogEntry[] = [];
  for await (const e of ring.read(opts())) entries.push(e);
  const lines = entries.map((e) => e.line.toString());
  assert.equal(lines.slice(0, 4), ['hello\n', 'oops\n', 'world\n', '€\n']);
  assert.is(entries[1].stream, 'stderr');
  // A long line is cut at 16 KiB, like the helper does.
  assert.is(entries[4].line.length, 16 * 1024);
  assert.ok(lines[4].startsWith('no newline at the end'));
  assert.is(lines.slice(4).join(''), 'no newline at the end' + 'x'.repeat(20000) + '\n');
  assert.match(entries[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  // Stamps increase, so since= a stamp is exact.
  for (let i = 1; i < entries.length; i++) assert.ok(entries[i].time > entries[i - 1].time);
});

test('feedFromAttach ends on close even if a stream never ends (TTY)', async () => {
  const ring = new RingLog();
  const { attach, stdout, close } = fakeAttach();
  const fed = feedFromAttach(attach, ring);
  stdout.write('prompt$ ');
  close();
  await fed;
  assert.equal(await collect(ring.read(opts())), ['prompt$ ']);
});

test.run();
