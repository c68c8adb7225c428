// tar-split: what it takes, beside an unpacked layer, to rebuild the layer's exact
// uncompressed tar (whose sha256 is the diff_id) without keeping the compressed blob,
// as Docker does. The record holds every byte of the tar except regular-file payloads,
// which it names by their path in diff/ and their size.
//
// On disk (gzip): "BTS1", then frames:
//   'R' u32 length, bytes            bytes copied as they appeared in the tar
//   'F' u16 length, path (utf8), u64 size
//                                    `size` bytes read from diff/<path>
// The format knows nothing of tar: the recorder in src/image decides what is a file.
import { createReadStream, constants as fsc, promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { createGunzip, createGzip, type Gzip } from 'node:zlib';
import { BerthError } from '../util/errors';
import { secureJoin } from './fsutil';
import type { Digest } from './types';

const MAGIC = Buffer.from('BTS1');
const RAW = 0x52; // 'R'
const FILE = 0x46; // 'F'
/** Raw bytes are gathered up to this size per frame: headers are small and many. */
const RAW_FRAME_MAX = 64 * 1024;
const READ_CHUNK = 64 * 1024;
/** A record this large (compressed) means a pathological layer: keep its blob instead. */
export const TAR_SPLIT_MAX_BYTES = 32 * 1024 * 1024;

export type TarSplitSegment = { raw: Buffer } | { path: string; size: number };

/** What the tar recorder writes into. */
export interface TarSplitSink {
  raw(bytes: Buffer): void;
  file(path: string, size: number): void;
}

/**
 * Builds a tar-split record in memory, gzip-compressed: it is small (headers compress to
 * a few bytes per entry), and keeping it out of tmp/ leaves an interrupted extraction
 * exactly one directory to clean. Past `maxBytes` compressed it gives up (finish() then
 * returns undefined) and the layer keeps its blob.
 */
export class TarSplitWriter implements TarSplitSink {
  private readonly gzip: Gzip;
  private readonly output: Buffer[] = [];
  private outputBytes = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failure: Error | undefined;
  private readonly ended: Promise<void>;

  constructor(private readonly maxBytes = TAR_SPLIT_MAX_BYTES) {
    this.gzip = createGzip();
    this.ended = new Promise((resolve) => {
      this.gzip.on('end', () => resolve());
      this.gzip.on('error', (err) => { this.failure ??= err; resolve(); });
    });
    this.gzip.on('data', (chunk: Buffer) => {
      this.outputBytes += chunk.length;
      if (this.outputBytes > this.maxBytes) { this.failure ??= new Error(`record larger than ${this.maxBytes} bytes`); return; }
      this.output.push(chunk);
    });
    this.gzip.write(MAGIC);
  }

  raw(bytes: Buffer): void {
    if (bytes.length === 0 || this.failure) return;
    this.pending.push(Buffer.from(bytes)); // the caller's chunk may be reused
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= RAW_FRAME_MAX) this.flushRaw();
  }

  file(path: string, size: number): void {
    if (this.failure) return;
    this.flushRaw();
    const name = Buffer.from(path, 'utf8');
    if (name.length > 0xffff) { this.failure = new Error(`path too long to record: ${path.slice(0, 80)}...`); return; }
    const head = Buffer.alloc(3);
    head[0] = FILE;
    head.writeUInt16BE(name.length, 1);
    const sizeBuf = Buffer.alloc(8);
    sizeBuf.writeBigUInt64BE(BigInt(size));
    this.gzip.write(Buffer.concat([head, name, sizeBuf]));
  }

  /** True when the compressor is backed up; wait on drained() before feeding more. */
  get needsDrain(): boolean {
    return this.gzip.writableNeedDrain && !this.failure;
  }

  drained(): Promise<void> {
    if (!this.needsDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { this.gzip.off('drain', done); this.gzip.off('error', done); resolve(); };
      this.gzip.on('drain', done);
      this.gzip.on('error', done);
    });
  }

  /** The compressed record, or undefined when recording failed (the reason is logged by the caller). */
  async finish(): Promise<{ record?: Buffer; failure?: string }> {
    this.flushRaw();
    this.gzip.end();
    await this.ended;
    if (this.failure) return { failure: this.failure.message };
    return { record: Buffer.concat(this.output) };
  }

  /** Stops recording and frees what was buffered. */
  abort(): void {
    this.failure ??= new Error('aborted');
    this.gzip.destroy();
    this.output.length = 0;
  }

  private flushRaw(): void {
    if (this.pendingBytes === 0) return;
    const head = Buffer.alloc(5);
    head[0] = RAW;
    head.writeUInt32BE(this.pendingBytes, 1);
    this.gzip.write(Buffer.concat([head, ...this.pending]));
    this.pending = [];
    this.pendingBytes = 0;
  }
}

/** The segments of a tar-split record, in order. */
export async function* readTarSplit(path: string): AsyncGenerator<TarSplitSegment> {
  const corrupt = (why: string) => new BerthError('ECORRUPT', `tar-split record ${path} is damaged: ${why}`);
  let buf: Buffer = Buffer.alloc(0);
  let magicSeen = false;
  const source = createReadStream(path).pipe(createGunzip());
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (!magicSeen) {
        if (buf.length < MAGIC.length) continue;
        if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) throw corrupt('unknown format');
        buf = buf.subarray(MAGIC.length);
        magicSeen = true;
      }
      for (;;) {
        if (buf.length === 0) break;
        if (buf[0] === RAW) {
          if (buf.length < 5) break;
          const length = buf.readUInt32BE(1);
          if (buf.length < 5 + length) break;
          yield { raw: buf.subarray(5, 5 + length) };
          buf = buf.subarray(5 + length);
        } else if (buf[0] === FILE) {
          if (buf.length < 3) break;
          const length = buf.readUInt16BE(1);
          if (buf.length < 3 + length + 8) break;
          const filePath = buf.toString('utf8', 3, 3 + length);
          const size = Number(buf.readBigUInt64BE(3 + length));
          yield { path: filePath, size };
          buf = buf.subarray(3 + length + 8);
        } else {
          throw corrupt(`unknown frame type ${buf[0]}`);
        }
      }
    }
  } catch (err) {
    if (err instanceof BerthError) throw err;
    throw corrupt((err as Error).message);
  } finally {
    source.destroy();
  }
  if (!magicSeen || buf.length > 0) throw corrupt('truncated');
}

/**
 * The layer's uncompressed tar, rebuilt from its tar-split record and diff/. Paths resolve
 * inside diff/ only (symlinks followed as if diff/ were /), and the final component is
 * never a symlink: a damaged or hostile tree cannot make us read files outside the layer.
 */
export async function* reassembleTar(tarSplitPath: string, diffDir: string): AsyncGenerator<Buffer> {
  for await (const segment of readTarSplit(tarSplitPath)) {
    if ('raw' in segment) { yield segment.raw; continue; }
    yield* readLayerFile(diffDir, segment.path, segment.size);
  }
}

async function* readLayerFile(diffDir: string, path: string, size: number): AsyncGenerator<Buffer> {
  const parent = await secureJoin(diffDir, path.includes('/') ? posix.dirname(path) : '');
  const full = posix.join(parent, posix.basename(path));
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(full, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (err) {
    throw new BerthError('ECORRUPT', `layer file ${JSON.stringify(path)} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BerthError('ECORRUPT', `layer file ${JSON.stringify(path)} is no longer a regular file`);
    if (st.size !== size) throw new BerthError('ECORRUPT', `layer file ${JSON.stringify(path)} has ${st.size} bytes, the layer recorded ${size}`);
    let left = size;
    while (left > 0) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, size - left);
      if (bytesRead === 0) throw new BerthError('ECORRUPT', `layer file ${JSON.stringify(path)} ended early`);
      left -= bytesRead;
      yield chunk.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** sha256 and length of the rebuilt tar. */
export async function digestOfReassembly(tarSplitPath: string, diffDir: string): Promise<{ digest: Digest; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of reassembleTar(tarSplitPath, diffDir)) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}
