// Output helpers that match docker's look: tab-aligned tables, decimal human sizes
// ("4.26MB"), binary sizes ("1.944GiB") and relative times ("3 minutes ago").

export { formatG, humanSize, binarySize, humanDuration } from '../util/human';
import { humanDuration } from '../util/human';

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
