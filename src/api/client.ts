// The Docker Engine API client the CLI uses. It speaks to the daemon only through HTTP
// on the unix socket and must never import engine or daemon code.
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { BerthError, codeForHttpStatus } from '../util/errors';

export const DEFAULT_HOST = 'unix:///var/run/berth.sock';

export interface ApiClientOptions {
  /** `unix:///path` or a bare absolute path. */
  host?: string;
  /** Pin an API version ('/v1.47' prefix); unset sends unversioned paths (the daemon's own version). */
  apiVersion?: string;
  /** Extra headers on every request (e.g. User-Agent). */
  headers?: Record<string, string>;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined> | URLSearchParams;
  /** Objects are sent as JSON; strings and buffers as they are; a stream is piped. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface ApiResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An error response from the daemon: the CLI prints "Error response from daemon: ...". */
export class DaemonError extends BerthError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(codeForHttpStatus(status), message);
    this.status = status;
    this.name = 'DaemonError';
  }
}

export function isDaemonError(err: unknown): err is DaemonError {
  return err instanceof DaemonError;
}

export function socketPathOfHost(host: string): string {
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  if (host.startsWith('/')) return host;
  throw new BerthError('EINVAL', `unsupported host "${host}": berth speaks over unix sockets (unix:///path)`);
}

function buildQuery(query: RequestOptions['query']): string {
  if (!query) return '';
  const params = query instanceof URLSearchParams ? query : new URLSearchParams();
  if (!(query instanceof URLSearchParams)) {
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined) continue;
      params.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
    }
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

function messageOf(body: Buffer, status: number): string {
  const text = body.toString('utf8');
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch { /* not JSON: use the text */ }
  return text.trim() || `HTTP ${status}`;
}

async function readAll(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class ApiClient {
  readonly host: string;
  private readonly socketPath: string;
  private readonly apiVersion: string | undefined;
  private readonly extraHeaders: Record<string, string>;

  constructor(options: ApiClientOptions = {}) {
    const host = options.host ?? DEFAULT_HOST;
    this.socketPath = socketPathOfHost(host);
    this.host = host.startsWith('unix://') ? host : `unix://${host}`;
    this.apiVersion = options.apiVersion;
    this.extraHeaders = options.headers ?? {};
  }

  private connectError(err: NodeJS.ErrnoException): BerthError {
    if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT' || err.code === 'EACCES' || err.code === 'ENOTSOCK') {
      const hint = err.code === 'EACCES' ? ' (permission denied)' : '';
      return new BerthError('ECONNECT', `Cannot connect to the berth daemon at ${this.host}. Is the berth daemon running?${hint}`, { cause: err });
    }
    return new BerthError('ECONNECT', `error talking to the berth daemon at ${this.host}: ${err.message}`, { cause: err });
  }

  /** Sends a request and returns the raw response, whatever its status. */
  async raw(method: string, path: string, options: RequestOptions = {}): Promise<IncomingMessage> {
    const headers: Record<string, string> = { ...this.extraHeaders, ...options.headers };
    let payload: Buffer | NodeJS.ReadableStream | undefined;
    const body = options.body;
    if (body === undefined || body === null) payload = undefined;
    else if (Buffer.isBuffer(body) || body instanceof Uint8Array) payload = Buffer.from(body);
    else if (typeof body === 'string') payload = Buffer.from(body);
    else if (typeof (body as NodeJS.ReadableStream).pipe === 'function') payload = body as NodeJS.ReadableStream;
    else {
      payload = Buffer.from(JSON.stringify(body));
      headers['Content-Type'] ??= 'application/json';
    }
    if (Buffer.isBuffer(payload)) headers['Content-Length'] = String(payload.length);

    const prefix = this.apiVersion ? `/v${this.apiVersion}` : '';
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ socketPath: this.socketPath, method, path: prefix + path + buildQuery(options.query), headers, signal: options.signal });
      req.on('response', resolve);
      req.on('error', (err: NodeJS.ErrnoException) => reject(err.name === 'AbortError' ? err : this.connectError(err)));
      if (payload === undefined) req.end();
      else if (Buffer.isBuffer(payload)) req.end(payload);
      else payload.pipe(req);
    });
  }

  /** Sends a request; a 4xx/5xx status becomes a DaemonError with the daemon's message. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const res = await this.raw(method, path, options);
    const body = await readAll(res);
    const status = res.statusCode ?? 0;
    if (status >= 400) throw new DaemonError(status, messageOf(body, status));
    return { status, headers: res.headers, body };
  }

  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, options);
    try {
      return JSON.parse(res.body.toString('utf8')) as T;
    } catch {
      throw new BerthError('EINTERNAL', `the daemon sent invalid JSON for ${method} ${path}`);
    }
  }

  /**
   * A stream of JSON messages (pull progress, events). Messages may be split across
   * chunks or several may share one; an `error` message in the stream throws.
   */
  async *stream<T = Record<string, unknown>>(method: string, path: string, options: RequestOptions = {}): AsyncGenerator<T> {
    const res = await this.raw(method, path, options);
    const status = res.statusCode ?? 0;
    if (status >= 400) throw new DaemonError(status, messageOf(await readAll(res), status));
    res.setEncoding('utf8');
    let pending = '';
    const parse = (text: string): T | undefined => {
      if (text.trim() === '') return undefined;
      const message = JSON.parse(text) as T & { error?: unknown; errorDetail?: { message?: unknown } };
      if (message && typeof message === 'object' && (message.errorDetail || typeof message.error === 'string')) {
        const m = message.errorDetail?.message ?? message.error;
        throw new DaemonError(500, typeof m === 'string' ? m : 'unknown error');
      }
      return message;
    };
    for await (const chunk of res) {
      pending += chunk as string;
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const msg = parse(line);
        if (msg !== undefined) yield msg;
      }
    }
    const last = parse(pending);
    if (last !== undefined) yield last;
  }

  ping(): Promise<ApiResponse> {
    return this.request('GET', '/_ping');
  }
}
