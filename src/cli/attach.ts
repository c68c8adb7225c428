// The client end of attach and exec: the hijacked connection, frame demultiplexing,
// the local terminal in raw mode, SIGWINCH forwarded as resize, and signals proxied to
// the container (docker's --sig-proxy) when there is no TTY to carry ctrl-c.
import { request as httpRequest } from 'node:http';
import type { Duplex } from 'node:stream';
import { socketPathOfHost } from '../api/client';
import { BerthError } from '../util/errors';
import { VERSION } from '../util/version';
import { responseError } from './progress';

export interface Hijacked {
  socket: Duplex;
  /** Output bytes that arrived with the 101 reply. */
  head: Buffer;
}

/** POSTs with `Upgrade: tcp` and resolves with the raw connection once the daemon answers 101. */
export function hijack(host: string, path: string, query: Record<string, string | number | boolean | undefined>, body?: unknown): Promise<Hijacked> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { 'User-Agent': `berth-cli/${VERSION}`, Connection: 'Upgrade', Upgrade: 'tcp' };
  if (payload) { headers['Content-Type'] = 'application/json'; headers['Content-Length'] = String(payload.length); }
  const qs = params.toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath: socketPathOfHost(host), method: 'POST', path: path + (qs ? `?${qs}` : ''), headers });
    req.on('upgrade', (_res, socket, head) => resolve({ socket, head }));
    req.on('response', (res) => {
      if ((res.statusCode ?? 0) >= 400) { responseError(res).then(reject, reject); return; }
      res.resume();
      reject(new BerthError('EINTERNAL', `the daemon did not upgrade the connection (HTTP ${res.statusCode})`));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') reject(new BerthError('ECONNECT', `Cannot connect to the berth daemon at ${host}. Is the berth daemon running?`, { cause: err }));
      else reject(err);
    });
    req.end(payload);
  });
}

/** Splits multiplexed frames back into stdout and stderr; a stream may cut frames anywhere. */
export class FrameDemuxer {
  private pending: Buffer = Buffer.alloc(0);
  constructor(private readonly stdout: NodeJS.WritableStream, private readonly stderr: NodeJS.WritableStream) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const stream = this.pending[0];
      const payload = this.pending.subarray(8, 8 + size);
      this.pending = this.pending.subarray(8 + size);
      (stream === 2 || stream === 3 ? this.stderr : this.stdout).write(payload);
    }
  }
}

export interface SessionOptions {
  conn: Hijacked;
  tty: boolean;
  /** Send local stdin; otherwise half-close at once, as docker does. */
  stdin: boolean;
  stdinStream?: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Called with the terminal size at once and on every SIGWINCH (TTY only). */
  resize?: (rows: number, cols: number) => Promise<unknown>;
  /** Signal names to forward, e.g. to POST /kill (non-TTY only). */
  proxySignal?: (signal: string) => Promise<unknown>;
}

export interface Session {
  /** Resolves when the daemon closes the output side. */
  done: Promise<void>;
  /** Starts sending terminal sizes; call after the container or exec has started. */
  startResize(): void;
  /** Restores the terminal and stops listening; safe to call twice. */
  cleanup(): void;
}

const PROXIED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** Runs the two directions of an attach. The local terminal is raw only while it lasts. */
export function startSession(options: SessionOptions): Session {
  const { conn, tty } = options;
  const input = (options.stdinStream ?? process.stdin) as NodeJS.ReadStream;
  const output = options.stdout as NodeJS.WriteStream;
  const demux = tty ? undefined : new FrameDemuxer(options.stdout, options.stderr);
  const deliver = (chunk: Buffer): void => { if (demux) demux.push(chunk); else options.stdout.write(chunk); };
  if (conn.head.length) deliver(conn.head);

  const done = new Promise<void>((resolve) => {
    conn.socket.on('data', deliver);
    conn.socket.on('end', () => resolve());
    conn.socket.on('close', () => resolve());
    conn.socket.on('error', () => resolve());
  });

  let rawMode = false;
  if (options.stdin && tty && input.isTTY && typeof input.setRawMode === 'function') {
    input.setRawMode(true);
    rawMode = true;
  }
  const onInput = (chunk: Buffer): void => { conn.socket.write(chunk); };
  const onInputEnd = (): void => { conn.socket.end(); };
  if (options.stdin) {
    input.on('data', onInput);
    input.on('end', onInputEnd);
    input.resume();
  } else {
    conn.socket.end();
  }

  const signalHandlers = new Map<NodeJS.Signals, () => void>();
  if (!tty && options.proxySignal) {
    for (const signal of PROXIED_SIGNALS) {
      const handler = (): void => { void options.proxySignal!(signal.replace(/^SIG/, '')).catch(() => {}); };
      signalHandlers.set(signal, handler);
      process.on(signal, handler);
    }
  }

  const sendSize = (): void => {
    if (!options.resize || !output.isTTY || !output.rows || !output.columns) return;
    void options.resize(output.rows, output.columns).catch(() => {});
  };
  let resizing = false;
  const restore = (): void => { if (rawMode) { try { input.setRawMode(false); } catch { /* terminal gone */ } rawMode = false; } };
  process.once('exit', restore);

  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    restore();
    process.off('exit', restore);
    input.off('data', onInput);
    input.off('end', onInputEnd);
    if (options.stdin) input.pause();
    if (resizing) process.off('SIGWINCH', sendSize);
    for (const [signal, handler] of signalHandlers) process.off(signal, handler);
  };
  void done.then(cleanup);

  return {
    done,
    startResize: () => {
      if (!tty || resizing || cleaned) return;
      resizing = true;
      sendSize();
      process.on('SIGWINCH', sendSize);
    },
    cleanup,
  };
}

/** Docker's exit codes for a container that could not be started: 126 not executable, 127 not found, else 125. */
export function startFailureCode(message: string): number {
  if (/executable file not found|no such file or directory|not found/i.test(message)) return 127;
  if (/permission denied|cannot execute/i.test(message)) return 126;
  return 125;
}
