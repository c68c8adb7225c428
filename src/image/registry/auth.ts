// Registry authentication: parsing WWW-Authenticate challenges, Basic credentials and
// the Bearer token flow of distribution's token auth spec.

import { createHash } from 'node:crypto';
import { BerthError } from '../../util/errors';

/** Credentials for one call, in the shape of docker's X-Registry-Auth (either key case). */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** OAuth refresh token from a previous login (docker's IdentityToken). */
  identitytoken?: string;
  /** A bearer token to send as is (docker's RegistryToken). */
  registrytoken?: string;
  serveraddress?: string;
  email?: string;
}

/** Accepts docker's capitalised keys (Username, IdentityToken, ...) as well. */
export function normalizeAuthConfig(raw: unknown): AuthConfig | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const out: AuthConfig = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== 'string' || value === '') continue;
    const k = key.toLowerCase();
    if (k === 'username' || k === 'password' || k === 'identitytoken' || k === 'registrytoken' || k === 'serveraddress' || k === 'email') {
      out[k] = value;
    }
  }
  return hasCredentials(out) ? out : undefined;
}

export function hasCredentials(auth: AuthConfig | undefined): boolean {
  return !!auth && !!(auth.username || auth.identitytoken || auth.registrytoken);
}

/** A stable key for caching tokens per credential, without keeping secrets in the key. */
export function credentialKey(auth: AuthConfig | undefined): string {
  if (!hasCredentials(auth)) return 'anonymous';
  return createHash('sha256')
    .update(JSON.stringify([auth!.username ?? '', auth!.password ?? '', auth!.identitytoken ?? '', auth!.registrytoken ?? '']))
    .digest('hex')
    .slice(0, 16);
}

export interface Challenge {
  scheme: string; // lower-cased: "bearer", "basic"
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header: `Bearer realm="...",service="...",scope="a b"`.
 * Several challenges may appear in one header; each starts with a bare scheme token.
 */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (!header) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const challenges: Challenge[] = [];
  const token = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)/y;
  let i = 0;
  let current: Challenge | undefined;
  while (i < text.length) {
    while (i < text.length && (text[i] === ',' || text[i] === ' ' || text[i] === '\t')) i++;
    if (i >= text.length) break;
    token.lastIndex = i;
    const m = token.exec(text);
    if (!m) break;
    const word = m[1]!;
    i = token.lastIndex;
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
    if (text[i] === '=') {
      i++;
      while (text[i] === ' ') i++;
      let value = '';
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          value += text[i];
          i++;
        }
        i++;
      } else {
        const start = i;
        while (i < text.length && text[i] !== ',') i++;
        value = text.slice(start, i).trim();
      }
      if (current) current.params[word.toLowerCase()] = value;
    } else {
      current = { scheme: word.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

export function basicAuthHeader(username: string, password: string): string {
  return 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64');
}

export interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Tokens live `expires_in` seconds (60 when unsaid); renew a little early to absorb clock skew and latency. */
const DEFAULT_TOKEN_LIFETIME_S = 60;
const RENEW_MARGIN_MS = 5_000;

export function tokenFromResponse(body: Buffer, realm: string, now = Date.now()): CachedToken {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new BerthError('EREGISTRY', `token server ${realm} returned a malformed response`);
  }
  const token = typeof parsed.token === 'string' && parsed.token ? parsed.token
    : typeof parsed.access_token === 'string' && parsed.access_token ? parsed.access_token : undefined;
  if (!token) throw new BerthError('EREGISTRY', `token server ${realm} returned no token`);
  const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_LIFETIME_S;
  return { token, expiresAt: now + lifetime * 1000 - Math.min(RENEW_MARGIN_MS, lifetime * 500) };
}

export function isTokenFresh(t: CachedToken | undefined, now = Date.now()): t is CachedToken {
  return !!t && t.expiresAt > now;
}

export function pullScope(path: string): string {
  return `repository:${path}:pull`;
}
