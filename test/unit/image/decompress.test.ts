import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { decompressStream, sniffCompression, MAX_ZSTD_WINDOW } from '../../../src/image/decompress';
import { isBerthError } from '../../../src/util/errors';
import { gzip, zstd } from '../../helpers/tar';

/** Feeds `data` in small chunks so headers straddle chunk boundaries. */
function chunked(data: Buffer, size = 1000): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) chunks.push(data.subarray(i, i + size));
  return Readable.from(chunks, { objectMode: false });
}

async function collect(stream: Readable): Promise<{ data: Buffer; largestChunk: number }> {
  const chunks: Buffer[] = [];
  let largestChunk = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    largestChunk = Math.max(largestChunk, chunk.length);
  }
  return { data: Buffer.concat(chunks), largestChunk };
}

async function failure(stream: Readable): Promise<unknown> {
  try { await collect(stream); } catch (err) { return err; }
  throw new Error('expected the stream to fail');
}

// Compressible but not trivial: repeated random blocks.
const block = randomBytes(4096);
const payload = Buffer.concat([...Array(300).keys()].map((i) => (i % 3 === 0 ? randomBytes(4096) : block)));

test('sniffs gzip, zstd and plain data by magic bytes', () => {
  assert.is(sniffCompression(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
  assert.is(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
  assert.is(sniffCompression(Buffer.from('ustar')), 'none');
  assert.is(sniffCompression(Buffer.alloc(0)), 'none');
});

test('plain data passes through unchanged, including an empty stream', async () => {
  assert.ok((await collect(decompressStream(chunked(payload, 333)))).data.equals(payload));
  assert.is((await collect(decompressStream(Readable.from([], { objectMode: false })))).data.length, 0);
});

test('gzip is decompressed', async () => {
  assert.ok((await collect(decompressStream(chunked(gzip(payload), 501)))).data.equals(payload));
});

test('zstd is decompressed, with checksums and several frames', async () => {
  assert.ok((await collect(decompressStream(chunked(zstd(payload, ['--check']), 7)))).data.equals(payload));
  const twoFrames = Buffer.concat([zstd(payload.subarray(0, 5000)), zstd(payload.subarray(5000), ['--no-check'])]);
  assert.ok((await collect(decompressStream(chunked(twoFrames, 4096)))).data.equals(payload));
});

test('a zstd bomb comes out one block at a time', async () => {
  const zeros = Buffer.alloc(64 * 1024 * 1024);
  const bomb = zstd(zeros, ['-19']);
  assert.ok(bomb.length < 64 * 1024, 'fixture should be tiny');
  const { data, largestChunk } = await collect(decompressStream(chunked(bomb, 64 * 1024)));
  assert.is(data.length, zeros.length);
  assert.ok(largestChunk <= 128 * 1024, `largest chunk ${largestChunk}`);
});

test('a zstd frame asking for a huge window is refused before allocation', async () => {
  // magic, descriptor (no single segment, no checksum), window descriptor exponent 31
  const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00]);
  const err = await failure(decompressStream(chunked(header)));
  assert.ok(isBerthError(err, 'ETOOLARGE'), String(err));
  assert.ok(MAX_ZSTD_WINDOW < 2 ** 41);
});

test('truncated gzip is a clear EINVAL', async () => {
  const compressed = gzip(payload);
  const err = await failure(decompressStream(chunked(compressed.subarray(0, compressed.length >> 1))));
  assert.ok(isBerthError(err, 'EINVAL'), String(err));
  assert.match((err as Error).message, /gzip data is truncated/);
});

test('corrupt gzip names the problem', async () => {
  const compressed = Buffer.from(gzip(payload));
  compressed[3] = 0xff; // reserved flag bits
  const err = await failure(decompressStream(chunked(compressed)));
  assert.ok(isBerthError(err, 'EINVAL'), String(err));
  assert.match((err as Error).message, /not valid gzip data/);
});

test('truncated and corrupt zstd are EINVAL', async () => {
  const compressed = zstd(payload);
  const truncated = await failure(decompressStream(chunked(compressed.subarray(0, compressed.length >> 1))));
  assert.ok(isBerthError(truncated, 'EINVAL'), String(truncated));
  assert.match((truncated as Error).message, /zstd data is truncated/);

  const trailingGarbage = Buffer.concat([compressed, Buffer.from('not a zstd frame')]);
  const garbage = await failure(decompressStream(chunked(trailingGarbage)));
  assert.ok(isBerthError(garbage, 'EINVAL'), String(garbage));
  assert.match((garbage as Error).message, /not valid zstd data/);
});

test('errors of the source stream pass through unchanged', async () => {
  const source = new Readable({ read() { this.destroy(new Error('network down')); } });
  const err = await failure(decompressStream(source));
  assert.is((err as Error).message, 'network down');
});

test.run();
