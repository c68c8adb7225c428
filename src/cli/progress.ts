// Draws the daemon's JSON message streams (pull progress, load output) the way the
// docker CLI does. On a terminal each layer owns one line that is rewritten in place
// with ANSI cursor moves; elsewhere (pipes, logs, CI) only status changes are printed,
// one plain line each, and no escape sequence is ever written.
import type { IncomingMessage } from 'node:http';
import { DaemonError } from '../api/client';
import { ERROR_CODES, BerthError, codeForHttpStatus, type ErrorCode } from '../util/errors';
import { humanSize } from './format';

export interface JsonMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  /** The daemon's own rendering of the bar; we draw from progressDetail instead. */
  progress?: string;
  stream?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number; berthCode?: string };
  aux?: unknown;
}

const ESC = '\x1b[';
const cursorUp = (n: number): string => `${ESC}${n}A`;
const cursorDown = (n: number): string => `${ESC}${n}B`;
const CLEAR_LINE = `${ESC}2K`;

/** Docker draws the bar only on terminals wider than this; the numbers always. */
const BAR_MIN_COLUMNS = 111;
const BAR_WIDTH = 50;

/** True when a message carries a download or extract position worth a bar. */
function hasPosition(msg: JsonMessage): boolean {
  const d = msg.progressDetail;
  return !!d && ((d.current ?? 0) > 0 || (d.total ?? 0) > 0);
}

/** `[=====>     ]  1.245MB/3.4MB`, docker's bar; no bar on narrow terminals. */
export function progressBar(current: number, total: number | undefined, withBar = true): string {
  if (!total || total <= 0) return humanSize(current, 4).padStart(8);
  const filled = Math.min(BAR_WIDTH, Math.floor(Math.floor((current / total) * 100) / 2));
  const bar = withBar ? `[${'='.repeat(filled)}>${' '.repeat(BAR_WIDTH - filled)}] ` : '';
  const numbers = current > total ? '' : `${humanSize(current, 4).padStart(8)}/${humanSize(total, 4)}`;
  return bar + numbers;
}

/**
 * A layer line is a per-layer status that the terminal view redraws in place. The
 * "Pulling from" header also has an id (the tag) but is an ordinary line.
 */
function isLayerLine(msg: JsonMessage): boolean {
  if (!msg.id || msg.stream !== undefined) return false;
  return msg.progressDetail !== undefined || !(msg.status ?? '').startsWith('Pulling from ');
}

export class ProgressPrinter {
  /** Layer id -> its line number within the block being redrawn. */
  private lines = new Map<string, number>();

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly tty: boolean,
    private readonly columns?: number,
  ) {}

  print(msg: JsonMessage): void {
    if (msg.stream !== undefined) {
      this.lines.clear();
      this.out.write(msg.stream);
      return;
    }
    if (msg.status === undefined) return;
    if (!this.tty) {
      // Without a terminal a bar cannot be redrawn: print status changes only.
      if (hasPosition(msg)) return;
      this.out.write(`${msg.id ? `${msg.id}: ` : ''}${msg.status}\n`);
      return;
    }
    if (!isLayerLine(msg)) {
      // Anything else starts a new block, so older layer lines are never touched again.
      this.lines.clear();
      this.out.write(`${msg.id ? `${msg.id}: ` : ''}${msg.status}\n`);
      return;
    }
    const id = msg.id!;
    let line = this.lines.get(id);
    if (line === undefined) {
      line = this.lines.size;
      this.lines.set(id, line);
      this.out.write('\n');
    }
    // The cursor rests on the line below the block; climb to this layer's line and back.
    const distance = this.lines.size - line;
    let text = `${id}: ${msg.status}`;
    if (hasPosition(msg)) {
      const withBar = (this.columns ?? BAR_MIN_COLUMNS) >= BAR_MIN_COLUMNS;
      text += ` ${progressBar(msg.progressDetail!.current ?? 0, msg.progressDetail!.total, withBar)}`;
    }
    this.out.write(`${cursorUp(distance)}${CLEAR_LINE}\r${text}\r${cursorDown(distance)}`);
  }
}

/** The error a stream message carries, with the most precise code the daemon gave. */
export function messageError(msg: JsonMessage): DaemonError | undefined {
  if (!msg.errorDetail && typeof msg.error !== 'string') return undefined;
  const text = msg.errorDetail?.message ?? msg.error ?? 'unknown error';
  const berthCode = msg.errorDetail?.berthCode;
  const status = typeof msg.errorDetail?.code === 'number' ? msg.errorDetail.code : 500;
  const err = new DaemonError(status, text);
  if (berthCode && Object.hasOwn(ERROR_CODES, berthCode) && berthCode !== codeForHttpStatus(status)) {
    // DaemonError derives its code from the status; a berth code is finer (EREGISTRY vs EINTERNAL).
    (err as { code: ErrorCode }).code = berthCode as ErrorCode;
  }
  return err;
}

/** Reads the error body of a raw response as the API client does. */
export async function responseError(res: IncomingMessage): Promise<DaemonError> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const status = res.statusCode ?? 500;
  let message = text.trim() || `HTTP ${status}`;
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch { /* not JSON: keep the text */ }
  return new DaemonError(status, message);
}

/** JSON messages of a stream response, one per line; malformed lines are an error. */
export async function* readMessages(res: IncomingMessage): AsyncGenerator<JsonMessage> {
  res.setEncoding('utf8');
  let pending = '';
  const parse = (line: string): JsonMessage | undefined => {
    if (line.trim() === '') return undefined;
    try {
      return JSON.parse(line) as JsonMessage;
    } catch {
      throw new BerthError('EINTERNAL', `the daemon sent an unreadable progress message: ${line.slice(0, 200)}`);
    }
  };
  for await (const chunk of res) {
    pending += chunk as string;
    let nl: number;
    while ((nl = pending.indexOf('\n')) !== -1) {
      const msg = parse(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      if (msg) yield msg;
    }
  }
  const last = parse(pending);
  if (last) yield last;
}

/**
 * Prints a whole stream; throws the first error message in it (after what came before
 * was shown, as docker does). `onMessage` sees every message, printed or not.
 */
export async function displayStream(res: IncomingMessage, printer: ProgressPrinter | undefined, onMessage?: (msg: JsonMessage) => void): Promise<void> {
  try {
    for await (const msg of readMessages(res)) {
      const err = messageError(msg);
      if (err) throw err;
      onMessage?.(msg);
      printer?.print(msg);
    }
  } catch (err) {
    if (err instanceof BerthError) throw err;
    throw new BerthError('ECONNECT', `the daemon closed the stream early: ${(err as Error).message}`, { cause: err });
  }
}
