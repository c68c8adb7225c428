// Output helpers that match docker's look: tab-aligned tables, decimal human sizes
// ("4.26MB"), binary sizes ("1.944GiB") and relative times ("3 minutes ago").

/** Go's %.<precision>g: shortest of fixed/exponent form, trailing zeros dropped. */
export function formatG(value: number, precision: number): string {
  if (value === 0) return '0';
  if (!Number.isFinite(value)) return String(value);
  const exp = Math.floor(Math.log10(Math.abs(Number(value.toPrecision(precision)))));
  if (exp < -4 || exp >= precision) {
    const [mantissa, e] = value.toExponential(precision - 1).split('e');
    const m = mantissa!.includes('.') ? mantissa!.replace(/\.?0+$/, '') : mantissa!;
    const n = Number(e);
    return `${m}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  const fixed = value.toFixed(Math.max(0, precision - 1 - exp));
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

function scaled(size: number, base: number, units: string[], precision: number): string {
  let i = 0;
  while (size >= base && i < units.length - 1) { size /= base; i++; }
  return `${formatG(size, precision)}${units[i]}`;
}

/** Decimal size as `docker images` prints it: 4.26MB, 983kB, 1.2GB. */
export function humanSize(bytes: number, precision = 3): string {
  return scaled(bytes, 1000, DECIMAL_UNITS, precision);
}

/** Binary size as `docker info` prints memory: 1.944GiB. */
export function binarySize(bytes: number): string {
  return scaled(bytes, 1024, BINARY_UNITS, 4);
}

/** Docker's human duration: "Less than a second", "About a minute", "3 hours", "2 weeks". */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

/** "3 minutes ago" for a time given as unix seconds, a Date or an RFC 3339 string. */
export function timeAgo(when: number | Date | string, now: number = Date.now()): string {
  const t = typeof when === 'number' ? when * 1000 : new Date(when).getTime();
  if (!Number.isFinite(t) || t <= 0) return 'N/A';
  return `${humanDuration(Math.max(0, now - t))} ago`;
}

/** Display width of a string (code points; good enough for names and tags). */
function width(s: string): number {
  return [...s].length;
}

export interface TableOptions {
  /** Minimum column width including padding (docker uses 10 for images). */
  minWidth?: number;
  /** Spaces after the widest cell of each column (docker uses 3). */
  padding?: number;
}

/** Rows aligned like docker's tabwriter: every column but the last padded; no trailing spaces. */
export function formatTable(headers: readonly string[] | undefined, rows: ReadonlyArray<readonly string[]>, options: TableOptions = {}): string {
  const minWidth = options.minWidth ?? 10;
  const padding = options.padding ?? 3;
  const all = headers ? [headers, ...rows] : [...rows];
  const columns = Math.max(0, ...all.map((r) => r.length));
  const widths: number[] = [];
  for (let c = 0; c < columns - 1; c++) {
    widths[c] = Math.max(minWidth, ...all.map((r) => width(r[c] ?? '') + padding));
  }
  return all.map((row) => row.map((cell, c) => (c < row.length - 1 ? cell + ' '.repeat(widths[c]! - width(cell)) : cell)).join('').trimEnd() + '\n').join('');
}

/** Shortens a "sha256:<hex>" id to docker's 12 hex characters. */
export function shortId(id: string): string {
  const hex = id.startsWith('sha256:') ? id.slice(7) : id;
  return hex.slice(0, 12);
}

/** Go template `{{json .}}`, the one --format that commands support so far. */
export function isJsonFormat(format: string | undefined): boolean {
  return format !== undefined && /^\s*\{\{\s*json\s+\.\s*\}\}\s*$/.test(format);
}

/**
 * A tiny subset of Go templates for --format: `{{json .}}`, `{{.Field.Sub}}` and
 * `{{json .Field}}` mixed with literal text, `\n` and `\t` escapes. Enough for scripts.
 */
export function renderFormat(format: string, value: unknown): string {
  const lookup = (path: string): unknown => {
    if (path === '.') return value;
    let cur: unknown = value;
    for (const key of path.replace(/^\./, '').split('.')) {
      if (cur === null || typeof cur !== 'object') return undefined;
      cur = (cur as Record<string, unknown>)[key];
    }
    return cur;
  };
  const text = format.replace(/\\n/g, '\n').replace(/\\t/g, '\t');
  return text.replace(/\{\{\s*(json\s+)?(\.[A-Za-z0-9_.]*)\s*\}\}/g, (_, json: string | undefined, path: string) => {
    const v = lookup(path);
    if (json) return JSON.stringify(v ?? null);
    if (v === undefined || v === null) return '<no value>';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}
