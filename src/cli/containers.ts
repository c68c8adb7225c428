// Helpers shared by the container commands: acting on several names with docker's
// per-name error reporting, and the size and duration parsing docker's flags use.
import { BerthError } from '../util/errors';
import { printError, type CliContext } from './command';

/**
 * Runs `action` for each name; a failure is printed and the others still run, and the
 * exit status is 1 if any failed (docker's behaviour). A dead daemon ends the run.
 */
export async function forEachName(ctx: CliContext, names: string[], action: (name: string) => Promise<void>): Promise<number> {
  let failed = false;
  for (const name of names) {
    try {
      await action(name);
    } catch (err) {
      if (err instanceof BerthError && err.code === 'ECONNECT') throw err;
      printError(ctx.stderr, err);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

export function requireArgs(ctx: CliContext, positionals: string[], min: number, max = Infinity): void {
  const what = min === max ? `exactly ${min} argument${min === 1 ? '' : 's'}` : max === Infinity ? `at least ${min} argument${min === 1 ? '' : 's'}` : `at most ${max} argument${max === 1 ? '' : 's'}`;
  if (positionals.length < min || positionals.length > max) throw new BerthError('EINVAL', `"${ctx.commandName}" requires ${what}`);
}

/** Docker's RAMInBytes: "512m", "1g", "1024k", "100b", plain bytes; binary units. */
export function parseMemory(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgtp]?)i?b?$/i.exec(value.trim());
  if (!m) throw new BerthError('EINVAL', `invalid argument "${value}" for "${flag}" flag: invalid size: '${value}'`);
  const power = ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
  return Math.round(Number(m[1]) * 1024 ** Math.max(0, power));
}

/** --cpus 1.5 -> NanoCpus. */
export function parseCpus(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new BerthError('EINVAL', `invalid argument "${value}" for "--cpus" flag: failed to parse ${value} as a rational number`);
  return Math.round(n * 1e9);
}

/** Docker's restart policy syntax: no | always | unless-stopped | on-failure[:N]. */
export function parseRestartPolicy(value: string): { Name: 'no' | 'always' | 'on-failure' | 'unless-stopped'; MaximumRetryCount: number } {
  const [name, count] = value.split(':');
  if (name === 'no' || name === 'always' || name === 'unless-stopped') {
    if (count !== undefined) throw new BerthError('EINVAL', `invalid restart policy format: maximum retry count cannot be used with restart policy '${name}'`);
    return { Name: name, MaximumRetryCount: 0 };
  }
  if (name === 'on-failure') {
    const n = count === undefined ? 0 : Number(count);
    if (!Number.isInteger(n) || n < 0) throw new BerthError('EINVAL', `invalid restart policy format: maximum retry count must be an integer`);
    return { Name: 'on-failure', MaximumRetryCount: n };
  }
  throw new BerthError('EINVAL', `invalid restart policy '${value}'`);
}

const DURATION_UNITS_NS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go's time.ParseDuration ("5s", "1m30s", "1.5h", "250ms", "0") -> nanoseconds, as docker's duration flags take. */
export function parseGoDuration(value: string, flag: string): number {
  const invalid = () => new BerthError('EINVAL', `invalid argument "${value}" for "${flag}" flag: time: invalid duration "${value}"`);
  const m = /^([-+]?)(.*)$/s.exec(value)!;
  const body = m[2]!;
  if (body === '0') return 0;
  if (body === '') throw invalid();
  let total = 0;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let at = 0;
  while (at < body.length) {
    part.lastIndex = at;
    const p = part.exec(body);
    if (!p) throw invalid();
    total += Number(p[1]) * DURATION_UNITS_NS[p[2]!]!;
    at = part.lastIndex;
  }
  return Math.round(m[1] === '-' ? -total : total);
}

/** Docker's "since"/"until" flags: durations ("10m", "1h30m") before now, or timestamps passed through. */
export function parseSinceUntil(value: string | undefined, now = Date.now()): string | undefined {
  if (value === undefined || value === '') return undefined;
  const duration = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$/.exec(value);
  if (duration && (duration[1] || duration[2] || duration[3])) {
    const ms = (Number(duration[1] ?? 0) * 3600 + Number(duration[2] ?? 0) * 60 + Number(duration[3] ?? 0)) * 1000;
    return ((now - ms) / 1000).toFixed(9);
  }
  if (/^\d+(\.\d+)?$/.test(value)) return value;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new BerthError('EINVAL', `invalid value for timestamp: "${value}"`);
  return (t / 1000).toFixed(9);
}

/** Reads a raw response body as JSON, after the caller has checked the status. */
export async function readJson<T>(res: NodeJS.ReadableStream): Promise<T> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
}
