// Content-addressed blob store: blobs/sha256/<hex> holds only verified bytes; downloads
// grow in ingest/<hex>.partial and enter blobs/ by rename after their digest checks out.
import { promises as fsp, createReadStream, type ReadStream } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { fsyncDir, renameDurable, writeFileAtomic } from '../util/atomic';
import { assertDigest, digestOfBytes, digestOfFile, hexOf, isHex64 } from './chain';
import { isNotFound, readdirOrEmpty, statOrUndefined } from './fsutil';
import { KeyedMutex, type SharedExclusiveLock } from './lock';
import type { Digest } from './types';

const PARTIAL_SUFFIX = '.partial';

export interface CommitIngestOptions {
  /** The caller hashed the bytes while writing them and they matched; skip re-reading. */
  verified?: boolean;
  expectedSize?: number;
}

export class ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;
  private readonly ingestLocks = new KeyedMutex();

  /** @internal built by Graph.open */
  constructor(
    root: string,
    private readonly storeLock: SharedExclusiveLock,
    private readonly onRemoved: (digest: Digest) => void = () => {},
  ) {
    this.blobsDir = join(root, 'blobs', 'sha256');
    this.ingestDir = join(root, 'ingest');
  }

  path(digest: Digest): string {
    return join(this.blobsDir, hexOf(digest));
  }

  async has(digest: Digest): Promise<boolean> {
    return (await statOrUndefined(this.path(digest)))?.isFile() ?? false;
  }

  /** Size in bytes, or undefined when the blob is not stored. */
  async size(digest: Digest): Promise<number | undefined> {
    const st = await statOrUndefined(this.path(digest));
    return st?.isFile() ? st.size : undefined;
  }

  async readBlob(digest: Digest): Promise<Buffer> {
    try {
      return await fsp.readFile(this.path(digest));
    } catch (err) {
      if (isNotFound(err)) throw new BerthError('ENOTFOUND', `blob ${digest} not found`, { cause: err });
      throw err;
    }
  }

  /** A missing blob surfaces as an 'error' event on the stream (ENOENT). */
  openRead(digest: Digest): ReadStream {
    return createReadStream(this.path(digest));
  }

  /** Stores small content (manifests, configs) held in memory. Returns its digest. */
  async writeBlob(data: Buffer, expected?: Digest): Promise<Digest> {
    const actual = digestOfBytes(data);
    if (expected !== undefined && assertDigest(expected) !== actual) {
      throw new BerthError('EDIGEST', `digest mismatch: expected ${expected}, got ${actual}`);
    }
    await this.storeLock.shared(async () => {
      if (await this.has(actual)) return;
      // writeFileAtomic uses a unique temp name, so two writers of the same blob just
      // rename identical bytes over each other.
      await writeFileAtomic(this.path(actual), data);
    });
    return actual;
  }

  ingestPath(digest: Digest): string {
    return join(this.ingestDir, `${hexOf(digest)}${PARTIAL_SUFFIX}`);
  }

  /** Bytes already downloaded for `digest` (0 when nothing), for HTTP Range resumes. */
  async ingestSize(digest: Digest): Promise<number> {
    return (await statOrUndefined(this.ingestPath(digest)))?.size ?? 0;
  }

  /**
   * The partial file is keyed by digest, so two downloads of the same blob must not
   * write it at once. Pullers wrap "download + commitIngest" in this; the second one
   * then finds the blob present. (commitIngest itself does not take this lock.)
   */
  withIngestLock<T>(digest: Digest, task: () => Promise<T>): Promise<T> {
    return this.ingestLocks.run(assertDigest(digest), task);
  }

  async commitIngest(digest: Digest, opts: CommitIngestOptions = {}): Promise<void> {
    const partial = this.ingestPath(digest);
    const target = this.path(digest);
    let size: number;
    try {
      if (opts.verified) {
        size = (await fsp.stat(partial)).size;
      } else {
        const actual = await digestOfFile(partial);
        if (actual.digest !== digest) {
          await this.removeIngest(digest);
          throw new BerthError('EDIGEST', `digest mismatch: expected ${digest}, got ${actual.digest}`);
        }
        size = actual.size;
      }
    } catch (err) {
      // Another commit of the same digest may have moved the partial already.
      if (isNotFound(err) && await this.has(digest)) return;
      if (isNotFound(err)) throw new BerthError('ENOTFOUND', `no download in progress for ${digest}`, { cause: err });
      throw err;
    }
    if (opts.expectedSize !== undefined && size !== opts.expectedSize) {
      await this.removeIngest(digest);
      throw new BerthError('EDIGEST', `size mismatch for ${digest}: expected ${opts.expectedSize} bytes, got ${size}`);
    }
    const fh = await fsp.open(partial, 'r').catch((err) => { if (isNotFound(err)) return undefined; throw err; });
    if (fh) { try { await fh.sync(); } finally { await fh.close(); } }
    await this.storeLock.shared(async () => {
      if (await this.has(digest)) { await this.removeIngest(digest); return; }
      try {
        await renameDurable(partial, target);
      } catch (err) {
        if (!(isNotFound(err) && await this.has(digest))) throw err;
      }
    });
  }

  async removeIngest(digest: Digest): Promise<void> {
    await fsp.rm(this.ingestPath(digest), { force: true });
  }

  /** Digests with a partial download in ingest/. */
  async listIngest(): Promise<Digest[]> {
    const out: Digest[] = [];
    for (const name of await readdirOrEmpty(this.ingestDir)) {
      if (!name.endsWith(PARTIAL_SUFFIX)) continue;
      const hex = name.slice(0, -PARTIAL_SUFFIX.length);
      if (isHex64(hex)) out.push(`sha256:${hex}`);
    }
    return out;
  }

  async delete(digest: Digest): Promise<boolean> {
    return this.storeLock.shared(() => this.deleteUnlocked(digest));
  }

  /** @internal for gc/check, which already hold the store lock exclusively. */
  async deleteUnlocked(digest: Digest): Promise<boolean> {
    const path = this.path(digest);
    try {
      await fsp.unlink(path);
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
    this.onRemoved(digest);
    await fsyncDir(this.blobsDir);
    return true;
  }

  async list(): Promise<Digest[]> {
    return (await readdirOrEmpty(this.blobsDir)).filter(isHex64).map((hex) => `sha256:${hex}`);
  }
}
