// Pieces both log drivers share: RFC 3339 times as integer nanoseconds (a JS number
// cannot hold unix nanoseconds exactly), the since/until/stream filter, and a small
// wake-up primitive for followers.
import type { LogEntry, LogsOptions } from '../types';

const NS = 1_000_000_000n;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/** Unix nanoseconds of an RFC 3339 time (any offset, up to 9 fraction digits), or undefined. */
export function parseTimeNanos(text: string): bigint | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (!Number.isFinite(ms)) return undefined;
  let seconds = BigInt(ms / 1000);
  if (m[8]) {
    const offset = BigInt(Number(m[9]) * 3600 + Number(m[10]) * 60);
    seconds += m[8] === '+' ? -offset : offset;
  }
  return seconds * NS + (m[7] ? BigInt(m[7].padEnd(9, '0')) : 0n);
}

/** Docker's fixed-width RFC3339Nano (always 9 fraction digits, UTC), as `docker logs -t` prints. */
export function formatTimeNanos(ns: bigint): string {
  let seconds = ns / NS;
  let frac = ns % NS;
  if (frac < 0n) { frac += NS; seconds -= 1n; }
  const iso = new Date(Number(seconds) * 1000).toISOString();
  return `${iso.slice(0, 19)}.${frac.toString().padStart(9, '0')}Z`;
}

/**
 * Unix seconds (fractional) as nanoseconds. Goes through the number's shortest decimal
 * form so that 1700000000.5 means exactly .500000000, not the binary neighbour of it.
 */
export function secondsToNanos(seconds: number): bigint {
  const text = String(seconds);
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) return BigInt(Math.round(seconds * 1e9)); // exponent forms: far outside any real log
  const ns = BigInt(m[2]) * NS + BigInt((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
  return m[1] ? -ns : ns;
}

let lastNowNs = 0n;
/**
 * Current time for entries the daemon stamps itself. Date has millisecond resolution;
 * within one millisecond we count up by 1 ns so entries keep their order and a `since`
 * taken from one entry's time never re-includes the entries before it.
 */
export function nowNanos(): bigint {
  let ns = BigInt(Date.now()) * 1_000_000n;
  if (ns <= lastNowNs && lastNowNs - ns < 1_000_000n) ns = lastNowNs + 1n;
  lastNowNs = ns;
  return ns;
}

export interface EntryFilter {
  /** False when the caller asked for neither stream: nothing can match. */
  any: boolean;
  stream(s: string): boolean;
  /** Entry time passes since/until. */
  time(ns: bigint): boolean;
  /** Entry is after `until` (a follower stops there, as Docker's does). */
  pastUntil(ns: bigint): boolean;
  untilNs?: bigint;
}

/** Docker treats since/until of 0 as "not given"; since is inclusive, until inclusive. */
export function entryFilter(opts: LogsOptions): EntryFilter {
  const sinceNs = opts.since !== undefined && opts.since > 0 ? secondsToNanos(opts.since) : undefined;
  const untilNs = opts.until !== undefined && opts.until > 0 ? secondsToNanos(opts.until) : undefined;
  return {
    any: opts.stdout || opts.stderr,
    stream: (s) => (s === 'stdout' ? opts.stdout : s === 'stderr' ? opts.stderr : false),
    time: (ns) => (sinceNs === undefined || ns >= sinceNs) && (untilNs === undefined || ns <= untilNs),
    pastUntil: (ns) => untilNs !== undefined && ns > untilNs,
    untilNs,
  };
}

/** Milliseconds until the wall clock passes `until` (a follower must stop then even if silent). */
export function msUntil(untilNs: bigint): number {
  return Math.max(0, Number((untilNs - BigInt(Date.now()) * 1_000_000n) / 1_000_000n) + 1);
}

/**
 * A one-slot wake-up: wake() before wait() is remembered, so an event that lands while
 * the follower is busy reading is not lost.
 */
export class Waker {
  private pending = false;
  private release?: () => void;

  wake(): void {
    if (this.release) { const r = this.release; this.release = undefined; r(); } else this.pending = true;
  }

  wait(timeoutMs: number): Promise<void> {
    if (this.pending) { this.pending = false; return Promise.resolve(); }
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.release = undefined; resolve(); }, timeoutMs);
      this.release = () => { clearTimeout(timer); resolve(); };
    });
  }
}

/** Sets up the common stop conditions of a follower; returns a disposer. */
export function watchStops(waker: Waker, state: { stopping: boolean }, signal: AbortSignal | undefined, stopWhen: Promise<void> | undefined, untilNs: bigint | undefined): () => void {
  const onAbort = () => waker.wake();
  signal?.addEventListener('abort', onAbort, { once: true });
  const stop = () => { state.stopping = true; waker.wake(); };
  // A rejected stopWhen still means "no more output is coming".
  stopWhen?.then(stop, stop);
  // Beyond setTimeout's range (~24 days) only entries past `until` end the follow.
  const delay = untilNs !== undefined ? msUntil(untilNs) : undefined;
  const timer = delay !== undefined && delay <= 0x7fffffff ? setTimeout(stop, delay) : undefined;
  return () => {
    signal?.removeEventListener('abort', onAbort);
    if (timer) clearTimeout(timer);
  };
}

export type { LogEntry };
