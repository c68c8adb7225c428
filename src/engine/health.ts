// Docker's container health checks: the Healthcheck config (merge with the image's,
// validation), the status rules (starting/healthy/unhealthy, retries, start period) and a
// per-container monitor that runs the probe on a timer. The engine supplies the probe (an
// exec in the container) and the timers, so the rules are unit-testable without a kernel.
import { BerthError } from '../util/errors';

/** Docker's HealthConfig; durations in nanoseconds, 0 = inherit from the image / default. */
export interface HealthConfig {
  Test?: string[] | null;
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthResult { Start: string; End: string; ExitCode: number; Output: string }

/** State.Health as inspect shows it. */
export interface HealthState { Status: HealthStatus; FailingStreak: number; Log: HealthResult[] }

const MS = 1_000_000;
const MINIMUM_DURATION_NS = 1 * MS;
export const DEFAULT_INTERVAL_MS = 30_000;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_START_INTERVAL_MS = 5_000;
export const DEFAULT_RETRIES = 3;
/** Docker keeps this many results, and this many bytes of each probe's output. */
export const MAX_LOG_ENTRIES = 5;
export const MAX_OUTPUT_BYTES = 4096;

const DURATION_FIELDS = ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const;

/** Go's time.Duration.String(), which Docker's messages use: "30s", "1m30s", "500ms", "1.5s". */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const sign = ns < 0 ? '-' : '';
  ns = Math.abs(Math.round(ns));
  const trim = (n: number, unit: number, digits: number) => (n / unit).toFixed(digits).replace(/\.?0+$/, '');
  if (ns < 1000) return `${sign}${ns}ns`;
  if (ns < MS) return `${sign}${trim(ns, 1000, 3)}µs`;
  if (ns < 1000 * MS) return `${sign}${trim(ns, MS, 6)}ms`;
  let out = '';
  const hours = Math.floor(ns / (3600 * 1000 * MS));
  ns -= hours * 3600 * 1000 * MS;
  const minutes = Math.floor(ns / (60 * 1000 * MS));
  ns -= minutes * 60 * 1000 * MS;
  if (hours) out += `${hours}h`;
  if (hours || minutes) out += `${minutes}m`;
  return `${sign}${out}${trim(ns, 1000 * MS, 9)}s`;
}

/** Rejects what Docker's create rejects, in Docker's words; null/undefined is "not given". */
export function validateHealthConfig(input: unknown): HealthConfig | undefined {
  if (input === undefined || input === null) return undefined;
  if (typeof input !== 'object' || Array.isArray(input)) throw new BerthError('EINVAL', 'Healthcheck must be an object');
  const hc = input as Record<string, unknown>;
  const test = hc.Test;
  if (test !== undefined && test !== null && (!Array.isArray(test) || !test.every((t) => typeof t === 'string'))) {
    throw new BerthError('EINVAL', 'Test in Healthcheck must be a list of strings');
  }
  for (const field of [...DURATION_FIELDS, 'Retries'] as const) {
    const value = hc[field];
    if (value !== undefined && value !== null && (typeof value !== 'number' || !Number.isInteger(value))) {
      throw new BerthError('EINVAL', `${field} in Healthcheck must be an integer`);
    }
  }
  const config: HealthConfig = {};
  if (Array.isArray(test)) config.Test = test as string[];
  for (const field of DURATION_FIELDS) {
    const value = (hc[field] as number | undefined) ?? 0;
    if (value !== 0 && value < MINIMUM_DURATION_NS) throw new BerthError('EINVAL', `${field} in Healthcheck cannot be less than ${goDuration(MINIMUM_DURATION_NS)}`);
    if (value) config[field] = value;
  }
  const retries = (hc.Retries as number | undefined) ?? 0;
  if (retries < 0) throw new BerthError('EINVAL', 'Retries in Healthcheck cannot be negative');
  if (retries) config.Retries = retries;
  const kind = config.Test?.[0];
  if (kind !== undefined && !['NONE', 'CMD', 'CMD-SHELL'].includes(kind)) {
    throw new BerthError('EINVAL', `unknown type '${kind}' in Healthcheck Test (expected NONE, CMD or CMD-SHELL)`);
  }
  if ((kind === 'CMD' || kind === 'CMD-SHELL') && config.Test!.length < 2) throw new BerthError('EINVAL', `Healthcheck Test ${kind} needs a command`);
  return config;
}

/** Docker's merge: the request's fields win, its zero values (and an empty Test) take the image's. */
export function mergeHealthConfig(user: HealthConfig | undefined, image: HealthConfig | null | undefined): HealthConfig | undefined {
  if (!user) return image ? { ...image } : undefined;
  if (!image) return { ...user };
  const merged: HealthConfig = { ...user };
  if (!merged.Test?.length && image.Test?.length) merged.Test = image.Test;
  for (const field of [...DURATION_FIELDS, 'Retries'] as const) if (!merged[field] && image[field]) merged[field] = image[field];
  return merged;
}

/** The argv the probe runs, or undefined when the config checks nothing (none, NONE, no Test). */
export function probeCommand(config: HealthConfig | undefined): string[] | undefined {
  const test = config?.Test;
  if (!test?.length) return undefined;
  if (test[0] === 'CMD' && test.length > 1) return test.slice(1);
  // Docker joins the rest for CMD-SHELL ["CMD-SHELL", "a", "b"] the same way.
  if (test[0] === 'CMD-SHELL' && test.length > 1) return ['/bin/sh', '-c', test.slice(1).join(' ')];
  return undefined;
}

export interface HealthTiming { intervalMs: number; timeoutMs: number; startPeriodMs: number; startIntervalMs: number; retries: number }

export function healthTiming(config: HealthConfig): HealthTiming {
  const ms = (ns: number | undefined, fallback: number) => (ns && ns > 0 ? ns / MS : fallback);
  return {
    intervalMs: ms(config.Interval, DEFAULT_INTERVAL_MS),
    timeoutMs: ms(config.Timeout, DEFAULT_TIMEOUT_MS),
    startPeriodMs: ms(config.StartPeriod, 0),
    startIntervalMs: ms(config.StartInterval, DEFAULT_START_INTERVAL_MS),
    retries: config.Retries && config.Retries > 0 ? config.Retries : DEFAULT_RETRIES,
  };
}

/**
 * Adds a result and applies Docker's rules: success is healthy and clears the streak; a
 * failure inside the start period while still starting does not count; `retries`
 * consecutive counted failures make it unhealthy. Returns whether the status changed.
 */
export function recordHealthResult(state: HealthState, result: HealthResult, timing: HealthTiming, startedMs: number): boolean {
  const before = state.Status;
  state.Log.push(result);
  if (state.Log.length > MAX_LOG_ENTRIES) state.Log.splice(0, state.Log.length - MAX_LOG_ENTRIES);
  if (result.ExitCode === 0) {
    state.FailingStreak = 0;
    state.Status = 'healthy';
  } else {
    const inStartPeriod = state.Status === 'starting' && Date.parse(result.Start) - startedMs < timing.startPeriodMs;
    if (!inStartPeriod) {
      state.FailingStreak++;
      if (state.FailingStreak >= timing.retries) state.Status = 'unhealthy';
    }
  }
  return state.Status !== before;
}

/** A probe's combined stdout and stderr, cut at Docker's limit with "..." to show the cut. */
export class LimitedOutput {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;

  write(chunk: Buffer | string): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const keep = Math.min(MAX_OUTPUT_BYTES - this.size, buf.length);
    if (keep > 0) { this.chunks.push(buf.subarray(0, keep)); this.size += keep; }
    if (keep < buf.length) this.truncated = true;
  }

  toString(): string {
    return Buffer.concat(this.chunks).toString('utf8') + (this.truncated ? '...' : '');
  }
}

/** Runs the check once; rejects (or resolves late) when `signal` aborts it. */
export type HealthProbe = (command: string[], signal: AbortSignal) => Promise<{ exitCode: number; output: string }>;

export interface HealthTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers that never keep the daemon alive on their own. */
export const realTimers: HealthTimers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000000Z');

export interface HealthMonitorOptions {
  config: HealthConfig;
  command: string[];
  /** Mutated in place: it is the container record's State.Health. */
  state: HealthState;
  /** When the container started (the start period counts from here). */
  startedMs: number;
  probe: HealthProbe;
  /** Called after every result; `changed` when the status moved (event and save time). */
  onResult(changed: boolean): void;
  timers?: HealthTimers;
}

/**
 * Runs the probe one interval after start and one interval after each result (the start
 * interval while starting inside the start period). A probe that outlives the timeout is
 * aborted and counts as a failure. After stop() nothing runs and late results are dropped.
 */
export class HealthMonitor {
  private readonly timing: HealthTiming;
  private readonly timers: HealthTimers;
  private timer: unknown;
  private inFlight?: AbortController;
  private stopped = false;

  constructor(private readonly opts: HealthMonitorOptions) {
    this.timing = healthTiming(opts.config);
    this.timers = opts.timers ?? realTimers;
  }

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.abort();
    this.inFlight = undefined;
  }

  private nextDelay(): number {
    const { intervalMs, startPeriodMs, startIntervalMs } = this.timing;
    const inStartPeriod = this.timers.now() - this.opts.startedMs < startPeriodMs;
    return inStartPeriod && this.opts.state.Status === 'starting' ? startIntervalMs : intervalMs;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.timers.setTimeout(() => { this.timer = undefined; void this.check(); }, this.nextDelay());
  }

  private async check(): Promise<void> {
    if (this.stopped) return;
    const abort = new AbortController();
    this.inFlight = abort;
    const start = this.timers.now();
    const timeoutMs = this.timing.timeoutMs;
    let timer: unknown;
    const timedOut = new Promise<'timeout'>((resolve) => { timer = this.timers.setTimeout(() => resolve('timeout'), timeoutMs); });
    const probe = this.opts.probe(this.opts.command, abort.signal).then(
      (r) => ({ ExitCode: r.exitCode, Output: r.output }),
      (err: unknown) => ({ ExitCode: -1, Output: err instanceof Error ? err.message : String(err) }),
    );
    const outcome = await Promise.race([probe, timedOut]);
    this.timers.clearTimeout(timer);
    if (outcome === 'timeout') abort.abort();
    if (this.stopped || this.inFlight !== abort) return;
    this.inFlight = undefined;
    const result: HealthResult = outcome === 'timeout'
      ? { Start: rfc3339(start), End: rfc3339(this.timers.now()), ExitCode: -1, Output: `Health check exceeded timeout (${goDuration(timeoutMs * MS)})` }
      : { Start: rfc3339(start), End: rfc3339(this.timers.now()), ...outcome };
    const changed = recordHealthResult(this.opts.state, result, this.timing, this.opts.startedMs);
    try { this.opts.onResult(changed); } finally { this.schedule(); }
  }
}

/** The "(healthy)" part of ps's Status; Docker says "health: starting" while starting. */
export function healthStatusText(state: HealthState): string {
  return state.Status === 'starting' ? 'health: starting' : state.Status;
}

export const HEALTH_FILTER_VALUES = ['starting', 'healthy', 'unhealthy', 'none'] as const;
