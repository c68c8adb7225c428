// The HTTP(S) transport under the registry client: one request at a time, with a
// connect timeout, an idle timeout, abort support and bounded body reads. Errors name
// the host so a user can tell which registry (or CDN) failed.

import * as http from 'node:http';
import * as https from 'node:https';
import { BerthError } from '../../util/errors';

export interface TransportOptions {
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  userAgent?: string;
}

export interface HttpRequest {
  url: URL;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** Skip certificate checks (insecure registries only). */
  insecureTls?: boolean;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** Network-level failure (no HTTP answer). `cause` keeps the system error for callers that branch on it. */
export class TransportError extends BerthError {
  readonly host: string;
  readonly systemCode: string | undefined;
  constructor(host: string, message: string, cause?: unknown) {
    super('EREGISTRY', message, { cause });
    this.host = host;
    this.systemCode = (cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

export class HttpTransport {
  private readonly connectTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly userAgent: string;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly insecureHttpsAgent = new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false });

  constructor(opts: TransportOptions = {}) {
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.userAgent = opts.userAgent ?? 'berth';
  }

  /** Resolves with the response as soon as its headers arrive; the body is left to the caller. */
  send(req: HttpRequest): Promise<http.IncomingMessage> {
    const { url } = req;
    const secure = url.protocol === 'https:';
    const agent = secure ? (req.insecureTls ? this.insecureHttpsAgent : this.httpsAgent) : this.httpAgent;
    const headers: Record<string, string> = { 'User-Agent': this.userAgent, ...req.headers };
    if (req.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(req.body));
    const request = secure ? https.request : http.request;

    return new Promise((resolve, reject) => {
      if (req.signal?.aborted) { reject(abortError(req.signal)); return; }
      let connectTimer: NodeJS.Timeout | undefined;
      let response: http.IncomingMessage | undefined;
      const clientRequest = request(url, { method: req.method ?? 'GET', headers, agent, signal: req.signal }, (res) => {
        response = res;
        resolve(res);
      });
      clientRequest.on('socket', (socket) => {
        if (!socket.connecting) return;
        connectTimer = setTimeout(() => {
          clientRequest.destroy(new TransportError(url.host, `cannot reach registry ${url.host}: connection timed out after ${this.connectTimeoutMs} ms`));
        }, this.connectTimeoutMs);
        socket.once('connect', () => clearTimeout(connectTimer));
      });
      // Idle timeout covers a stalled body too: the socket stays attached while it streams.
      clientRequest.setTimeout(this.idleTimeoutMs, () => {
        const err = new TransportError(url.host, `registry ${url.host} stopped responding (no data for ${this.idleTimeoutMs} ms)`);
        if (response) response.destroy(err);
        else clientRequest.destroy(err);
      });
      clientRequest.on('error', (err) => {
        clearTimeout(connectTimer);
        reject(wrapNetworkError(url.host, err, req.signal));
      });
      clientRequest.on('close', () => clearTimeout(connectTimer));
      clientRequest.end(req.body);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.insecureHttpsAgent.destroy();
  }
}

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error('The operation was aborted');
  err.name = 'AbortError';
  return err;
}

export function wrapNetworkError(host: string, err: unknown, signal?: AbortSignal): Error {
  if (signal?.aborted) return abortError(signal);
  if (err instanceof BerthError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.name === 'AbortError') return e;
  const detail = e?.code ? `${e.code}${e.message && !e.message.includes(e.code) ? ` (${e.message})` : ''}` : String(e?.message ?? err);
  return new TransportError(host, `cannot reach registry ${host}: ${detail}`, err);
}

/** True when a TLS handshake reached a server that speaks plain HTTP. */
export function looksLikePlainHttpServer(err: unknown): boolean {
  const cause = (err as { cause?: NodeJS.ErrnoException }).cause ?? (err as NodeJS.ErrnoException);
  const text = `${cause?.code ?? ''} ${cause?.message ?? ''}`;
  return /EPROTO|wrong version number|packet length too long|http request/i.test(text);
}

/** Reads a whole body, refusing (without buffering past) `limit` bytes. */
export function readBody(res: http.IncomingMessage, limit: number, what: string, host: string): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    res.destroy();
    return Promise.reject(new BerthError('ETOOLARGE', `${what} is ${declared} bytes, over the ${limit}-byte limit`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    res.on('data', (chunk: Buffer) => {
      if (settled) return;
      total += chunk.length;
      if (total > limit) {
        settled = true;
        res.destroy();
        reject(new BerthError('ETOOLARGE', `${what} exceeds the ${limit}-byte limit`));
        return;
      }
      chunks.push(chunk);
    });
    res.on('end', () => { if (!settled) { settled = true; resolve(Buffer.concat(chunks)); } });
    res.on('error', (err) => { if (!settled) { settled = true; reject(wrapNetworkError(host, err)); } });
    res.on('close', () => {
      if (!settled && !res.complete) { settled = true; reject(new TransportError(host, `registry ${host} closed the connection mid-response`)); }
    });
  });
}

/** Drains and discards a body we are not going to use, so the socket can be reused. */
export function discardBody(res: http.IncomingMessage): void {
  res.resume();
  res.on('error', () => { /* nothing to report: the body was unwanted */ });
}
