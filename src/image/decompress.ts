// Turns a layer blob into its tar stream, whatever the compression. The media type is
// not trusted (Docker-era registries label zstd or plain tars as gzip): the first bytes
// decide. Everything streams; nothing holds more than one compressed block at a time.
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { BerthError } from '../util/errors';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/**
 * Largest zstd window accepted, as the reference decoder's default limit (windowLog 27).
 * fzstd allocates the whole window up front, so a hostile header could otherwise ask for 2 GiB.
 */
export const MAX_ZSTD_WINDOW = 128 * 1024 * 1024;

export type Compression = 'gzip' | 'zstd' | 'none';

export function sniffCompression(head: Uint8Array): Compression {
  const startsWith = (magic: number[]) => head.length >= magic.length && magic.every((b, i) => head[i] === b);
  if (startsWith(GZIP_MAGIC)) return 'gzip';
  if (startsWith(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/** The uncompressed bytes of `input` (gzip, zstd or plain). Decoding errors are BerthError EINVAL. */
export function decompressStream(input: Readable): Readable {
  return Readable.from(decompressChunks(input), { objectMode: false });
}

async function* decompressChunks(input: Readable): AsyncGenerator<Buffer> {
  const source = input[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  try {
    let head = Buffer.alloc(0);
    while (head.length < ZSTD_MAGIC.length) {
      const next = await source.next();
      if (next.done) break;
      head = Buffer.concat([head, toBuffer(next.value)]);
    }
    const rest = prepend(head, source);
    switch (sniffCompression(head)) {
      case 'gzip': yield* gunzipChunks(rest); break;
      case 'zstd': yield* unzstdChunks(rest); break;
      default: yield* rest;
    }
  } finally {
    // Stops the producer when the consumer gives up early (limit hit, unsafe entry).
    await source.return?.();
  }
}

function toBuffer(chunk: Buffer | string | Uint8Array): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  return typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

async function* prepend(head: Buffer, source: AsyncIterator<Buffer | string>): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  for (;;) {
    const next = await source.next();
    if (next.done) return;
    yield toBuffer(next.value);
  }
}

async function* gunzipChunks(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const gunzip = createGunzip();
  // pipeline only propagates errors and teardown; output is read by the loop below.
  pipeline(Readable.from(source, { objectMode: false }), gunzip, () => {});
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } catch (err) {
    throw describeGzipError(err);
  }
}

function describeGzipError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code !== 'string' || !code.startsWith('Z_')) return err; // the source failed, not the data
  const detail = (err as Error).message;
  if (code === 'Z_BUF_ERROR') return new BerthError('EINVAL', `layer gzip data is truncated: ${detail}`, { cause: err });
  return new BerthError('EINVAL', `layer is not valid gzip data: ${detail}`, { cause: err });
}

async function* unzstdChunks(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const output: Buffer[] = [];
  // fzstd may hand out views of its window, which the next push overwrites: copy.
  const decoder = new ZstdDecompress((data) => { if (data.length > 0) output.push(Buffer.from(data)); });
  const cutter = new ZstdBlockCutter();
  const push = (piece: Uint8Array, final: boolean) => {
    try {
      decoder.push(piece, final);
    } catch (err) {
      throw new BerthError('EINVAL', `layer is not valid zstd data: ${(err as Error).message}`, { cause: err });
    }
  };
  for await (const chunk of source) {
    for (const piece of cutter.cut(chunk)) {
      push(piece, false);
      // Yielding after every block keeps memory at one block even for a zstd bomb.
      while (output.length > 0) yield output.shift()!;
    }
  }
  if (!cutter.atFrameBoundary()) throw new BerthError('EINVAL', 'layer zstd data is truncated: the stream ends inside a frame');
  push(new Uint8Array(0), true);
  while (output.length > 0) yield output.shift()!;
}

/**
 * Splits a zstd stream at frame-header, block and checksum boundaries, so that each piece
 * handed to the decoder yields at most one block (<= 128 KiB) of output. Without this a few
 * kilobytes of RLE blocks would expand to gigabytes inside one synchronous push. It also
 * checks every frame's window size before the decoder allocates it.
 */
export class ZstdBlockCutter {
  private state: 'magic' | 'frameHeader' | 'blockHeader' | 'skippableSize' | 'skip' = 'magic';
  private header: number[] = [];
  private need = 4;
  private skipLeft = 0;
  private afterSkip: 'blockHeader' | 'checksum' | 'magic' = 'magic';
  private checksumBytes = 0;

  atFrameBoundary(): boolean {
    return this.state === 'magic' && this.header.length === 0;
  }

  *cut(chunk: Uint8Array): Generator<Uint8Array> {
    let start = 0;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.state === 'skip') {
        const n = Math.min(this.skipLeft, chunk.length - pos);
        pos += n;
        this.skipLeft -= n;
        if (this.skipLeft === 0) {
          yield chunk.subarray(start, pos);
          start = pos;
          this.finishSkip();
        }
        continue;
      }
      this.header.push(chunk[pos++]);
      if (this.header.length < this.need) continue;
      if (this.onHeader()) {
        yield chunk.subarray(start, pos);
        start = pos;
      }
    }
    if (start < pos) yield chunk.subarray(start, pos);
  }

  /** Handles a complete header; true when the stream should be cut after it. */
  private onHeader(): boolean {
    const h = this.header;
    switch (this.state) {
      case 'magic': {
        const magic = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
        if (magic === 0xfd2fb528) {
          this.state = 'frameHeader';
          this.need = 5; // magic + frame header descriptor, which gives the full size
          return false;
        }
        if ((magic & 0xfffffff0) === 0x184d2a50) {
          this.state = 'skippableSize';
          this.need = 8;
          return false;
        }
        throw new BerthError('EINVAL', `layer is not valid zstd data: bad frame magic 0x${magic.toString(16)}`);
      }
      case 'frameHeader': {
        const fhd = h[4];
        const contentSizeFlag = fhd >> 6;
        const singleSegment = (fhd >> 5) & 1;
        const dictIdBytes = [0, 1, 2, 4][fhd & 3];
        const contentSizeBytes = contentSizeFlag === 0 ? singleSegment : [0, 2, 4, 8][contentSizeFlag];
        const size = 5 + (singleSegment ? 0 : 1) + dictIdBytes + contentSizeBytes;
        if (h.length < size) { this.need = size; return false; }
        let window: number;
        if (singleSegment) {
          const at = 5 + dictIdBytes;
          window = 0;
          for (let i = contentSizeBytes - 1; i >= 0; i--) window = window * 256 + h[at + i];
          if (contentSizeBytes === 2) window += 256;
        } else {
          const descriptor = h[5];
          const base = 2 ** (10 + (descriptor >> 3));
          window = base + (base / 8) * (descriptor & 7);
        }
        if (window > MAX_ZSTD_WINDOW) {
          throw new BerthError('ETOOLARGE', `layer zstd frame needs a ${window}-byte window; the limit is ${MAX_ZSTD_WINDOW}`);
        }
        this.checksumBytes = (fhd >> 2) & 1 ? 4 : 0;
        this.expect('blockHeader', 3);
        return true;
      }
      case 'blockHeader': {
        const bits = h[0] | (h[1] << 8) | (h[2] << 16);
        const last = bits & 1;
        const type = (bits >> 1) & 3;
        const blockSize = bits >>> 3;
        if (type === 3) throw new BerthError('EINVAL', 'layer is not valid zstd data: reserved block type');
        if (blockSize > 128 * 1024) throw new BerthError('EINVAL', 'layer is not valid zstd data: block larger than 128 KiB');
        const bodyBytes = type === 1 ? 1 : blockSize; // an RLE block stores one byte
        this.startSkip(bodyBytes, last ? 'checksum' : 'blockHeader');
        return false;
      }
      case 'skippableSize': {
        const payload = (h[4] | (h[5] << 8) | (h[6] << 16) | (h[7] << 24)) >>> 0;
        this.startSkip(payload, 'magic');
        return false;
      }
      default:
        throw new BerthError('EINTERNAL', `zstd cutter in unexpected state ${this.state}`);
    }
  }

  private expect(state: 'magic' | 'blockHeader', bytes: number): void {
    this.state = state;
    this.header = [];
    this.need = bytes;
  }

  private startSkip(bytes: number, then: 'blockHeader' | 'checksum' | 'magic'): void {
    this.header = [];
    this.afterSkip = then;
    this.skipLeft = bytes;
    this.state = 'skip';
    if (bytes === 0) this.finishSkip();
  }

  private finishSkip(): void {
    if (this.afterSkip === 'checksum') {
      this.startSkip(this.checksumBytes, 'magic');
      return;
    }
    this.expect(this.afterSkip, this.afterSkip === 'magic' ? 4 : 3);
  }
}
