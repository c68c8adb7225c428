// HTTP over a unix socket by hand, for tests that must control every byte: malformed
// requests, stalls, disconnects, and clients that read the way LuCI's Lua client does
// (Connection: close, body to EOF, one HTTP chunk = one message).
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  /** The body, de-chunked when it was chunked. */
  body: Buffer;
  /** Each HTTP chunk's payload, in order (empty when not chunked). */
  chunks: Buffer[];
  chunked: boolean;
}

/** Splits a complete HTTP/1.1 response (as read to EOF) into its parts. */
export function parseResponse(raw: Buffer): RawResponse {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete header block in ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`);
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = raw.subarray(end + 4);
  const chunked = /chunked/i.test(headers['transfer-encoding'] ?? '');
  if (!chunked) {
    const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : rest.length;
    return { status, headers, body: rest.subarray(0, length), chunks: [], chunked };
  }
  const chunks: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const lineEnd = rest.indexOf('\r\n', pos);
    if (lineEnd < 0) break; // cut short: keep what arrived
    const size = parseInt(rest.subarray(pos, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
    pos = lineEnd + 2 + size + 2;
  }
  return { status, headers, body: Buffer.concat(chunks), chunks, chunked };
}

export interface ExchangeOptions {
  /** Give up (and destroy the socket) after this long; the result says so. */
  timeoutMs?: number;
}

/** Writes `request` as it is and reads until the server closes. */
export function exchange(socketPath: string, request: string | Buffer, opts: ExchangeOptions = {}): Promise<{ raw: Buffer; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const received: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; socket.destroy(); }, opts.timeoutMs ?? 30_000);
    socket.on('data', (d) => received.push(d));
    socket.on('error', (err) => { if (!timedOut && received.length === 0) { clearTimeout(timer); reject(err); } });
    socket.on('close', () => { clearTimeout(timer); resolve({ raw: Buffer.concat(received), timedOut }); });
    socket.write(request);
  });
}

/** A LuCI-style request: HTTP/1.1, Connection: close, no version prefix; the response read to EOF. */
export async function luciRequest(socketPath: string, method: string, path: string, body?: string | Buffer, extraHeaders: Record<string, string> = {}, timeoutMs = 30_000): Promise<RawResponse> {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const headerLines = [`${method} ${path} HTTP/1.1`, 'Host: localhost', 'User-Agent: LuCI', 'Connection: close'];
  if (payload) headerLines.push(`Content-Length: ${payload.length}`);
  if (payload && !extraHeaders['Content-Type']) headerLines.push('Content-Type: application/json');
  for (const [k, v] of Object.entries(extraHeaders)) headerLines.push(`${k}: ${v}`);
  const head = Buffer.from(headerLines.join('\r\n') + '\r\n\r\n');
  const { raw, timedOut } = await exchange(socketPath, payload ? Buffer.concat([head, payload]) : head, { timeoutMs });
  if (timedOut) throw new Error(`${method} ${path}: no end of response within ${timeoutMs} ms`);
  return parseResponse(raw);
}

/** Opens a connection and sends `request`, leaving it open: the caller closes it. */
export function openWith(socketPath: string, request: string | Buffer): Promise<{ socket: Socket; received: () => Buffer; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const received: Buffer[] = [];
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('data', (d) => received.push(d));
    socket.once('error', reject);
    socket.once('connect', () => { socket.write(request); resolve({ socket, received: () => Buffer.concat(received), closed }); });
  });
}
