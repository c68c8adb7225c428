// The `local` log driver: the newest output of a container kept in daemon RAM, never on
// flash. The daemon feeds it from an attach stream it holds for the container's life.
//
// By design the ring is lost when the daemon restarts (and output produced while no
// daemon was attached is never seen): this driver trades history for zero flash wear.
// Use json-file when logs must survive a restart.
import type { AttachStream } from '../../runtime/types';
import { BerthError } from '../../util/errors';
import type { LogEntry, LogsOptions } from '../types';
import { DEFAULT_LOG_MAX_BYTES } from './config';
import { entryFilter, formatTimeNanos, nowNanos, parseTimeNanos, Waker, watchStops } from './common';

// Counted per entry on top of its bytes, so a flood of tiny lines cannot hold far more
// RAM than maxBytes in object and Buffer headers.
const ENTRY_OVERHEAD = 64;
// Docker and the helper split lines at 16 KiB; do the same so entries look alike.
const MAX_LINE = 16 * 1024;

interface Item { seq: number; ns: bigint; cost: number; entry: LogEntry }

export class RingLog {
  private items: Array<Item | undefined> = [];
  private head = 0;
  private nextSeq = 0;
  private used = 0;
  private readonly wakers = new Set<Waker>();

  constructor(readonly maxBytes: number = DEFAULT_LOG_MAX_BYTES) {
    if (!(maxBytes > 0)) throw new BerthError('EINVAL', `invalid log ring size ${maxBytes}`);
  }

  /** Bytes accounted for the entries held now (line + time + a fixed overhead each). */
  get bytes(): number { return this.used; }
  get length(): number { return this.items.length - this.head; }

  /** Keeps a copy of the entry; the oldest entries go once maxBytes is passed (the newest one always stays). */
  append(entry: LogEntry): void {
    // Copy: the caller's buffer is often a view into a larger chunk that we must not pin.
    const line = Buffer.from(entry.line);
    const ns = parseTimeNanos(entry.time) ?? nowNanos();
    const cost = line.length + entry.time.length + ENTRY_OVERHEAD;
    this.items.push({ seq: this.nextSeq++, ns, cost, entry: { stream: entry.stream, line, time: entry.time } });
    this.used += cost;
    while (this.used > this.maxBytes && this.length > 1) {
      this.used -= this.items[this.head]!.cost;
      this.items[this.head++] = undefined;
    }
    // Compact now and then rather than shifting on every eviction.
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0; }
    for (const w of this.wakers) w.wake();
  }

  private firstSeq(): number { return this.nextSeq - this.length; }
  private at(seq: number): Item { return this.items[this.head + (seq - this.firstSeq())]!; }

  /**
   * Entries in order, filtered like json-file (tail counts entries that pass the
   * filter). Following, a reader that falls behind further than the ring holds skips
   * the lost entries rather than buffering for it.
   */
  async *read(opts: LogsOptions, signal?: AbortSignal, stopWhen?: Promise<void>): AsyncGenerator<LogEntry, void, undefined> {
    const filter = entryFilter(opts);
    if (!filter.any || signal?.aborted) return;
    let next = this.firstSeq();
    if (opts.tail !== undefined && opts.tail >= 0) {
      next = this.nextSeq;
      let count = 0;
      for (let seq = this.nextSeq - 1; seq >= this.firstSeq() && count < Math.floor(opts.tail); seq--) {
        const item = this.at(seq);
        if (filter.stream(item.entry.stream) && filter.time(item.ns)) { count++; next = seq; }
      }
    }
    const waker = new Waker();
    const state = { stopping: false };
    let dispose: (() => void) | undefined;
    if (opts.follow) {
      this.wakers.add(waker);
      dispose = watchStops(waker, state, signal, stopWhen, filter.untilNs);
    }
    try {
      for (;;) {
        const finishing = state.stopping;
        while (next < this.nextSeq) {
          if (signal?.aborted) return;
          next = Math.max(next, this.firstSeq());
          const item = this.at(next++);
          if (opts.follow && filter.pastUntil(item.ns)) return;
          if (filter.stream(item.entry.stream) && filter.time(item.ns)) yield item.entry;
        }
        if (!opts.follow || finishing || signal?.aborted) return;
        await waker.wait(60_000);
      }
    } finally {
      this.wakers.delete(waker);
      dispose?.();
    }
  }
}

/**
 * Feeds a ring from an attach stream: one entry per line (newline kept), stamped on
 * arrival; a line longer than 16 KiB is cut into pieces, and an unfinished last line
 * is kept when the stream ends. Resolves once both streams have ended (or the attach
 * closed and they had a moment to deliver what they still buffer).
 */
export async function feedFromAttach(attach: AttachStream, ring: RingLog): Promise<void> {
  const flushers: Array<() => void> = [];
  const pump = (source: NodeJS.ReadableStream, stream: 'stdout' | 'stderr') => new Promise<void>((resolve) => {
    let parts: Buffer[] = [];
    let pending = 0;
    const emit = () => {
      if (pending === 0) return;
      const line = parts.length === 1 ? parts[0] : Buffer.concat(parts, pending);
      parts = [];
      pending = 0;
      ring.append({ stream, line, time: formatTimeNanos(nowNanos()) });
    };
    flushers.push(emit);
    source.on('data', (chunk: Buffer | string) => {
      const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      let start = 0;
      while (start < data.length) {
        const nl = data.indexOf(0x0a, start);
        const end = Math.min(nl < 0 ? data.length : nl + 1, start + MAX_LINE - pending);
        parts.push(data.subarray(start, end));
        pending += end - start;
        start = end;
        if (data[end - 1] === 0x0a || pending >= MAX_LINE) emit();
      }
    });
    let done = false;
    const finish = () => { if (done) return; done = true; emit(); resolve(); };
    source.once('end', finish);
    source.once('close', finish);
    source.once('error', finish);
  });
  const both = Promise.all([pump(attach.stdout, 'stdout'), pump(attach.stderr, 'stderr')]);
  // A TTY attach may never end its (unused) stderr: the attach closing is the end too.
  const closed = attach.closed.then(() => new Promise<void>((r) => setTimeout(r, 100)), () => undefined);
  await Promise.race([both, closed]);
  for (const flush of flushers) flush();
}
