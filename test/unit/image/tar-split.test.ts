// tar-split: applying a layer records its layout, and the layer's exact tar (the bytes
// whose sha256 is the diff_id) comes back from that record plus the unpacked files.
// Run as root: whiteouts become overlay char devices, files get their tar owners.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer } from '../../../src/image/layer-apply';
import { TarSplitWriter } from '../../../src/minimal-graph';
import { digestOfReassembly, readTarSplit, reassembleTar } from '../../../src/minimal-graph/tar-split';
import { isBerthError } from '../../../src/util/errors';
import { buildTar, gzip, paxBlock } from '../../helpers/tar';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

let work: string;
let count = 0;

test.before(() => { work = mkdtempSync(join(tmpdir(), 'berth-tar-split-')); });
test.after(() => { rmSync(work, { recursive: true, force: true }); });

/** Small uneven chunks, so headers and payloads straddle chunk boundaries. */
function chunked(data: Buffer, size = 333): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) chunks.push(data.subarray(i, i + size));
  return Readable.from(chunks, { objectMode: false });
}

interface Recorded { root: string; tarSplit: string; diffId: string }

async function record(layer: Buffer, whiteoutFormat: 'overlay' | 'none' = 'overlay', input: Buffer = layer): Promise<Recorded> {
  const dir = join(work, `case-${++count}`);
  const root = join(dir, 'diff');
  mkdirSync(root, { recursive: true });
  const tarSplit = join(dir, 'tar-split');
  const writer = new TarSplitWriter();
  const result = await applyLayer(chunked(input), root, { whiteoutFormat, tarSplit: writer });
  const { record: bytes, failure } = await writer.finish();
  assert.is(failure, undefined);
  writeFileSync(tarSplit, bytes!);
  assert.is(result.diffId, sha256(layer), 'diff_id is the uncompressed tar');
  return { root, tarSplit, diffId: result.diffId };
}

async function rebuilt(rec: Recorded): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of reassembleTar(rec.tarSplit, rec.root)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * Applies, rebuilds, compares. `files` are the paths whose payloads the record must
 * reference rather than copy: a recorder that lost track of the tar would copy
 * everything and still rebuild the right bytes, just without saving any space.
 */
async function assertRoundTrip(layer: Buffer, files: string[], whiteoutFormat: 'overlay' | 'none' = 'overlay'): Promise<Recorded> {
  const rec = await record(layer, whiteoutFormat);
  const back = await rebuilt(rec);
  assert.is(back.length, layer.length, 'same length');
  assert.ok(back.equals(layer), 'byte-identical tar');
  const referenced: string[] = [];
  for await (const segment of readTarSplit(rec.tarSplit)) if ('path' in segment) referenced.push(segment.path);
  assert.equal(referenced, files, 'file payloads referenced, not copied');
  assert.equal(await digestOfReassembly(rec.tarSplit, rec.root), { digest: rec.diffId, size: layer.length });
  return rec;
}

const longDir = `deep/${'d'.repeat(120)}/${'e'.repeat(90)}`;
const longName = `${longDir}/${'f'.repeat(140)}.txt`;

/** The same tree, archived by GNU tar in `format` (gnu: 'L'/'K' long names; posix: PAX). */
function gnuTar(format: 'gnu' | 'posix' | 'ustar', extraArgs: string[] = []): Buffer {
  const src = join(work, `tree-${format}-${++count}`);
  mkdirSync(join(src, longDir), { recursive: true });
  mkdirSync(join(src, 'etc'));
  writeFileSync(join(src, longName), 'long name content\n');
  writeFileSync(join(src, 'etc', 'empty'), '');
  writeFileSync(join(src, 'etc', 'block'), Buffer.alloc(512 * 3, 7)); // exactly 512*k: no padding
  writeFileSync(join(src, 'etc', 'odd'), Buffer.alloc(1000, 1));
  symlinkSync(`../${longName}`, join(src, 'etc', 'to-long'));
  symlinkSync(`/${'s'.repeat(150)}/target`, join(src, 'etc', 'long-target'));
  linkSync(join(src, 'etc', 'odd'), join(src, 'etc', 'odd-hardlink'));
  linkSync(join(src, longName), join(src, 'etc', 'hardlink-to-long'));
  const args = ['-C', src, `--format=${format}`, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', ...extraArgs, '-cf', '-', '.'];
  return execFileSync('tar', args, { maxBuffer: 64 << 20 });
}

/** Non-empty regular files of gnuTar's tree in archive order (hardlinks are header-only). */
const TREE_FILES = [longName, 'etc/block', 'etc/odd'];

test('GNU format: long names and link targets (L/K), symlinks, hardlinks, empty and 512*k files, 10 KiB record padding', async () => {
  const layer = gnuTar('gnu');
  assert.ok(layer.length % 10240 === 0, 'GNU tar pads to its record size: zeros after the end blocks');
  await assertRoundTrip(layer, TREE_FILES);
});

test('PAX format (GNU tar posix): path/linkpath records and mtime records for every entry', async () => {
  await assertRoundTrip(gnuTar('posix'), TREE_FILES);
});

/** Sets a header's type flag and fixes its checksum. */
function retyped(block: Buffer, flag: string): Buffer {
  const copy = Buffer.from(block);
  copy.write(flag, 156, 'latin1');
  copy.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += copy[i]!;
  copy.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return copy;
}

test('PAX records written by hand: binary xattrs, a path override, a size override, a global header', async () => {
  const layer = await buildTar([
    { name: 'dir', type: 'directory', mode: 0o755 },
    { name: 'x', body: 'payload named by PAX path', rawPax: { path: `dir/${'p'.repeat(200)}`, 'SCHILY.xattr.user.bin': Buffer.from([0, 1, 2, 255]) } },
    { name: 'caps', body: Buffer.alloc(512, 9), rawPax: { 'SCHILY.xattr.user.caps': Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0]) } },
  ]);
  const body = layer.subarray(0, layer.length - 1024);
  const global = retyped(paxBlock({ comment: 'a global header' }).subarray(0, 512), 'g');
  const globalPayload = paxBlock({ comment: 'a global header' }).subarray(512);
  // The header says 0 bytes, the PAX record 600: tar-stream (and the recorder) take 600.
  const sized = await buildTar([{ name: 'resized', body: '' }]);
  const overridden = Buffer.concat([
    paxBlock({ size: '600' }), sized.subarray(0, 512), Buffer.alloc(600, 0x61), Buffer.alloc(1024 - 600),
  ]);
  const tarball = Buffer.concat([global, globalPayload, body, overridden, Buffer.alloc(1024)]);
  const rec = await assertRoundTrip(tarball, [`dir/${'p'.repeat(200)}`, 'caps', 'resized']);
  assert.is((await import('node:fs')).readFileSync(join(rec.root, 'resized'), 'utf8'), 'a'.repeat(600), 'size came from PAX');
});

test('whiteouts and opaque markers (overlay char devices in diff/) come back as their tar headers', async () => {
  const layer = await buildTar([
    { name: 'data/', type: 'directory', mode: 0o755 },
    { name: 'data/.wh.gone', body: '' },
    { name: 'data/.wh..wh..opq', body: '' },
    { name: 'data/kept', body: 'new\n' },
    { name: '.wh.toplevel', body: '', uid: 1000, gid: 1000 },
  ]);
  const rec = await assertRoundTrip(layer, ['data/kept'], 'overlay');
  const st = (await import('node:fs')).lstatSync(join(rec.root, 'data', 'gone'));
  assert.ok(st.isCharacterDevice(), 'the overlay driver made a 0:0 char device');
  await assertRoundTrip(layer, ['data/kept'], 'none');
});

test('payloads the applier does not write stay in the record: unknown entry types, a whiteout with data', async () => {
  const layer = await buildTar([
    { name: 'odd-type', body: 'kept verbatim because no file holds it', typeFlag: 'Z' },
    { name: '.wh.with-payload', body: 'whiteouts carry no file' },
    { name: 'fifo', type: 'fifo' },
    { name: 'file', body: 'x'.repeat(513) },
  ]);
  await assertRoundTrip(layer, ['file']);
});

test('a gzip layer records its uncompressed tar', async () => {
  const layer = gnuTar('ustar', ['--exclude=./deep', '--exclude=./etc/to-long', '--exclude=./etc/long-target', '--exclude=./etc/hardlink-to-long']);
  const rec = await record(layer, 'overlay', gzip(layer));
  assert.ok((await rebuilt(rec)).equals(layer));
});

test('the record holds headers, not file contents', async () => {
  const big = Buffer.alloc(4 << 20);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i); // incompressible enough
  const layer = await buildTar([{ name: 'big.bin', body: big }, { name: 'small', body: 'x' }]);
  const rec = await assertRoundTrip(layer, ['big.bin', 'small']);
  const size = (await import('node:fs')).statSync(rec.tarSplit).size;
  assert.ok(size < 4096, `tar-split of a 4 MiB layer is ${size} bytes`);
});

test('a tar whose later entry overwrites an earlier path cannot be rebuilt: the digest differs (so the blob would stay)', async () => {
  const layer = await buildTar([
    { name: 'same', body: 'first version\n' },
    { name: 'same', body: 'second\n' },
  ]);
  const rec = await record(layer);
  const got = await digestOfReassembly(rec.tarSplit, rec.root).then((r) => r.digest, (err) => String(err));
  assert.is.not(got, rec.diffId);
});

test('a changed file in diff/ changes the rebuilt digest; a resized or replaced one is ECORRUPT naming it', async () => {
  const layer = await buildTar([{ name: 'etc/conf', body: 'original\n' }, { name: 'etc/other', body: 'abc' }]);
  const rec = await assertRoundTrip(layer, ['etc/conf', 'etc/other']);
  writeFileSync(join(rec.root, 'etc', 'conf'), 'tampered\n'); // same length
  assert.is.not((await digestOfReassembly(rec.tarSplit, rec.root)).digest, rec.diffId);
  appendFileSync(join(rec.root, 'etc', 'conf'), 'more');
  const err = await digestOfReassembly(rec.tarSplit, rec.root).then(() => undefined, (e: unknown) => e);
  assert.ok(isBerthError(err, 'ECORRUPT'), String(err));
  assert.match((err as Error).message, 'etc/conf');
  truncateSync(join(rec.root, 'etc', 'conf'), 0);
  unlinkSync(join(rec.root, 'etc', 'conf'));
  const gone = await digestOfReassembly(rec.tarSplit, rec.root).then(() => undefined, (e: unknown) => e);
  assert.ok(isBerthError(gone, 'ECORRUPT'), String(gone));
});

test('reassembly reads inside diff/ only: symlinked parents resolve as in a chroot, a symlinked file is refused', async () => {
  const outside = join(work, 'outside-secret');
  writeFileSync(outside, 'host secret');
  const layer = await buildTar([
    { name: 'up', type: 'symlink', linkname: '/' },
    { name: 'up/inner', body: 'inside the layer' }, // lands in diff/inner, as in a chroot
  ]);
  const rec = await assertRoundTrip(layer, ['up/inner']);
  unlinkSync(join(rec.root, 'inner'));
  symlinkSync(outside, join(rec.root, 'inner'));
  const err = await rebuilt(rec).then(() => undefined, (e: unknown) => e);
  assert.ok(isBerthError(err, 'ECORRUPT'), `a symlink planted in diff/ is not followed: ${String(err)}`);
});

test('a record over its size cap is given up, not truncated', async () => {
  const writer = new TarSplitWriter(64);
  for (let i = 0; i < 100; i++) writer.raw(Buffer.from(createHash('sha256').update(String(i)).digest()));
  const done = await writer.finish();
  assert.is(done.record, undefined);
  assert.match(done.failure!, 'larger than 64 bytes');
});

test('a damaged record is ECORRUPT', async () => {
  const layer = await buildTar([{ name: 'a', body: 'a' }]);
  const rec = await record(layer);
  writeFileSync(rec.tarSplit, gzip(Buffer.from('BTS1Xgarbage')));
  const err = await rebuilt(rec).then(() => undefined, (e: unknown) => e);
  assert.ok(isBerthError(err, 'ECORRUPT'), String(err));
  const raw = (await import('node:fs')).readFileSync(rec.tarSplit);
  writeFileSync(rec.tarSplit, raw.subarray(0, raw.length - 5));
  assert.ok(isBerthError(await rebuilt(rec).then(() => undefined, (e: unknown) => e), 'ECORRUPT'), 'truncated gzip');
});

test.run();
