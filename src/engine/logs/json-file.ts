// Reader for the json-file log that the native helper writes (one JSON record per line,
// rotated PATH -> PATH.1 -> ... PATH.(MAXFILES-1), PATH.1 newest). The daemon never
// writes these files; it only reads them, so everything here must cope with a writer
// appending and rotating underneath: we read through open descriptors (a renamed file
// stays readable), and re-check inodes to notice rotation.
//
// Memory stays bounded by a chunk plus the longest record whatever the file size: tail
// scans backwards from the end in chunks, everything else streams forwards.
import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { logger } from '../../util/log';
import type { LogEntry, LogsOptions } from '../types';
import { entryFilter, parseTimeNanos, Waker, watchStops, type EntryFilter } from './common';

const log = logger('logs');

const CHUNK = 64 * 1024;
// The helper splits lines at 16 KiB; escaped as \u00XX that is < 100 KiB of JSON. A
// "line" far beyond that is damage, and holding it would defeat the memory bound.
const MAX_RECORD = 1024 * 1024;
// fs.watch wakes us at once on local filesystems; the poll covers the ones where it
// does not fire (some overlay/network setups) and a watch that failed to start.
const POLL_MS = 500;

interface LogFile { fh: FileHandle; name: string; dev: number; ino: number }

/** Oldest first: PATH.(n-1) ... PATH.1, PATH. */
function fileNames(path: string, maxFiles: number): string[] {
  const names: string[] = [];
  for (let i = Math.max(1, Math.floor(maxFiles)) - 1; i >= 1; i--) names.push(`${path}.${i}`);
  names.push(path);
  return names;
}

async function closeAll(files: LogFile[]): Promise<void> {
  await Promise.all(files.map((f) => f.fh.close().catch(() => undefined)));
}

/**
 * Opens the existing files oldest first, retrying when a rotation happened while we
 * were opening them (a name no longer points at the inode we opened). With `after`,
 * returns only the files newer than that one; when it is gone (rotated away while we
 * were slow), every remaining file is newer, so all are returned.
 */
async function openChain(path: string, maxFiles: number, after?: { dev: number; ino: number }): Promise<LogFile[]> {
  let files: LogFile[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    files = [];
    for (const name of fileNames(path, maxFiles)) {
      let fh: FileHandle;
      try { fh = await open(name, 'r'); } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        await closeAll(files);
        throw err;
      }
      const st = await fh.stat();
      if (files.some((f) => f.ino === st.ino && f.dev === st.dev)) { await fh.close(); continue; }
      files.push({ fh, name, dev: st.dev, ino: st.ino });
    }
    let stable = true;
    for (const f of files) {
      const st = await stat(f.name).catch(() => undefined);
      if (!st || st.ino !== f.ino || st.dev !== f.dev) { stable = false; break; }
    }
    if (stable || attempt === 4) break;
    await closeAll(files);
  }
  if (after) {
    const i = files.findIndex((f) => f.ino === after.ino && f.dev === after.dev);
    if (i >= 0) {
      await closeAll(files.slice(0, i + 1));
      files = files.slice(i + 1);
    }
  }
  return files;
}

interface Parsed { entry: LogEntry; ns: bigint }

function tryParse(text: string): Parsed | undefined {
  let rec: unknown;
  try { rec = JSON.parse(text); } catch { return undefined; }
  if (!rec || typeof rec !== 'object') return undefined;
  const { log: body, stream, time } = rec as Record<string, unknown>;
  if (typeof body !== 'string' || (stream !== 'stdout' && stream !== 'stderr') || typeof time !== 'string') return undefined;
  const ns = parseTimeNanos(time);
  if (ns === undefined) return undefined;
  return { entry: { stream, line: Buffer.from(body, 'utf8'), time }, ns };
}

/** How many malformed records one reader still reports (a damaged file must not flood the daemon's log). */
interface Budget { left: number }

function parseRecord(line: Buffer, where: string, budget: Budget): Parsed | undefined {
  const text = line.toString('utf8');
  let parsed = tryParse(text);
  if (!parsed) {
    // A helper killed mid-write leaves a torn record; the next helper (restart) appends
    // its first record right after it on the same line. Recover that record.
    const i = text.lastIndexOf('{"log":');
    if (i > 0) parsed = tryParse(text.slice(i));
    if (budget.left > 0) {
      budget.left--;
      log.debug('malformed json-file record', { file: where, bytes: line.length, recovered: parsed !== undefined });
    }
  }
  return parsed;
}

/** Forward reader of one file: complete lines from `pos`, keeping a partial last line. */
class Cursor {
  private partial: Buffer | undefined;
  private discarding = false;
  private readonly buf = Buffer.allocUnsafe(CHUNK);

  constructor(readonly file: LogFile, public pos: number) {}

  /** Complete lines of the next chunk (views into a reused buffer: use before the next call); undefined at EOF or `limit`. */
  async next(limit = Infinity): Promise<Buffer[] | undefined> {
    const want = Math.min(CHUNK, limit - this.pos);
    if (want <= 0) return undefined;
    const { bytesRead } = await this.file.fh.read(this.buf, 0, want, this.pos);
    if (bytesRead === 0) return undefined;
    this.pos += bytesRead;
    const chunk = this.buf.subarray(0, bytesRead);
    const lines: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      let line = chunk.subarray(start, nl);
      if (this.partial) { line = Buffer.concat([this.partial, line]); this.partial = undefined; }
      start = nl + 1;
      if (this.discarding) { this.discarding = false; continue; }
      lines.push(line);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      // Copy: the chunk buffer is reused by the next read.
      this.partial = this.partial ? Buffer.concat([this.partial, rest]) : Buffer.from(rest);
      if (this.partial.length > MAX_RECORD) { this.partial = undefined; this.discarding = true; }
    }
    return lines;
  }

  /** Bytes of an unfinished last line (dropped: a torn record from a crash, or cut by `limit`). */
  dropPartial(): number {
    const n = this.partial?.length ?? 0;
    this.partial = undefined;
    return n;
  }

  /** The file shrank under us (MAXFILES 1: the helper truncates instead of rotating). */
  restart(): void { this.pos = 0; this.partial = undefined; this.discarding = false; }
}

/**
 * Complete lines of [0, end) from last to first, each with its offset; bytes after the
 * last newline (a record still being written, or torn) are not a line.
 */
async function* linesBackward(fh: FileHandle, end: number): AsyncGenerator<{ offset: number; line: Buffer }> {
  let pos = end;
  // Bytes [pos, pos + acc.length): the unfinished (leftwards) part of the current line,
  // ending in its own newline once `started`.
  let acc = Buffer.alloc(0);
  let started = false;
  let discarding = false;
  for (;;) {
    const from = acc.length - (started ? 2 : 1);
    const nl = from >= 0 ? acc.lastIndexOf(0x0a, from) : -1;
    if (nl >= 0) {
      if (started && !discarding) yield { offset: pos + nl + 1, line: acc.subarray(nl + 1, acc.length - 1) };
      started = true;
      discarding = false;
      acc = acc.subarray(0, nl + 1);
      continue;
    }
    if (pos === 0) {
      if (started && !discarding && acc.length > 0) yield { offset: 0, line: acc.subarray(0, acc.length - 1) };
      return;
    }
    if (acc.length > MAX_RECORD) {
      // Drop the over-long line but remember that bytes up to the next newline belong to it.
      acc = Buffer.alloc(0);
      if (started) discarding = true;
    }
    const n = Math.min(CHUNK, pos);
    const chunk = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await fh.read(chunk, got, n - got, pos - n + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < n) chunk.fill(0x20, got); // file shrank (truncation) under us: treat as blanks
    pos -= n;
    acc = acc.length ? Buffer.concat([chunk, acc]) : chunk;
  }
}

/**
 * Where reading must start so that the last `tail` entries passing the filter come out:
 * a file index and byte offset. Counting happens after filtering (the last N stderr
 * lines, the last N since T), which is what people mean; Docker counts raw lines first.
 */
async function tailStart(files: LogFile[], sizes: number[], tail: number, filter: EntryFilter, budget: Budget): Promise<{ index: number; offset: number }> {
  const last = files.length - 1;
  if (tail <= 0) {
    // Only new output: start after the last complete line (a half-written record is new).
    for await (const { offset, line } of linesBackward(files[last].fh, sizes[last])) return { index: last, offset: offset + line.length + 1 };
    return { index: last, offset: 0 };
  }
  let count = 0;
  for (let i = last; i >= 0; i--) {
    for await (const { offset, line } of linesBackward(files[i].fh, sizes[i])) {
      const p = parseRecord(line, files[i].name, budget);
      if (!p || !filter.stream(p.entry.stream) || !filter.time(p.ns)) continue;
      if (++count === tail) return { index: i, offset };
    }
  }
  return { index: 0, offset: 0 };
}

/** 'stop' once a follower passes `until`. */
type Verdict = LogEntry | 'skip' | 'stop';

function judge(line: Buffer, file: LogFile, filter: EntryFilter, follow: boolean, budget: Budget): Verdict {
  const p = parseRecord(line, file.name, budget);
  if (!p) return 'skip';
  if (follow && filter.pastUntil(p.ns)) return 'stop';
  if (!filter.stream(p.entry.stream) || !filter.time(p.ns)) return 'skip';
  return p.entry;
}

/**
 * Streams a container's json-file log.
 *
 * - Files are read oldest first; a torn last line (crash, or a record being written in
 *   non-follow mode) and malformed lines are skipped with a debug log.
 * - `tail` scans backwards from the end, so its cost is the tail, not the file.
 * - `follow` keeps yielding as the helper appends, across rotations and truncations,
 *   until `signal` aborts (ends quietly), `stopWhen` resolves (the container exited:
 *   what is in the files then is still delivered), or `until` passes.
 */
export async function* readJsonFileLog(path: string, maxFiles: number, opts: LogsOptions, signal?: AbortSignal, stopWhen?: Promise<void>): AsyncGenerator<LogEntry, void, undefined> {
  const filter = entryFilter(opts);
  if (!filter.any || signal?.aborted) return;
  const follow = opts.follow;
  const budget: Budget = { left: 20 };
  let files = await openChain(path, maxFiles);
  let cur: Cursor | undefined;
  let watcher: FSWatcher | undefined;
  let disposeStops: (() => void) | undefined;
  try {
    // Start watching before the first read so an append in between wakes us.
    const waker = new Waker();
    const state = { stopping: false };
    if (follow) {
      const base = basename(path);
      try {
        watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
          if (!name || name === base || name.startsWith(base + '.')) waker.wake();
        });
        watcher.on('error', () => { watcher?.close(); watcher = undefined; });
      } catch { watcher = undefined; }
      disposeStops = watchStops(waker, state, signal, stopWhen, filter.untilNs);
    }

    // Files that are complete (rotated) are read to their end; reads of the live file
    // stop at the size seen now unless following, so one request is one snapshot.
    const sizes = await Promise.all(files.map(async (f) => (await f.fh.stat()).size));
    let start = { index: 0, offset: 0 };
    // A negative tail is Docker's "all".
    if (opts.tail !== undefined && opts.tail >= 0 && files.length > 0) {
      if (opts.tail === 0 && !follow) return;
      start = await tailStart(files, sizes, Math.floor(opts.tail), filter, budget);
    }
    await closeAll(files.slice(0, start.index));
    files = files.slice(start.index);
    sizes.splice(0, start.index);

    for (let i = 0; i < files.length; i++) {
      const c = new Cursor(files[i], i === 0 ? start.offset : 0);
      const isLast = i === files.length - 1;
      if (isLast && follow) { cur = c; break; }
      for (let lines; (lines = await c.next(sizes[i])); ) {
        for (const line of lines) {
          if (signal?.aborted) return;
          const v = judge(line, c.file, filter, follow, budget);
          if (v === 'stop') return;
          if (v !== 'skip') yield v;
        }
      }
      const torn = c.dropPartial();
      if (torn) log.debug('skipping torn last line', { file: c.file.name, bytes: torn });
      await c.file.fh.close().catch(() => undefined);
    }
    files = [];
    if (!follow) return;

    // Follow. Each pass: drain the current file, then look at what PATH is now.
    async function* drain(c: Cursor): AsyncGenerator<LogEntry, boolean, undefined> {
      for (let lines; (lines = await c.next()); ) {
        for (const line of lines) {
          if (signal?.aborted) return true;
          const v = judge(line, c.file, filter, true, budget);
          if (v === 'stop') return true;
          if (v !== 'skip') yield v;
        }
      }
      return false;
    }

    while (!signal?.aborted) {
      // Read the flag before draining: whatever was written before the stop is read.
      const finishing = state.stopping;
      if (cur && (yield* drain(cur))) return;
      const live = await stat(path).catch(() => undefined);
      if (live && (!cur || live.ino !== cur.file.ino || live.dev !== cur.file.dev)) {
        // Rotated (or first created). The helper stops writing the old file once it has
        // renamed it, so drain it, then continue with every newer file in order.
        const next = await openChain(path, maxFiles, cur?.file);
        if (next.length > 0) {
          if (cur) {
            if (yield* drain(cur)) { await closeAll(next); return; }
            const torn = cur.dropPartial();
            if (torn) log.debug('skipping torn last line', { file: cur.file.name, bytes: torn });
            await cur.file.fh.close().catch(() => undefined);
            cur = undefined;
          }
          files = next;
          while (files.length > 1) {
            const c = new Cursor(files.shift()!, 0);
            try {
              if (yield* drain(c)) return;
            } finally { await c.file.fh.close().catch(() => undefined); }
          }
          cur = new Cursor(files.shift()!, 0);
          continue;
        }
      } else if (cur) {
        const st = await cur.file.fh.stat();
        if (st.size < cur.pos) { cur.restart(); continue; }
      }
      if (finishing) return;
      await waker.wait(POLL_MS);
    }
  } finally {
    disposeStops?.();
    watcher?.close();
    await closeAll(files);
    if (cur) await cur.file.fh.close().catch(() => undefined);
  }
}
