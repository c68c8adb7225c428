import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJsonFileLog } from '../../../src/engine/logs/json-file';
import type { LogEntry, LogsOptions } from '../../../src/engine/types';

// Escapes the way native/helper/log.c does (\u00XX for control characters other than
// \n \r \t), not the way JSON.stringify does (\b, \f), so the reader sees helper output.
function escape(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += ch;
  }
  return out;
}

const BASE = Date.UTC(2024, 0, 1) / 1000; // 1704067200
function time(second: number, nanos = 0): string {
  return new Date((BASE + second) * 1000).toISOString().slice(0, 19) + '.' + String(nanos).padStart(9, '0') + 'Z';
}
function record(text: string, stream: 'stdout' | 'stderr' = 'stdout', t = time(0)): string {
  return `{"log":"${escape(text)}","stream":"${stream}","time":"${t}"}\n`;
}

/** Writes like the helper: append whole records, rotate PATH -> PATH.1 -> ... before passing maxBytes. */
class FakeHelper {
  private size = 0;
  private n = 0;
  constructor(readonly path: string, readonly maxBytes: number, readonly maxFiles: number) {
    writeFileSync(path, '');
  }
  write(text: string, stream: 'stdout' | 'stderr' = 'stdout'): void {
    const rec = record(text, stream, time(this.n++));
    if (this.size > 0 && this.size + rec.length > this.maxBytes) {
      for (let i = this.maxFiles - 1; i >= 2; i--) if (existsSync(`${this.path}.${i - 1}`)) renameSync(`${this.path}.${i - 1}`, `${this.path}.${i}`);
      renameSync(this.path, `${this.path}.1`);
      writeFileSync(this.path, '');
      this.size = 0;
    }
    appendFileSync(this.path, rec);
    this.size += Buffer.byteLength(rec);
  }
}

function opts(extra: Partial<LogsOptions> = {}): LogsOptions {
  return { stdout: true, stderr: true, follow: false, timestamps: false, ...extra };
}

async function collect(it: AsyncIterable<LogEntry>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}
const texts = (entries: LogEntry[]) => entries.map((e) => e.line.toString('utf8'));

function tempDir(): string { return mkdtempSync(join(tmpdir(), 'berth-logs-')); }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pulls entries from a follower in the background. */
function follower(it: AsyncIterable<LogEntry>) {
  const got: string[] = [];
  const done = (async () => { for await (const e of it) got.push(e.line.toString('utf8')); })();
  return {
    got,
    done,
    async waitFor(n: number, ms = 3000): Promise<void> {
      const until = Date.now() + ms;
      while (got.length < n) {
        if (Date.now() > until) throw new Error(`expected ${n} lines, have ${got.length}: ${JSON.stringify(got.slice(-3))}`);
        await sleep(10);
      }
    },
  };
}

test('reads all lines oldest first across rotated files', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'ctr-json.log');
    const h = new FakeHelper(path, 200, 3);
    const want: string[] = [];
    for (let i = 0; i < 12; i++) { const line = `line ${i}\n`; want.push(line); h.write(line); }
    assert.ok(existsSync(`${path}.2`), 'the fixture must rotate');
    // With maxFiles 3 the helper kept PATH.2, PATH.1, PATH: whatever is in them, in order.
    const got = texts(await collect(readJsonFileLog(path, 3, opts())));
    assert.ok(got.length > 4);
    assert.equal(got, want.slice(want.length - got.length));
    // Fewer files than exist are asked for: only the newest ones are read.
    const two = texts(await collect(readJsonFileLog(path, 2, opts())));
    assert.equal(two, got.slice(got.length - two.length));
    assert.ok(two.length < got.length);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('decodes multi-byte UTF-8 and escaped control characters; skips torn and malformed lines', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    const weird = 'tab\there "quoted" back\\slash \u0001\u001b[31mred\r\n';
    writeFileSync(path,
      record('grüße 日本 🚢\n') +
      record(weird, 'stderr') +
      'not json at all\n' +
      '{"log":"no stream","time":"2024-01-01T00:00:00Z"}\n' +
      record('partial line without newline') +
      '{"log":"torn reco'); // the helper died mid-write
    const got = await collect(readJsonFileLog(path, 1, opts()));
    assert.equal(texts(got), ['grüße 日本 🚢\n', weird, 'partial line without newline']);
    assert.equal(got[0].line, Buffer.from('grüße 日本 🚢\n', 'utf8'));
    assert.is(got[1].stream, 'stderr');
    assert.is(got[0].time, time(0));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('recovers the record a restarted helper appended right after a torn one', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    writeFileSync(path, record('a\n') + '{"log":"cut' + record('b\n') + record('c\n'));
    assert.equal(texts(await collect(readJsonFileLog(path, 1, opts()))), ['a\n', 'b\n', 'c\n']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('a missing log is empty', async () => {
  const dir = tempDir();
  try {
    assert.equal(await collect(readJsonFileLog(join(dir, 'nope'), 2, opts())), []);
    assert.equal(await collect(readJsonFileLog(join(dir, 'nope'), 2, opts({ tail: 3 }))), []);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('stdout and stderr filters', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    writeFileSync(path, record('o1\n') + record('e1\n', 'stderr') + record('o2\n') + record('e2\n', 'stderr'));
    assert.equal(texts(await collect(readJsonFileLog(path, 1, opts({ stderr: false })))), ['o1\n', 'o2\n']);
    assert.equal(texts(await collect(readJsonFileLog(path, 1, opts({ stdout: false })))), ['e1\n', 'e2\n']);
    assert.equal(await collect(readJsonFileLog(path, 1, opts({ stdout: false, stderr: false }))), []);
    assert.equal(texts(await collect(readJsonFileLog(path, 1, opts({ stdout: false, tail: 1 })))), ['e2\n']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('since and until compare with nanosecond precision', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    writeFileSync(path,
      record('a\n', 'stdout', time(0, 0)) +
      record('b\n', 'stdout', time(0, 1)) +
      record('c\n', 'stdout', time(0, 499_999_999)) +
      record('d\n', 'stdout', time(0, 500_000_000)) +
      record('e\n', 'stdout', time(2)) +
      // Another writer's style: trimmed fraction and an offset.
      record('f\n', 'stdout', new Date((BASE + 3) * 1000).toISOString().slice(0, 19).replace('T00', 'T01') + '.25+01:00'));
    const read = (o: Partial<LogsOptions>) => collect(readJsonFileLog(path, 1, opts(o))).then(texts);
    assert.equal(await read({ until: BASE }), ['a\n']);
    assert.equal(await read({ since: BASE + 0.5 }), ['d\n', 'e\n', 'f\n']);
    assert.equal(await read({ since: BASE + 0.5, until: BASE + 2 }), ['d\n', 'e\n']);
    assert.equal(await read({ since: BASE + 3.25 }), ['f\n']);
    assert.equal(await read({ since: BASE + 3.26 }), []);
    assert.equal(await read({ since: BASE, tail: 2, until: BASE + 2 }), ['d\n', 'e\n']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('tail 0, 1, more than the file, and across rotated files', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    const h = new FakeHelper(path, 300, 3);
    for (let i = 0; i < 10; i++) h.write(`n${i}\n`);
    assert.ok(existsSync(`${path}.2`));
    const all = texts(await collect(readJsonFileLog(path, 3, opts())));
    const tail = (n: number) => collect(readJsonFileLog(path, 3, opts({ tail: n }))).then(texts);
    assert.equal(await tail(0), []);
    assert.equal(await tail(1), ['n9\n']);
    assert.equal(await tail(all.length - 1), all.slice(1), 'reaches into PATH.2');
    assert.equal(await tail(1000), all);
    assert.equal(await tail(-1), all, 'negative is all');
    // A torn record at the end does not count as a line.
    appendFileSync(path, '{"log":"half');
    assert.equal(await tail(2), ['n8\n', 'n9\n']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('tail of a 20 MB file reads only its end', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'big');
    const recs: string[] = [];
    for (let i = 0; i < 1000; i++) recs.push(record(`${'x'.repeat(100)} ${i}\n`));
    const block = recs.join('');
    const copies = Math.ceil((20 * 1024 * 1024) / block.length);
    const fh = await open(path, 'w');
    for (let i = 0; i < copies; i++) await fh.write(block);
    await fh.write(record('the end\n'));
    await fh.close();

    // Count bytes read through any FileHandle.
    const probe = await open(path, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<{ bytesRead: number }> };
    await probe.close();
    const original = proto.read;
    let bytes = 0;
    proto.read = async function (this: unknown, ...args: unknown[]) {
      const r = await original.apply(this, args);
      bytes += r.bytesRead;
      return r;
    };
    let got: string[];
    try {
      got = texts(await collect(readJsonFileLog(path, 1, opts({ tail: 3 }))));
    } finally { proto.read = original; }
    assert.equal(got, ['x'.repeat(100) + ' 998\n', 'x'.repeat(100) + ' 999\n', 'the end\n']);
    assert.ok(bytes < 512 * 1024, `read ${bytes} bytes of a 20 MB file`);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('follow yields appended lines promptly, including a line written in two parts', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    writeFileSync(path, record('old\n'));
    const ac = new AbortController();
    const f = follower(readJsonFileLog(path, 2, opts({ follow: true, tail: 0 }), ac.signal));
    await sleep(50);
    const t0 = Date.now();
    appendFileSync(path, record('new 1\n'));
    await f.waitFor(1, 1000);
    assert.ok(Date.now() - t0 < 1000);
    const rec = record('split\n');
    appendFileSync(path, rec.slice(0, 10));
    await sleep(100);
    assert.equal(f.got, ['new 1\n'], 'half a record is not a line yet');
    appendFileSync(path, rec.slice(10));
    await f.waitFor(2, 1000);
    ac.abort();
    await f.done;
    assert.equal(f.got, ['new 1\n', 'split\n']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('follow survives rotations without losing or repeating lines', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    const h = new FakeHelper(path, 400, 3);
    for (let i = 0; i < 3; i++) h.write(`line ${i}\n`);
    const ac = new AbortController();
    const f = follower(readJsonFileLog(path, 3, opts({ follow: true }), ac.signal));
    const want = [0, 1, 2].map((i) => `line ${i}\n`);
    await f.waitFor(3);
    for (let i = 3; i < 120; i++) {
      h.write(`line ${i}\n`);
      want.push(`line ${i}\n`);
      // The follower may lag by up to maxFiles-1 rotations (about 10 lines here) without
      // loss; pace the writer on its progress, not on the clock, so a loaded machine
      // cannot push it further behind than rotation allows.
      if (i % 4 === 0) await f.waitFor(i - 6, 5000);
    }
    await f.waitFor(want.length);
    await sleep(100);
    ac.abort();
    await f.done;
    assert.equal(f.got, want);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('follow picks up a rotation done by rename + new file, and a log that appears later', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    const ac = new AbortController();
    const f = follower(readJsonFileLog(path, 2, opts({ follow: true }), ac.signal));
    await sleep(50);
    writeFileSync(path, record('first\n'));
    await f.waitFor(1);
    appendFileSync(path, record('second\n'));
    renameSync(path, `${path}.1`);
    await sleep(30); // the window in which PATH does not exist
    writeFileSync(path, record('third\n'));
    await f.waitFor(3);
    await sleep(100);
    ac.abort();
    await f.done;
    assert.equal(f.got, ['first\n', 'second\n', 'third\n']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('follow with max-file 1: truncation restarts from the top', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    writeFileSync(path, record('a long first line to make the file bigger\n'));
    const ac = new AbortController();
    const f = follower(readJsonFileLog(path, 1, opts({ follow: true }), ac.signal));
    await f.waitFor(1);
    writeFileSync(path, ''); // the helper's ftruncate
    await sleep(700); // past a poll, so the shrink is seen before new data
    appendFileSync(path, record('b\n'));
    await f.waitFor(2);
    ac.abort();
    await f.done;
    assert.equal(f.got, ['a long first line to make the file bigger\n', 'b\n']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('abort stops a follower; stopWhen stops it after draining', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    writeFileSync(path, record('x\n'));
    const ac = new AbortController();
    const f = follower(readJsonFileLog(path, 2, opts({ follow: true }), ac.signal));
    await f.waitFor(1);
    const t0 = Date.now();
    ac.abort();
    await f.done;
    assert.ok(Date.now() - t0 < 200, 'abort ends the wait at once');

    let exited!: () => void;
    const stopWhen = new Promise<void>((r) => { exited = r; });
    const g = follower(readJsonFileLog(path, 2, opts({ follow: true }), undefined, stopWhen));
    await g.waitFor(1);
    appendFileSync(path, record('last words\n'));
    exited(); // right after the final write, before the follower has seen it
    await g.done;
    assert.equal(g.got, ['x\n', 'last words\n']);

    // Already exited: the whole log, then the end.
    const h = await collect(readJsonFileLog(path, 2, opts({ follow: true, tail: 1 }), undefined, Promise.resolve()));
    assert.equal(texts(h), ['last words\n']);
    const aborted = new AbortController();
    aborted.abort();
    assert.equal(await collect(readJsonFileLog(path, 2, opts({ follow: true }), aborted.signal)), []);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('follow ends when until passes', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    const now = Date.now() / 1000;
    writeFileSync(path, record('old\n', 'stdout', new Date((now - 10) * 1000).toISOString()));
    const t0 = Date.now();
    const got = await collect(readJsonFileLog(path, 2, opts({ follow: true, until: now + 0.3 })));
    assert.equal(texts(got), ['old\n']);
    assert.ok(Date.now() - t0 < 2000);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('breaking out of the loop closes the files', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'log');
    writeFileSync(path, record('a\n') + record('b\n'));
    for await (const e of readJsonFileLog(path, 2, opts({ follow: true }))) { assert.is(e.line.toString(), 'a\n'); break; }
    if (existsSync('/proc/self/fd')) {
      const open = readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`) === path; } catch { return false; } });
      assert.equal(open, [], 'no descriptor of the log is left open');
    }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
