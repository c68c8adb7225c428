// What a route handler receives: the raw request/response, path params, query helpers,
// the negotiated API version, lazy body reading and the daemon's services.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { BerthError } from '../util/errors';
import type { Logger } from '../util/log';
import type { DaemonServices } from '../daemon/services';
import { compareVersions } from './router';

/** Default cap for bodies read into memory; uploads (image load) stream `req` instead. */
export const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;

/** Docker's query booleans: absent, "", "0", "no", "false", "none" are false; anything else true. */
export function dockerBool(value: string | null | undefined): boolean {
  if (value === null || value === undefined) return false;
  const v = value.trim().toLowerCase();
  return !(v === '' || v === '0' || v === 'no' || v === 'false' || v === 'none');
}

export class Query {
  constructor(readonly params: URLSearchParams) {}

  has(name: string): boolean { return this.params.has(name); }

  /** The first value, or undefined when absent. */
  string(name: string): string | undefined { return this.params.get(name) ?? undefined; }

  all(name: string): string[] { return this.params.getAll(name); }

  /** Docker boolean; `fallback` when the parameter is absent. */
  bool(name: string, fallback = false): boolean {
    return this.params.has(name) ? dockerBool(this.params.get(name)) : fallback;
  }

  /** An integer, `fallback` when absent or empty; EINVAL when not a number. */
  int(name: string, fallback?: number): number | undefined {
    const raw = this.params.get(name);
    if (raw === null || raw.trim() === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n)) throw new BerthError('EINVAL', `invalid value for ${name}: ${JSON.stringify(raw)} is not an integer`);
    return n;
  }

  /** A JSON-encoded parameter such as `filters`; undefined when absent or empty. */
  json<T>(name: string): T | undefined {
    const raw = this.params.get(name);
    if (raw === null || raw === '') return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch {
      throw new BerthError('EINVAL', `invalid ${name} parameter: not valid JSON`);
    }
  }
}

export interface UpgradeSocket {
  /** The raw connection; the handler writes the 101 response itself. */
  socket: Duplex;
  /** Bytes the client sent after the request headers. */
  head: Buffer;
}

export class RequestContext {
  readonly method: string;
  private bodyPromise: Promise<Buffer> | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** Path without the version prefix, not decoded. */
    readonly path: string,
    readonly params: Record<string, string>,
    readonly query: Query,
    /** The version the client asked for in its path, else the server's own. */
    readonly apiVersion: string,
    readonly services: DaemonServices,
    readonly log: Logger,
    /** Present when the client asked to upgrade the connection and the route accepts it. */
    readonly upgrade?: UpgradeSocket,
  ) {
    this.method = req.method ?? 'GET';
  }

  /** A path parameter that the pattern guarantees. */
  param(name: string): string {
    const v = this.params[name];
    if (v === undefined) throw new BerthError('EINTERNAL', `route has no parameter ${name}`);
    return v;
  }

  /** True when the negotiated version is at least `version`, for version-dependent shapes. */
  apiAtLeast(version: string): boolean {
    return compareVersions(this.apiVersion, version) >= 0;
  }

  /** The whole body, read once; EBODYTOOLARGE (413) past `limit` bytes. */
  body(limit = DEFAULT_BODY_LIMIT): Promise<Buffer> {
    this.bodyPromise ??= new Promise<Buffer>((resolve, reject) => {
      const declared = Number(this.req.headers['content-length']);
      if (Number.isFinite(declared) && declared > limit) {
        reject(new BerthError('EBODYTOOLARGE', `request body is larger than ${limit} bytes`));
        this.req.resume();
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      this.req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          reject(new BerthError('EBODYTOOLARGE', `request body is larger than ${limit} bytes`));
          this.req.removeAllListeners('data');
          this.req.resume();
          return;
        }
        chunks.push(chunk);
      });
      this.req.on('end', () => resolve(Buffer.concat(chunks)));
      this.req.on('error', (err) => reject(new BerthError('EINVAL', `cannot read request body: ${err.message}`, { cause: err })));
    });
    return this.bodyPromise;
  }

  /** The body parsed as JSON; undefined for an empty body. */
  async json<T>(limit = DEFAULT_BODY_LIMIT): Promise<T | undefined> {
    const buf = await this.body(limit);
    const text = buf.toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new BerthError('EINVAL', `invalid JSON in request body: ${(err as Error).message}`, { cause: err });
    }
  }
}
