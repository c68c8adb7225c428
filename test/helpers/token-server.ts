// A token server for distribution's "token" auth, enough for tests: it checks Basic
// credentials, grants the requested repository actions, and signs RS256 JWTs whose
// x5c header carries a self-signed certificate the registry trusts as its root bundle.

import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TokenServerOptions {
  /** username -> password */
  users?: Record<string, string>;
  /** Grant pull to requests without credentials (otherwise they get a token with no access). */
  allowAnonymousPull?: boolean;
  service?: string;
  issuer?: string;
  expiresInSeconds?: number;
}

export interface TokenRequestRecord {
  username?: string;
  scopes: string[];
  service?: string;
  granted: boolean;
}

export interface TokenServer {
  /** Full realm URL, "http://127.0.0.1:PORT/token". */
  realm: string;
  service: string;
  issuer: string;
  /** PEM file the registry uses as its rootcertbundle. */
  rootCertBundle: string;
  port: number;
  requests: TokenRequestRecord[];
  stop(): Promise<void>;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  const m = /^Basic\s+(.+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

interface AccessEntry { type: string; name: string; actions: string[] }

function parseScope(scope: string): AccessEntry | undefined {
  // "repository:name:pull,push"; the name itself may contain a colon (host:port prefixes).
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first === -1 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}

function signJwt(key: KeyObject, certDer: string, claims: Record<string, unknown>): string {
  const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer] };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${base64url(sign('sha256', Buffer.from(input), key))}`;
}

export async function startTokenServer(opts: TokenServerOptions = {}): Promise<TokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-token-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=berth-test-token-issuer']);
    const key = createPrivateKey(await readFile(keyPath));
    const certDer = new X509Certificate(await readFile(certPath)).raw.toString('base64');
    const service = opts.service ?? 'berth-test-registry';
    const issuer = opts.issuer ?? 'berth-test-token-issuer';
    const users = opts.users ?? {};
    const expiresIn = opts.expiresInSeconds ?? 300;
    const requests: TokenRequestRecord[] = [];

    const handle = (req: IncomingMessage, res: ServerResponse): void => {
      const url = new URL(req.url ?? '/', 'http://token.invalid');
      if (url.pathname !== '/token') { res.writeHead(404).end(); return; }
      const credentials = parseBasic(req.headers.authorization);
      const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      const record: TokenRequestRecord = { scopes, granted: false };
      if (credentials) record.username = credentials.username;
      const requestedService = url.searchParams.get('service');
      if (requestedService) record.service = requestedService;
      requests.push(record);
      if (credentials && users[credentials.username] !== credentials.password) {
        res.writeHead(401, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'incorrect username or password' }] }));
        return;
      }
      const access: AccessEntry[] = [];
      for (const scope of scopes) {
        const entry = parseScope(scope);
        if (!entry || entry.type !== 'repository') continue;
        const actions = credentials ? entry.actions : opts.allowAnonymousPull ? entry.actions.filter((a) => a === 'pull') : [];
        if (actions.length) access.push({ ...entry, actions });
      }
      record.granted = access.length > 0;
      const now = Math.floor(Date.now() / 1000);
      const token = signJwt(key, certDer, {
        iss: issuer, sub: credentials?.username ?? '', aud: service,
        exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomBytes(12).toString('hex'), access,
      });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
    };

    const server = createServer(handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    return {
      realm: `http://127.0.0.1:${port}/token`,
      service,
      issuer,
      rootCertBundle: certPath,
      port,
      requests,
      async stop() {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
