// Routes Docker Engine API paths to handlers. Patterns look like '/images/{name}/json';
// every {param} matches greedily and may contain slashes, as docker's `{name:.*}` does,
// so '/images/127.0.0.1:5000/ns/busybox:tag/json' yields name '127.0.0.1:5000/ns/busybox:tag'.
// A '/vX.Y' prefix is optional and becomes the request's API version.
import { BerthError } from '../util/errors';
import { API_VERSION, MIN_API_VERSION } from '../util/version';
import type { RequestContext } from './context';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';

export type RouteHandler = (ctx: RequestContext) => Promise<void> | void;

export interface RouteOptions {
  /** The handler takes over the socket when the client asks for `Upgrade: tcp` (attach, exec). */
  upgrade?: boolean;
}

interface Route {
  method: HttpMethod;
  pattern: string;
  regex: RegExp;
  paramNames: string[];
  literalLength: number;
  order: number;
  handler: RouteHandler;
  options: RouteOptions;
}

export interface RouteMatch {
  handler: RouteHandler;
  params: Record<string, string>;
  pattern: string;
  options: RouteOptions;
}

export interface SplitPath {
  /** The version from a '/vX.Y' prefix, if there was one. */
  version: string | undefined;
  /** The path with the prefix removed. */
  path: string;
}

const VERSION_PREFIX = /^\/v(\d+(?:\.\d+)*)(?=\/|$)/;

export function splitVersionPrefix(path: string): SplitPath {
  const m = VERSION_PREFIX.exec(path);
  if (!m) return { version: undefined, path };
  return { version: m[1], path: path.slice(m[0].length) || '/' };
}

/** Compares dotted versions numerically: '1.9' < '1.24'. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** The API version a request speaks: its prefix if in range, else the server's own. */
export function negotiateApiVersion(requested: string | undefined): string {
  if (requested === undefined) return API_VERSION;
  if (compareVersions(requested, API_VERSION) > 0) {
    throw new BerthError('EAPIVERSION', `client version ${requested} is too new. Maximum supported API version is ${API_VERSION}`);
  }
  if (compareVersions(requested, MIN_API_VERSION) < 0) {
    throw new BerthError('EAPIVERSION', `client version ${requested} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  }
  return requested;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class Router {
  private readonly routes: Route[] = [];

  /** Registers a handler. HEAD falls back to the GET handler unless a HEAD route exists. */
  add(method: HttpMethod, pattern: string, handler: RouteHandler, options: RouteOptions = {}): this {
    if (!pattern.startsWith('/')) throw new Error(`route pattern must start with '/': ${pattern}`);
    const paramNames: string[] = [];
    let literalLength = 0;
    const source = pattern.split(/(\{[A-Za-z_][A-Za-z0-9_]*\})/).map((part) => {
      const param = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(part);
      if (param) { paramNames.push(param[1]!); return '(.+)'; }
      literalLength += part.length;
      return escapeRegex(part);
    }).join('');
    if (this.routes.some((r) => r.method === method && r.pattern === pattern)) throw new Error(`duplicate route ${method} ${pattern}`);
    this.routes.push({ method, pattern, regex: new RegExp(`^${source}$`, 's'), paramNames, literalLength, order: this.routes.length, handler, options });
    // Fixed paths beat patterns ('/images/json' before '/images/{name}'), then longer
    // literal text, then registration order: a match never depends on file load order.
    this.routes.sort((a, b) => (a.paramNames.length === 0 ? 0 : 1) - (b.paramNames.length === 0 ? 0 : 1)
      || b.literalLength - a.literalLength || a.order - b.order);
    return this;
  }

  /** Finds the route for an unversioned path; undefined when nothing matches. */
  match(method: string, path: string): RouteMatch | undefined {
    const found = this.find(method, path) ?? (method === 'HEAD' ? this.find('GET', path) : undefined);
    return found;
  }

  private find(method: string, path: string): RouteMatch | undefined {
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const m = route.regex.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      route.paramNames.forEach((name, i) => {
        const raw = m[i + 1]!;
        try { params[name] = decodeURIComponent(raw); } catch { params[name] = raw; }
      });
      return { handler: route.handler, params, pattern: route.pattern, options: route.options };
    }
    return undefined;
  }

  /** Method and pattern of every route, for debugging and tests. */
  list(): Array<{ method: HttpMethod; pattern: string }> {
    return this.routes.map((r) => ({ method: r.method, pattern: r.pattern }));
  }
}
