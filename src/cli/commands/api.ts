// `berth api METHOD PATH [BODY]`: one raw Engine API request, its answer printed as one JSON
// document. For scripts without a unix-socket HTTP client, such as luci-app-berth's rpcd
// backend under busybox sh. Streams are folded: a JSON stream (pull progress) becomes an
// array of its messages, a log stream (multiplexed or raw) one string; an empty body is null.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import type { CliContext } from '../command';
import { BerthError } from '../../util/errors';
import type { IncomingMessage } from 'node:http';

const FLAGS = {
  body: { type: 'bool', short: 'b', help: 'Print only the answer body, not {"status":N,"body":...}' },
} as const satisfies FlagDefs;

export const summary = 'Send one Engine API request and print the JSON answer';
export const usage = `Usage:  berth api [OPTIONS] METHOD PATH [BODY]

${summary}: {"status":200,"body":...}. A JSON stream becomes an array of its messages,
a log stream one string. Exits 1 when the daemon answers 4xx/5xx (or a stream reports an error).

Examples:
  berth api GET /containers/json?all=1
  berth api POST '/images/create?fromImage=busybox&tag=latest'
  berth api POST /containers/create '{"Image":"busybox","Cmd":["true"]}'

${formatFlagHelp(FLAGS)}`;

async function readAll(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Docker's multiplexed stream: 8-byte headers (stream, 0, 0, 0, size BE32) before each frame. */
function demux(buf: Buffer): string {
  const parts: Buffer[] = [];
  let off = 0;
  while (off + 8 <= buf.length && buf[off]! <= 2 && buf[off + 1] === 0 && buf[off + 2] === 0 && buf[off + 3] === 0) {
    const size = buf.readUInt32BE(off + 4);
    parts.push(buf.subarray(off + 8, off + 8 + size));
    off += 8 + size;
  }
  if (off < buf.length) return buf.toString('utf8');
  return Buffer.concat(parts).toString('utf8');
}

/** One JSON value, or several concatenated (a stream), or text. */
function parseBody(text: string): { value: unknown; streamError?: string } {
  if (!text.trim()) return { value: null };
  try {
    return { value: JSON.parse(text) };
  } catch { /* a stream, or not JSON */ }
  const messages: unknown[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    try { messages.push(JSON.parse(line)); } catch { return { value: text }; }
  }
  const failed = messages.find((m) => m && typeof m === 'object' && ('error' in m || 'errorDetail' in m)) as { error?: string; errorDetail?: { message?: string } } | undefined;
  return { value: messages, streamError: failed ? (failed.error ?? failed.errorDetail?.message ?? 'error') : undefined };
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  const [method, path, body] = positionals;
  if (!method || !path || positionals.length > 3) throw new BerthError('EINVAL', '"api" requires METHOD and PATH, and at most one BODY');
  if (!/^[A-Z]+$/.test(method.toUpperCase()) || !path.startsWith('/')) throw new BerthError('EINVAL', `invalid request ${method} ${path}`);
  const res = await ctx.client().raw(method.toUpperCase(), path, body === undefined ? {} : { body, headers: { 'Content-Type': 'application/json' } });
  const raw = await readAll(res);
  const type = String(res.headers['content-type'] ?? '');
  const status = res.statusCode ?? 0;
  let value: unknown;
  let streamError: string | undefined;
  if (/multiplexed-stream|raw-stream/.test(type)) value = demux(raw);
  else ({ value, streamError } = parseBody(raw.toString('utf8')));
  ctx.stdout.write(JSON.stringify(flags.body ? value : { status, body: value, ...(streamError ? { error: streamError } : {}) }) + '\n');
  return status >= 400 || streamError ? 1 : 0;
}
