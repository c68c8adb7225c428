// Hijacked connections for attach and exec start, and the multiplexed frame format.
// Docker's clients are strict about the 101 reply bytes, and `docker run` half-closes
// its write side at once when it has no stdin: output must keep flowing until the
// process exits, so the input side ending never ends the output side.
import type { Duplex } from 'node:stream';
import type { AttachStream } from '../runtime/types';
import { BerthError } from '../util/errors';
import type { RequestContext } from './context';

export const MULTIPLEXED_TYPE = 'application/vnd.docker.multiplexed-stream';
export const RAW_STREAM_TYPE = 'application/vnd.docker.raw-stream';

/** Stream ids of the frame header: stdin, stdout, stderr, and errors from the daemon. */
export const STREAM_IDS = { stdin: 0, stdout: 1, stderr: 2, system: 3 } as const;
export type StreamName = keyof typeof STREAM_IDS;

/** One frame: [stream, 0, 0, 0, size uint32 BE] + payload. */
export function encodeFrame(stream: StreamName | number, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = typeof stream === 'number' ? stream : STREAM_IDS[stream];
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** Content type for attach, exec and logs output: only non-TTY streams on API >= 1.42 say "multiplexed". */
export function streamContentType(ctx: RequestContext, tty: boolean): string {
  return !tty && ctx.apiAtLeast('1.42') ? MULTIPLEXED_TYPE : RAW_STREAM_TYPE;
}

/** The exact reply docker's clients expect before the raw stream begins. */
export function upgradeReply(contentType: string): string {
  return `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`;
}

/** Both directions of a taken-over connection, whichever way the client asked. */
export interface ClientConnection {
  /** Bytes from the client (container stdin). */
  input: NodeJS.ReadableStream;
  /** Bytes that arrived with the request headers, to be treated as the start of input. */
  pending: Buffer;
  write(chunk: Buffer): boolean;
  onDrain(listener: () => void): void;
  /** Ends the output side; the connection closes. */
  end(): void;
  /** Resolves when the client goes away before we end. */
  gone: Promise<void>;
  readonly destroyed: boolean;
}

/**
 * Sends the response head and returns the connection. With `Upgrade: tcp` that is the
 * 101 reply on the raw socket; without it, a 200 streamed on the ordinary response
 * (docker's fallback), where the request body, if any, is the input.
 */
export function takeOverConnection(ctx: RequestContext, contentType: string, leftover?: Buffer): ClientConnection {
  if (ctx.upgrade) {
    const { socket } = ctx.upgrade;
    socket.write(upgradeReply(contentType));
    // The server answered through a ServerResponse until now; the socket is ours from here.
    ctx.res.statusCode = 101;
    return socketConnection(socket, leftover ?? ctx.upgrade.head);
  }
  const { res, req } = ctx;
  res.setHeader('Content-Type', RAW_STREAM_TYPE);
  res.writeHead(200);
  res.flushHeaders();
  const gone = new Promise<void>((resolve) => res.on('close', () => { if (!res.writableEnded) resolve(); }));
  return {
    input: req,
    pending: leftover ?? Buffer.alloc(0),
    write: (chunk) => res.write(chunk),
    onDrain: (listener) => { res.once('drain', listener); },
    end: () => { if (!res.writableEnded) res.end(); },
    gone,
    get destroyed() { return res.destroyed; },
  };
}

function socketConnection(socket: Duplex, pending: Buffer): ClientConnection {
  let ending = false;
  const gone = new Promise<void>((resolve) => socket.on('close', () => { if (!ending) resolve(); }));
  return {
    input: socket,
    pending,
    write: (chunk) => socket.write(chunk),
    onDrain: (listener) => { socket.once('drain', listener); },
    end: () => {
      if (ending) return;
      ending = true;
      // Closing fully: the client reads to EOF, and a half-closed peer has nothing more to say.
      socket.end(() => socket.destroy());
    },
    gone,
    get destroyed() { return socket.destroyed; },
  };
}

/**
 * Reads a request body that follows the headers on an upgraded socket (exec start sends
 * `{"Detach":false,"Tty":true}` there). Returns the body and any bytes after it, which
 * are already stdin. Handles Content-Length and chunked bodies.
 */
export function readUpgradeBody(ctx: RequestContext, limit: number): Promise<{ body: Buffer; rest: Buffer }> {
  const upgrade = ctx.upgrade;
  if (!upgrade) return Promise.reject(new BerthError('EINTERNAL', 'not an upgraded request'));
  const declared = ctx.req.headers['content-length'];
  const chunked = /chunked/i.test(String(ctx.req.headers['transfer-encoding'] ?? ''));
  const length = declared === undefined ? (chunked ? undefined : 0) : Number(declared);
  if (length !== undefined && (!Number.isFinite(length) || length < 0)) return Promise.reject(new BerthError('EINVAL', 'invalid Content-Length'));
  if (length !== undefined && length > limit) return Promise.reject(new BerthError('EBODYTOOLARGE', `request body is larger than ${limit} bytes`));
  return new Promise((resolve, reject) => {
    let buffered = upgrade.head;
    const finish = (result: { body: Buffer; rest: Buffer } | Error): void => {
      upgrade.socket.off('data', onData);
      upgrade.socket.off('end', onEnd);
      upgrade.socket.pause();
      if (result instanceof Error) reject(result); else resolve(result);
    };
    const attempt = (): boolean => {
      if (length !== undefined) {
        if (buffered.length < length) return false;
        finish({ body: buffered.subarray(0, length), rest: buffered.subarray(length) });
        return true;
      }
      const decoded = decodeChunked(buffered);
      if (decoded === 'incomplete') {
        if (buffered.length > limit + 1024) { finish(new BerthError('EBODYTOOLARGE', `request body is larger than ${limit} bytes`)); return true; }
        return false;
      }
      if (decoded === 'invalid') { finish(new BerthError('EINVAL', 'malformed chunked request body')); return true; }
      finish(decoded);
      return true;
    };
    const onData = (chunk: Buffer): void => { buffered = Buffer.concat([buffered, chunk]); attempt(); };
    const onEnd = (): void => { if (!attempt()) finish(new BerthError('EINVAL', 'request body ended early')); };
    if (attempt()) return;
    upgrade.socket.on('data', onData);
    upgrade.socket.on('end', onEnd);
  });
}

function decodeChunked(data: Buffer): { body: Buffer; rest: Buffer } | 'incomplete' | 'invalid' {
  const parts: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', pos);
    if (lineEnd === -1) return 'incomplete';
    const size = parseInt(data.subarray(pos, lineEnd).toString('latin1').split(';')[0]!.trim(), 16);
    if (!Number.isFinite(size) || size < 0) return 'invalid';
    const start = lineEnd + 2;
    if (size === 0) {
      // Trailers are not used by docker clients: expect the final CRLF right away.
      if (data.length < start + 2) return 'incomplete';
      return { body: Buffer.concat(parts), rest: data.subarray(start + 2) };
    }
    if (data.length < start + size + 2) return 'incomplete';
    parts.push(data.subarray(start, start + size));
    pos = start + size + 2;
  }
}

export type RelayEnd = 'exited' | 'detached' | 'client-gone';

export interface RelayOptions {
  /** Frame output (non-TTY); raw bytes otherwise. */
  framed: boolean;
  /** Relay client input to the process; false discards it. */
  stdin: boolean;
  /** Output streams the client asked for. */
  stdout?: boolean;
  stderr?: boolean;
  /** Byte sequence that detaches the client (TTY only); undefined disables it. */
  detachKeys?: Buffer;
  /** Written before live output (attach with logs=1). */
  prelude?: Buffer[];
  /** Runs after the process exited and before the connection closes (exec: let the exit code settle). */
  beforeEnd?: () => Promise<void>;
}

/** Docker's default detach sequence, ctrl-p ctrl-q. */
export const DEFAULT_DETACH_KEYS = Buffer.from([0x10, 0x11]);

/** Parses docker's --detach-keys syntax: "ctrl-p,ctrl-q", "a,b", "ctrl-@". */
export function parseDetachKeys(spec: string | undefined): Buffer | undefined {
  if (spec === undefined || spec === '') return DEFAULT_DETACH_KEYS;
  const bytes: number[] = [];
  for (const key of spec.split(',')) {
    const k = key.trim().toLowerCase();
    if (k.length === 1) { bytes.push(k.charCodeAt(0)); continue; }
    const m = /^ctrl-([a-z@[\\\]^_])$/.exec(k);
    if (!m) throw new BerthError('EINVAL', `Invalid detach keys (${spec}) provided`);
    const c = m[1]!;
    bytes.push(c >= 'a' && c <= 'z' ? c.charCodeAt(0) - 0x60 : ({ '@': 0, '[': 27, '\\': 28, ']': 29, '^': 30, '_': 31 } as Record<string, number>)[c]!);
  }
  return Buffer.from(bytes);
}

/** Waits for a readable to end, or gives up after `ms` (a stream that never ends must not hang us). */
function ended(stream: NodeJS.ReadableStream, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const s = stream as NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean };
    if (s.readableEnded || s.destroyed) { resolve(); return; }
    const timer = setTimeout(done, ms);
    function done(): void { clearTimeout(timer); stream.off('end', done); stream.off('close', done); resolve(); }
    stream.once('end', done);
    stream.once('close', done);
  });
}

/**
 * Relays a live attach to a client connection until the process exits, the client
 * detaches, or the client disappears. The client's input ending only ends the
 * process's stdin; output keeps flowing.
 */
export async function relayAttach(attach: AttachStream, conn: ClientConnection, options: RelayOptions): Promise<RelayEnd> {
  const wantStdout = options.stdout ?? true;
  const wantStderr = options.stderr ?? true;
  for (const chunk of options.prelude ?? []) conn.write(chunk);

  const sources: Array<[NodeJS.ReadableStream, StreamName, boolean]> = [[attach.stdout, 'stdout', wantStdout], [attach.stderr, 'stderr', wantStderr]];
  for (const [source, name, wanted] of sources) {
    source.on('data', (chunk: Buffer | string) => {
      if (!wanted || conn.destroyed) return;
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (bytes.length === 0) return;
      if (!conn.write(options.framed ? encodeFrame(name, bytes) : bytes)) {
        // A slow client slows the container's output down instead of filling our memory.
        source.pause();
        conn.onDrain(() => source.resume());
      }
    });
    source.on('error', () => {});
  }

  let detach!: () => void;
  const detached = new Promise<void>((resolve) => { detach = resolve; });
  const stdin = options.stdin ? attach.stdin : undefined;
  stdin?.on('error', () => {});
  let matched = 0;
  const forward = (chunk: Buffer): void => {
    if (!stdin) return;
    const keys = options.detachKeys;
    if (!keys) { stdin.write(chunk); return; }
    // Bytes that might start the detach sequence are held back until it is clear they do not.
    let out: number[] = [];
    for (const byte of chunk) {
      if (byte === keys[matched]) {
        matched++;
        if (matched === keys.length) { if (out.length) stdin.write(Buffer.from(out)); detach(); return; }
        continue;
      }
      if (matched > 0) { out.push(...keys.subarray(0, matched)); matched = 0; }
      if (byte === keys[0]) { matched = 1; continue; }
      out.push(byte);
    }
    if (out.length) stdin.write(Buffer.from(out));
    out = [];
  };
  if (conn.pending.length) forward(conn.pending);
  conn.input.on('data', (chunk: Buffer) => forward(chunk));
  conn.input.on('error', () => {});
  conn.input.on('end', () => {
    // Half-close from the client: the process sees EOF on stdin, output continues.
    if (stdin && !(stdin as { writableEnded?: boolean }).writableEnded) stdin.end();
  });
  conn.input.resume();

  const outcome = await Promise.race([
    attach.closed.then(() => 'exited' as const, () => 'exited' as const),
    detached.then(() => 'detached' as const),
    conn.gone.then(() => 'client-gone' as const),
  ]);
  if (outcome === 'exited') {
    // Output already read from the helper may still be on its way through our streams.
    await Promise.all([ended(attach.stdout, 1000), ended(attach.stderr, 1000)]);
    await options.beforeEnd?.().catch(() => {});
  } else {
    attach.close();
  }
  conn.end();
  return outcome;
}
