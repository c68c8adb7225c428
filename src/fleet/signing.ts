// Signed commands: an operator's Ed25519 signature over a canonical JSON of
// {id, action, args, ts}. Canonical means sorted keys and no whitespace, so the
// signer and the device hash the same bytes whatever JSON library produced them.
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { BerthError } from '../util/errors';

/** JSON with object keys sorted at every level; undefined members dropped as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined);
  return `{${entries.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

export interface SignableRequest { id: string; action: string; args?: unknown; ts?: number }

export function signingBytes(req: SignableRequest): Buffer {
  return Buffer.from(canonicalJson({ id: req.id, action: req.action, args: req.args ?? {}, ts: req.ts }), 'utf8');
}

// DER prefix of an Ed25519 SubjectPublicKeyInfo; followed by the 32 raw key bytes.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A public key from PEM text, base64 of the raw 32 bytes or of the SPKI DER, or a file holding either. */
export function parsePublicKey(text: string): KeyObject {
  const source = !text.includes('-----BEGIN') && text.startsWith('/') && existsSync(text) ? readFileSync(text, 'utf8') : text;
  let key: KeyObject;
  try {
    if (source.includes('-----BEGIN')) key = createPublicKey(source);
    else {
      const raw = Buffer.from(source.trim(), 'base64');
      key = createPublicKey({ key: raw.length === 32 ? Buffer.concat([ED25519_SPKI_PREFIX, raw]) : raw, format: 'der', type: 'spki' });
    }
  } catch (err) {
    throw new BerthError('EINVAL', `not an Ed25519 public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new BerthError('EINVAL', `command keys must be Ed25519, got ${key.asymmetricKeyType}`);
  return key;
}

export function parsePrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new BerthError('EINVAL', `signing keys must be Ed25519, got ${key.asymmetricKeyType}`);
  return key;
}

/** Adds ts (now) and sig (base64) to a request. */
export function signRequest<T extends SignableRequest>(req: T, key: KeyObject, now = Date.now()): T & { ts: number; sig: string } {
  const stamped = { ...req, ts: now };
  return { ...stamped, sig: sign(null, signingBytes(stamped), key).toString('base64') };
}

/** Throws EDENIED unless one of the keys signed this request within the time window. */
export function verifyRequest(req: SignableRequest & { sig?: unknown }, keys: readonly KeyObject[], opts: { now?: number; windowMs?: number } = {}): void {
  if (typeof req.sig !== 'string' || req.sig === '') throw new BerthError('EDENIED', 'unsigned command refused: this device requires signed commands');
  if (typeof req.ts !== 'number' || !Number.isFinite(req.ts)) throw new BerthError('EDENIED', 'signed command without a numeric ts (milliseconds since the epoch)');
  const window = opts.windowMs ?? 5 * 60_000;
  if (Math.abs((opts.now ?? Date.now()) - req.ts) > window) throw new BerthError('EDENIED', `stale command refused: ts is outside the ${Math.round(window / 1000)} s window`);
  const signature = Buffer.from(req.sig, 'base64');
  const bytes = signingBytes(req);
  if (!keys.some((k) => { try { return verify(null, bytes, k, signature); } catch { return false; } })) {
    throw new BerthError('EDENIED', 'bad signature: no configured command key signed this command');
  }
}
