import { humanSize as decimalSize } from '../util/human';

// Progress messages in the shape of Docker's JSON message stream. The image service
// reports through a callback; only the API layer decides how they travel (HTTP chunks,
// MQTT status), and only the CLI decides how they are drawn.

export interface ProgressMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
  /** Build-style output line, used by `load` ("Loaded image: ...\n"). */
  stream?: string;
}

export type ProgressSink = (msg: ProgressMessage) => void;

export const noProgress: ProgressSink = () => {};

/** Docker's progress sizes: go-units HumanSize, four significant digits ("4.261MB"). */
export function humanSize(bytes: number): string {
  return decimalSize(bytes, 4);
}

/** The text bar Docker puts in `progress`, for clients that print it verbatim. */
export function renderBar(current: number, total: number, width = 50): string {
  if (!(total > 0)) return `${humanSize(current)}`;
  const ratio = Math.min(1, current / total);
  const filled = Math.floor(ratio * width);
  const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? (filled >= width ? '=' : '>') : '') + ' '.repeat(width - filled);
  return `[${bar}] ${humanSize(current)}/${humanSize(total)}`;
}

/** Limits per-layer updates so a router is not busy writing progress chunks. */
export function throttled(sink: ProgressSink, intervalMs = 100): (msg: ProgressMessage, force?: boolean) => void {
  let last = 0;
  return (msg, force = false) => {
    const now = Date.now();
    if (!force && now - last < intervalMs) return;
    last = now;
    sink(msg);
  };
}

/** The 12-hex short id Docker uses for layers and images in progress and tables. */
export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}
