// Digest helpers. Digests end up in file names, so everything that builds a path from
// one validates it first: a crafted digest must never become "../something".
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { BerthError } from '../util/errors';
import type { Digest } from './types';

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

export function isHex64(s: string): boolean {
  return HEX64_RE.test(s);
}

export function assertDigest(s: unknown, what = 'digest'): Digest {
  if (!isDigest(s)) throw new BerthError('EINVAL', `invalid ${what}: ${JSON.stringify(s)} (want sha256:<64 lowercase hex>)`);
  return s;
}

/** The 64-hex part of a digest; throws EINVAL for anything that is not a strict sha256 digest. */
export function hexOf(digest: Digest): string {
  return assertDigest(digest).slice('sha256:'.length);
}

export function digestOfBytes(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Streams a file through sha256 so large layer blobs never sit in memory. */
export async function digestOfFile(path: string): Promise<{ digest: Digest; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** ChainID(L0)=DiffID(L0); ChainID(Ln)=sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const diffId of diffIds) {
    assertDigest(diffId, 'diff ID');
    const prev = out[out.length - 1];
    out.push(prev === undefined ? diffId : digestOfBytes(`${prev} ${diffId}`));
  }
  return out;
}
