// Client for the OCI distribution API: endpoint choice (https, or http where allowed),
// authentication, manifests with digest checks, and resumable, verified blob downloads
// that never hold a blob in memory.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError } from '../../util/errors';
import { logger } from '../../util/log';
import type { Descriptor, Digest, Platform } from '../../minimal-graph/types';
import { familiarString, isLoopbackRegistry, registryHost, splitHostPort, withDigest, type Reference } from '../reference';
import { normalizePlatform, platformString, selectManifest } from '../platform';
import {
  basicAuthHeader, credentialKey, hasCredentials, isTokenFresh, normalizeAuthConfig, parseWwwAuthenticate,
  pullScope, tokenFromResponse, type AuthConfig, type CachedToken, type Challenge,
} from './auth';
import { registryError } from './errors';
import { discardBody, HttpTransport, looksLikePlainHttpServer, readBody, TransportError, wrapNetworkError } from './http';
import {
  isImageManifestMediaType, isIndexMediaType, isKnownManifestMediaType, MANIFEST_ACCEPT, MEDIA_TYPE_DOCKER_SCHEMA1,
  MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, type ImageIndex, type ImageManifest,
} from './media-types';

const log = logger('registry');

export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_REDIRECTS = 5;
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const SHA256_DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
// Content types some registries put on manifests that say nothing about the manifest kind.
const GENERIC_CONTENT_TYPES = new Set(['', 'application/json', 'text/plain', 'application/octet-stream']);

export interface RegistryClientOptions {
  /** Registries ("host" or "host:port") that may be used over plain HTTP or unverified TLS. */
  insecureRegistries?: string[];
  userAgent?: string;
  maxManifestBytes?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

export interface CallOptions {
  auth?: AuthConfig;
  signal?: AbortSignal;
}

export interface FetchBlobOptions extends CallOptions {
  onProgress?: (current: number, total: number) => void;
}

export interface ManifestResult {
  body: Buffer;
  mediaType: string;
  digest: Digest;
}

export interface ResolvedImage {
  manifest: ImageManifest;
  manifestBody: Buffer;
  manifestDigest: Digest;
  mediaType: string;
  indexDigest?: Digest;
  indexBody?: Buffer;
  config: Descriptor;
  layers: Descriptor[];
}

interface Endpoint {
  /** The registry domain as in references ("docker.io", "127.0.0.1:5000"). */
  domain: string;
  base: URL;
  insecureTls: boolean;
  /** Last challenge the registry sent; undefined while it has asked for nothing. */
  challenge?: Challenge;
}

interface RequestInit extends CallOptions {
  method?: string;
  headers?: Record<string, string>;
}

export class RegistryClient {
  private readonly insecure: Set<string>;
  private readonly maxManifestBytes: number;
  private readonly transport: HttpTransport;
  private readonly endpoints = new Map<string, Promise<Endpoint>>();
  private readonly tokens = new Map<string, CachedToken>();

  constructor(opts: RegistryClientOptions = {}) {
    this.insecure = new Set((opts.insecureRegistries ?? []).map((r) => r.trim().toLowerCase().replace(/^https?:\/\//, '').replace(/\/+$/, '')));
    this.maxManifestBytes = opts.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
    this.transport = new HttpTransport({
      userAgent: opts.userAgent ?? 'berth',
      connectTimeoutMs: opts.connectTimeoutMs,
      idleTimeoutMs: opts.idleTimeoutMs,
    });
  }

  /** Drops pooled connections; the client must not be used afterwards. */
  close(): void {
    this.transport.close();
  }

  /** Plain HTTP and unverified TLS are allowed for loopback and configured registries only. */
  isInsecureRegistry(domain: string): boolean {
    if (isLoopbackRegistry(domain)) return true;
    const lower = domain.toLowerCase();
    return this.insecure.has(lower) || this.insecure.has(splitHostPort(lower).host);
  }

  // ---- manifests -------------------------------------------------------------------

  async getManifest(ref: Reference, opts: CallOptions = {}): Promise<ManifestResult> {
    const endpoint = await this.endpointFor(ref.domain, opts.signal);
    const reference = ref.digest ?? ref.tag ?? 'latest';
    const { res, host } = await this.requestFollowingRedirects(endpoint, ref, `/v2/${ref.path}/manifests/${reference}`, {
      ...opts,
      headers: { Accept: MANIFEST_ACCEPT.join(', ') },
    });
    if (res.statusCode !== 200) {
      throw await registryError(res, { ref, host, what: 'manifest', withCredentials: hasCredentials(normalizeAuthConfig(opts.auth)) });
    }
    const body = await readBody(res, this.maxManifestBytes, `manifest for ${familiarString(ref)}`, host);
    const digest: Digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (ref.digest && ref.digest !== digest) {
      throw new BerthError('EDIGEST', `manifest for ${familiarString(ref)} does not match its digest: expected ${ref.digest}, got ${digest}`);
    }
    const announced = headerValue(res.headers['docker-content-digest']);
    if (announced && announced.startsWith('sha256:') && announced !== digest) {
      throw new BerthError('EDIGEST', `manifest for ${familiarString(ref)} does not match Docker-Content-Digest: expected ${announced}, got ${digest}`);
    }
    const mediaType = manifestMediaType(headerValue(res.headers['content-type']), body, ref);
    return { body, mediaType, digest };
  }

  /** Resolves a reference to one image manifest for `platform`, walking an index if there is one. */
  async resolveImage(ref: Reference, platform: Platform, opts: CallOptions = {}): Promise<ResolvedImage> {
    const top = await this.getManifest(ref, opts);
    let chosen = top;
    let indexDigest: Digest | undefined;
    let indexBody: Buffer | undefined;
    if (isIndexMediaType(top.mediaType)) {
      const index = parseIndex(top.body, ref);
      const entry = selectManifest(index.manifests, platform);
      if (!entry) {
        throw new BerthError('EUNSUPPORTED', `no matching manifest for ${platformString(normalizePlatform(platform))} in the manifest list entries`);
      }
      chosen = await this.getManifest(withDigest(ref, entry.digest), opts);
      if (!isImageManifestMediaType(chosen.mediaType)) {
        throw new BerthError('EUNSUPPORTED', `manifest list entry ${entry.digest} of ${familiarString(ref)} is ${chosen.mediaType}, not an image manifest`);
      }
      indexDigest = top.digest;
      indexBody = top.body;
    }
    const manifest = parseImageManifest(chosen.body, ref);
    const resolved: ResolvedImage = {
      manifest,
      manifestBody: chosen.body,
      manifestDigest: chosen.digest,
      mediaType: chosen.mediaType,
      config: manifest.config,
      layers: manifest.layers,
    };
    if (indexDigest) { resolved.indexDigest = indexDigest; resolved.indexBody = indexBody; }
    return resolved;
  }

  // ---- blobs -----------------------------------------------------------------------

  /**
   * Downloads a blob into `partialPath`, resuming from whatever the file already holds.
   * On success the file is complete, verified and fsynced. On a content mismatch it is
   * deleted; on a network error it is left for the next attempt to resume.
   */
  async fetchBlob(ref: Reference, desc: Descriptor, partialPath: string, opts: FetchBlobOptions = {}): Promise<void> {
    if (!SHA256_DIGEST_RE.test(desc.digest)) {
      throw new BerthError('EUNSUPPORTED', `unsupported blob digest "${desc.digest}" (only sha256 is supported)`);
    }
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw new BerthError('EINVAL', `invalid size ${desc.size} for blob ${desc.digest}`);
    }
    const endpoint = await this.endpointFor(ref.domain, opts.signal);
    const withCredentials = hasCredentials(normalizeAuthConfig(opts.auth));

    let hash = createHash('sha256');
    let offset = await hashExisting(partialPath, desc.size, hash);
    if (offset === desc.size && offset > 0) {
      if (`sha256:${hash.copy().digest('hex')}` === desc.digest) {
        opts.onProgress?.(offset, desc.size);
        await fsyncFile(partialPath);
        return;
      }
      // A full-length partial with the wrong content is stale: fetch it again.
      await fsp.truncate(partialPath, 0);
      hash = createHash('sha256');
      offset = 0;
    }

    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = {};
      if (offset > 0) headers.Range = `bytes=${offset}-`;
      const { res, host } = await this.requestFollowingRedirects(endpoint, ref, `/v2/${ref.path}/blobs/${desc.digest}`, { ...opts, headers });
      const status = res.statusCode ?? 0;
      if (status === 416 && offset > 0) {
        // The server has nothing past what we hold: the partial is complete.
        discardBody(res);
        break;
      }
      if (status === 206 && offset > 0) {
        const start = contentRangeStart(res.headers['content-range']);
        if (start !== offset) {
          discardBody(res);
          if (attempt > 0) throw new BerthError('EREGISTRY', `registry ${host} answered a range request for ${desc.digest} with the wrong range`);
          await fsp.truncate(partialPath, 0);
          hash = createHash('sha256');
          offset = 0;
          continue;
        }
      } else if (status === 200) {
        if (offset > 0) {
          log.debug('registry ignored Range; downloading from the start', { digest: desc.digest, host });
          await fsp.truncate(partialPath, 0);
          hash = createHash('sha256');
          offset = 0;
        }
      } else {
        throw await registryError(res, { ref, host, what: `blob ${desc.digest}`, withCredentials });
      }
      await streamToFile(res, partialPath, hash, offset, desc, host, opts);
      break;
    }

    const { size } = await fsp.stat(partialPath);
    const actual = `sha256:${hash.digest('hex')}`;
    if (size !== desc.size || actual !== desc.digest) {
      await fsp.rm(partialPath, { force: true });
      throw new BerthError('EDIGEST', `blob of ${familiarString(ref)} failed verification: expected ${desc.digest} (${desc.size} bytes), got ${actual} (${size} bytes)`);
    }
    await fsyncFile(partialPath);
  }

  /**
   * Checks credentials as `docker login` does: /v2/ with Basic credentials, or a
   * token for no particular scope from the registry's token server.
   */
  async login(domain: string, authConfig: AuthConfig, signal?: AbortSignal): Promise<void> {
    const auth = normalizeAuthConfig(authConfig);
    if (!auth || auth.username === undefined) throw new BerthError('EINVAL', 'login needs a username and a password');
    this.endpoints.delete(domain);
    const endpoint = await this.endpointFor(domain, signal);
    const challenge = endpoint.challenge;
    if (!challenge) return;
    const ref: Reference = { domain, path: 'login' };
    if (challenge.scheme === 'bearer') {
      await this.fetchToken(endpoint, challenge, '', ref, auth, signal);
      return;
    }
    let res: IncomingMessage;
    try {
      res = await this.transport.send({ url: new URL('/v2/', endpoint.base), headers: { Authorization: basicAuthHeader(auth.username, auth.password ?? '') }, signal, insecureTls: endpoint.insecureTls });
    } catch (err) {
      throw wrapNetworkError(endpoint.base.host, err, signal);
    }
    if (res.statusCode === 200) { discardBody(res); return; }
    throw await registryError(res, { ref, host: endpoint.base.host, what: 'login', withCredentials: true });
  }

  // ---- endpoints and authentication --------------------------------------------------

  private endpointFor(domain: string, signal?: AbortSignal): Promise<Endpoint> {
    let pending = this.endpoints.get(domain);
    if (!pending) {
      pending = this.probe(domain, signal);
      this.endpoints.set(domain, pending);
      // A failed probe must not be remembered: the registry may come up later.
      pending.catch(() => this.endpoints.delete(domain));
    }
    return pending;
  }

  // Docker's order: HTTPS first; for insecure registries fall back to plain HTTP.
  private async probe(domain: string, signal?: AbortSignal): Promise<Endpoint> {
    const host = registryHost(domain);
    const insecure = this.isInsecureRegistry(domain);
    const schemes = insecure ? ['https', 'http'] : ['https'];
    let lastError: unknown;
    for (const scheme of schemes) {
      const base = new URL(`${scheme}://${host}/`);
      try {
        const res = await this.transport.send({ url: new URL('/v2/', base), signal, insecureTls: insecure });
        const endpoint: Endpoint = { domain, base, insecureTls: insecure };
        if (res.statusCode === 401) endpoint.challenge = pickChallenge(parseWwwAuthenticate(res.headers['www-authenticate']));
        discardBody(res);
        log.debug('registry endpoint', { domain, url: base.href, status: res.statusCode });
        return endpoint;
      } catch (err) {
        if (signal?.aborted) throw err;
        lastError = err;
      }
    }
    if (!insecure && looksLikePlainHttpServer(lastError)) {
      throw new BerthError('EDENIED', `registry ${host} answered over plain HTTP, not HTTPS; add "${domain}" to the insecure registries to use it`, { cause: lastError });
    }
    throw lastError instanceof Error ? lastError : new TransportError(host, `cannot reach registry ${host}`);
  }

  private async authorization(endpoint: Endpoint, ref: Reference, auth: AuthConfig | undefined, signal?: AbortSignal): Promise<string | undefined> {
    const challenge = endpoint.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') {
      return auth?.username !== undefined ? basicAuthHeader(auth.username, auth.password ?? '') : undefined;
    }
    if (challenge.scheme !== 'bearer') return undefined;
    if (auth?.registrytoken) return `Bearer ${auth.registrytoken}`;
    const scope = pullScope(ref.path);
    const key = `${endpoint.domain}|${challenge.params.realm ?? ''}|${scope}|${credentialKey(auth)}`;
    let token = this.tokens.get(key);
    if (!isTokenFresh(token)) {
      token = await this.fetchToken(endpoint, challenge, scope, ref, auth, signal);
      this.tokens.set(key, token);
    }
    return `Bearer ${token.token}`;
  }

  private forgetTokens(endpoint: Endpoint, ref: Reference): void {
    const prefix = `${endpoint.domain}|`;
    const scope = pullScope(ref.path);
    for (const key of this.tokens.keys()) if (key.startsWith(prefix) && key.includes(`|${scope}|`)) this.tokens.delete(key);
  }

  private async fetchToken(endpoint: Endpoint, challenge: Challenge, scope: string, ref: Reference, auth: AuthConfig | undefined, signal?: AbortSignal): Promise<CachedToken> {
    const realmText = challenge.params.realm;
    let realm: URL;
    try {
      realm = new URL(realmText ?? '');
    } catch {
      throw new BerthError('EREGISTRY', `registry ${endpoint.base.host} sent an unusable token realm "${realmText ?? ''}"`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new BerthError('EREGISTRY', `registry ${endpoint.base.host} sent an unusable token realm "${realmText}"`);
    }
    const withCredentials = hasCredentials(auth);
    if (realm.protocol === 'http:' && withCredentials && !this.isInsecureRegistry(realm.host) && !endpoint.insecureTls) {
      throw new BerthError('EDENIED', `refusing to send credentials for ${endpoint.domain} to token server ${realm.host} over plain HTTP`);
    }
    const service = challenge.params.service;
    const headers: Record<string, string> = { Accept: 'application/json' };
    let method = 'GET';
    let body: string | undefined;
    const url = new URL(realm.href);
    if (auth?.identitytoken) {
      // OAuth2 refresh-token grant, as docker does after `docker login` stored an identity token.
      method = 'POST';
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: auth.identitytoken, client_id: 'berth' });
      if (scope) form.set('scope', scope);
      if (service) form.set('service', service);
      body = form.toString();
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
    } else {
      if (service) url.searchParams.set('service', service);
      if (scope) url.searchParams.set('scope', scope);
      if (auth?.username !== undefined) {
        url.searchParams.set('account', auth.username);
        headers.Authorization = basicAuthHeader(auth.username, auth.password ?? '');
      }
    }
    let res: IncomingMessage;
    try {
      res = await this.transport.send({ url, method, headers, body, signal, insecureTls: this.isInsecureRegistry(realm.host) });
    } catch (err) {
      throw wrapNetworkError(realm.host, err, signal);
    }
    if (res.statusCode === 200) {
      return tokenFromResponse(await readBody(res, MAX_TOKEN_RESPONSE_BYTES, 'token response', realm.host), realm.host);
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw await registryError(res, { ref, host: realm.host, what: 'token', withCredentials });
    }
    discardBody(res);
    throw new BerthError('EREGISTRY', `token server ${realm.host} answered HTTP ${res.statusCode} for ${familiarString(ref)}`);
  }

  /** One request to the registry with credentials; renews auth once on a fresh 401. */
  private async authorizedRequest(endpoint: Endpoint, ref: Reference, path: string, init: RequestInit): Promise<{ res: IncomingMessage; authorization?: string }> {
    const auth = normalizeAuthConfig(init.auth);
    const url = new URL(path, endpoint.base);
    for (let attempt = 0; ; attempt++) {
      const authorization = await this.authorization(endpoint, ref, auth, init.signal);
      const headers: Record<string, string> = { ...init.headers };
      if (authorization) headers.Authorization = authorization;
      const res = await this.transport.send({ url, method: init.method, headers, signal: init.signal, insecureTls: endpoint.insecureTls });
      if (res.statusCode !== 401 || attempt > 0) return { res, authorization };
      const challenge = pickChallenge(parseWwwAuthenticate(res.headers['www-authenticate']));
      // Nothing new to try: no challenge, or we already answered this one with no credentials to add.
      const canRetry = challenge && (challenge.scheme === 'bearer' || (challenge.scheme === 'basic' && !authorization && auth?.username !== undefined));
      if (!canRetry) return { res, authorization };
      discardBody(res);
      endpoint.challenge = challenge;
      this.forgetTokens(endpoint, ref);
    }
  }

  private async requestFollowingRedirects(endpoint: Endpoint, ref: Reference, path: string, init: RequestInit): Promise<{ res: IncomingMessage; host: string }> {
    let { res, authorization } = await this.authorizedRequest(endpoint, ref, path, init);
    let url = new URL(path, endpoint.base);
    for (let hops = 0; REDIRECT_STATUSES.has(res.statusCode ?? 0); hops++) {
      const location = headerValue(res.headers.location);
      discardBody(res);
      if (!location) throw new BerthError('EREGISTRY', `registry ${url.host} sent a redirect without a location`);
      if (hops >= MAX_REDIRECTS) throw new BerthError('EREGISTRY', `too many redirects fetching ${path} from ${endpoint.base.host}`);
      const next = new URL(location, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new BerthError('EREGISTRY', `registry ${url.host} redirected to an unsupported URL scheme ${next.protocol}`);
      }
      if (next.protocol === 'http:' && url.protocol === 'https:' && !this.isInsecureRegistry(next.host)) {
        throw new BerthError('EDENIED', `registry ${url.host} redirected to plain HTTP at ${next.host}; refusing the downgrade`);
      }
      const headers: Record<string, string> = { ...init.headers };
      // Credentials belong to the registry: a CDN or other host must never see them.
      if (authorization && next.origin === endpoint.base.origin) headers.Authorization = authorization;
      else authorization = undefined;
      url = next;
      res = await this.transport.send({
        url, method: init.method, headers, signal: init.signal,
        insecureTls: next.origin === endpoint.base.origin ? endpoint.insecureTls : this.isInsecureRegistry(next.host),
      });
    }
    return { res, host: url.host };
  }
}

// ---- helpers -------------------------------------------------------------------------

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}

function manifestMediaType(contentType: string | undefined, body: Buffer, ref: Reference): string {
  const declared = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (isKnownManifestMediaType(declared)) return declared;
  if (declared === MEDIA_TYPE_DOCKER_SCHEMA1 || declared === MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED) {
    throw new BerthError('EUNSUPPORTED', `unsupported manifest media type ${declared} for ${familiarString(ref)} (Docker schema 1 images are not supported)`);
  }
  let parsed: Record<string, unknown> | undefined;
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) parsed = value as Record<string, unknown>;
  } catch { /* handled below */ }
  const bodyType = typeof parsed?.mediaType === 'string' ? parsed.mediaType : undefined;
  if (bodyType && isKnownManifestMediaType(bodyType)) return bodyType;
  if (parsed?.schemaVersion === 1) {
    throw new BerthError('EUNSUPPORTED', `unsupported manifest media type ${bodyType ?? (declared || MEDIA_TYPE_DOCKER_SCHEMA1)} for ${familiarString(ref)} (Docker schema 1 images are not supported)`);
  }
  if (!bodyType && parsed && GENERIC_CONTENT_TYPES.has(declared)) {
    // OCI allows mediaType to be absent from the body; the shape tells the kind.
    if (Array.isArray(parsed.manifests)) return MEDIA_TYPE_OCI_INDEX;
    if (parsed.config && Array.isArray(parsed.layers)) return MEDIA_TYPE_OCI_MANIFEST;
  }
  const named = bodyType ?? (declared || 'none');
  throw new BerthError('EUNSUPPORTED', `unsupported manifest media type ${named} for ${familiarString(ref)}`);
}

function parseJsonObject(body: Buffer, ref: Reference, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch { /* reported below */ }
  throw new BerthError('EREGISTRY', `${what} for ${familiarString(ref)} is not valid JSON`);
}

function isDescriptor(value: unknown): value is Descriptor {
  const d = value as Descriptor;
  return !!d && typeof d === 'object' && typeof d.mediaType === 'string' && typeof d.digest === 'string'
    && SHA256_DIGEST_RE.test(d.digest) && Number.isSafeInteger(d.size) && d.size >= 0;
}

function parseIndex(body: Buffer, ref: Reference): ImageIndex {
  const parsed = parseJsonObject(body, ref, 'manifest list');
  const manifests = parsed.manifests;
  if (!Array.isArray(manifests) || !manifests.every(isDescriptor)) {
    throw new BerthError('EREGISTRY', `manifest list for ${familiarString(ref)} has malformed entries`);
  }
  return parsed as unknown as ImageIndex;
}

function parseImageManifest(body: Buffer, ref: Reference): ImageManifest {
  const parsed = parseJsonObject(body, ref, 'manifest');
  if (!isDescriptor(parsed.config) || !Array.isArray(parsed.layers) || !parsed.layers.every(isDescriptor)) {
    throw new BerthError('EREGISTRY', `manifest for ${familiarString(ref)} has a malformed config or layer list`);
  }
  return parsed as unknown as ImageManifest;
}

function contentRangeStart(header: string | string[] | undefined): number | undefined {
  const m = /^bytes\s+(\d+)-\d+\/(?:\d+|\*)$/i.exec(headerValue(header)?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Feeds what a partial file already holds into `hash`; returns its length (0 when it is absent or too long). */
async function hashExisting(path: string, expectedSize: number, hash: Hash): Promise<number> {
  let size: number;
  try {
    size = (await fsp.stat(path)).size;
  } catch {
    return 0;
  }
  if (size === 0) return 0;
  if (size > expectedSize) {
    await fsp.truncate(path, 0);
    return 0;
  }
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return size;
}

async function fsyncFile(path: string): Promise<void> {
  const handle = await fsp.open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

class OversizeBlobError extends BerthError {}

async function streamToFile(res: IncomingMessage, path: string, hash: Hash, offset: number, desc: Descriptor, host: string, opts: FetchBlobOptions): Promise<void> {
  let received = offset;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      received += chunk.length;
      // Stop a registry that sends more than the descriptor promised before it fills the disk.
      if (received > desc.size) {
        callback(new OversizeBlobError('EDIGEST', `blob ${desc.digest} is larger than its descriptor says: expected ${desc.size} bytes, got more than that`));
        return;
      }
      hash.update(chunk);
      opts.onProgress?.(received, desc.size);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(res, meter, createWriteStream(path, { flags: offset > 0 ? 'a' : 'w' }), { signal: opts.signal });
  } catch (err) {
    if (err instanceof OversizeBlobError) {
      await fsp.rm(path, { force: true });
      throw err;
    }
    if (opts.signal?.aborted) throw wrapNetworkError(host, err, opts.signal);
    // The registry was reached; it (or the network) dropped the blob part way.
    throw new TransportError(host, `registry ${host} closed the connection while sending blob ${desc.digest} (${received} of ${desc.size} bytes)`, err);
  }
  if (!res.complete) throw new TransportError(host, `registry ${host} closed the connection while sending blob ${desc.digest}`);
}
