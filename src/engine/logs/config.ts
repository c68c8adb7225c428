// HostConfig.LogConfig -> what the engine hands the helper (json-file) or keeps in RAM
// (local). Defaults are small because the log usually lives on the router's flash.
import { BerthError } from '../../util/errors';

export type LogDriver = 'json-file' | 'local' | 'none';

export const DEFAULT_LOG_MAX_BYTES = 1024 * 1024;
export const DEFAULT_LOG_MAX_FILES = 2;

// Docker's own json-file/local options that berth cannot honour (compress, labels,
// tag, ...) are rejected rather than silently ignored, so nobody relies on them.
const OPTIONS: Record<LogDriver, readonly string[]> = {
  'json-file': ['max-size', 'max-file'],
  // max-file means nothing for a RAM ring, but Docker accepts it for `local`, so do we.
  local: ['max-size', 'max-file'],
  none: [],
};

const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/**
 * Docker's size syntax: "1024", "10k", "5m", "1g", "1.5m", optional "b" and a space.
 * Like Docker (go-units FromHumanSize) the letters are decimal; an explicit "i"
 * ("10ki", "5MiB") is taken as binary, which Docker does not distinguish.
 */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?) ?([kmgt]?)(i?)b?$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = m[2].toLowerCase();
  const mult = m[3] && unit ? 1024 ** ('kmgt'.indexOf(unit) + 1) : UNITS[unit];
  return Math.floor(Number(m[1]) * mult);
}

export function parseLogConfig(config: { Type?: string; Config?: Record<string, string> } | undefined | null): { driver: LogDriver; maxBytes: number; maxFiles: number } {
  const type = config?.Type || 'json-file';
  if (!(type in OPTIONS)) {
    throw new BerthError('EINVAL', `logging driver "${type}" is not supported (use json-file, local or none)`);
  }
  const driver = type as LogDriver;
  let maxBytes = DEFAULT_LOG_MAX_BYTES;
  let maxFiles = DEFAULT_LOG_MAX_FILES;
  for (const [key, raw] of Object.entries(config?.Config ?? {})) {
    if (!OPTIONS[driver].includes(key)) throw new BerthError('EINVAL', `unknown log opt '${key}' for ${driver} log driver`);
    const value = String(raw);
    if (key === 'max-size') {
      const size = parseSize(value);
      if (size === undefined || size <= 0) throw new BerthError('EINVAL', `invalid log opt max-size '${value}': must be a positive size such as 10k, 5m or 1g`);
      maxBytes = size;
    } else if (key === 'max-file') {
      const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n) || n < 1) throw new BerthError('EINVAL', `invalid log opt max-file '${value}': must be a whole number of at least 1`);
      maxFiles = n;
    }
  }
  if (driver === 'none') return { driver, maxBytes: 0, maxFiles: 0 };
  // The ring is a single buffer: there are no files.
  if (driver === 'local') return { driver, maxBytes, maxFiles: 1 };
  return { driver, maxBytes, maxFiles };
}
