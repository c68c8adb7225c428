import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import {
  existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync,
  utimesSync, writeFileSync, symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer, cleanEntryPath, secureJoin, type ApplyOptions, type ApplyResult } from '../../../src/image/layer-apply';
import { lgetxattr, llistxattr, splitDev } from '../../../src/host/fsops';
import { isBerthError, type ErrorCode } from '../../../src/util/errors';
import { buildTar, gzip, zstd, type EntryInput } from '../../helpers/tar';

interface Sandbox { dir: string; root: string; outside: string }

function sandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'berth-layer-'));
  const root = join(dir, 'root');
  const outside = join(dir, 'outside');
  mkdirSync(root);
  mkdirSync(join(outside, 'b'), { recursive: true });
  writeFileSync(join(outside, 'canary'), 'precious');
  utimesSync(join(outside, 'b'), 1_000_000_000, 1_000_000_000);
  utimesSync(outside, 1_000_000_000, 1_000_000_000);
  return { dir, root, outside };
}

/** Everything observable about a tree, without following symlinks. */
function snapshot(path: string): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string) => {
    const st = lstatSync(p);
    let line = `${rel} mode=${st.mode.toString(8)} uid=${st.uid} gid=${st.gid} nlink=${st.nlink} size=${st.size} mtime=${st.mtimeMs} ino=${st.ino}`;
    line += ` xattrs=${llistxattr(p).join(',')}`;
    if (st.isSymbolicLink()) line += ` -> ${readlinkSync(p)}`;
    if (st.isFile()) line += ` sha=${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    out.push(line);
    if (st.isDirectory()) for (const name of readdirSync(p).sort()) walk(join(p, name), `${rel}/${name}`);
  };
  walk(path, '.');
  return out;
}

function tarStream(data: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += 700) chunks.push(data.subarray(i, i + 700));
  return Readable.from(chunks, { objectMode: false });
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function apply(root: string, entries: EntryInput[], opts: Partial<ApplyOptions> = {}): Promise<ApplyResult> {
  return applyLayer(tarStream(await buildTar(entries)), root, { whiteoutFormat: 'none', ...opts });
}

/**
 * Runs a hostile layer and checks that nothing outside root changed: the outside dir is
 * identical and the sandbox holds only root and outside.
 */
async function hostile(
  name: string,
  entries: (s: Sandbox) => EntryInput[],
  expect: { code?: ErrorCode; check?: (s: Sandbox) => void },
  opts: Partial<ApplyOptions> = {},
): Promise<void> {
  for (const whiteoutFormat of ['none', 'overlay'] as const) {
    const s = sandbox();
    try {
      const before = snapshot(s.outside);
      let error: unknown;
      try { await apply(s.root, entries(s), { whiteoutFormat, ...opts }); } catch (err) { error = err; }
      if (expect.code) {
        assert.ok(isBerthError(error, expect.code), `${name} (${whiteoutFormat}): expected ${expect.code}, got ${String(error)}`);
        assert.ok(String((error as Error).message).length > 0);
      } else {
        assert.is(error, undefined, `${name} (${whiteoutFormat}): unexpected ${String(error)}`);
        expect.check?.(s);
      }
      assert.equal(snapshot(s.outside), before, `${name} (${whiteoutFormat}): outside changed`);
      assert.equal(readdirSync(s.dir).sort(), ['outside', 'root'], `${name}: something appeared beside root`);
    } finally {
      rmSync(s.dir, { recursive: true, force: true });
    }
  }
}

test('cleanEntryPath strips leading slashes and rejects climbing out', () => {
  assert.is(cleanEntryPath('./a//b/./c/'), 'a/b/c');
  assert.is(cleanEntryPath('/etc/passwd'), 'etc/passwd');
  assert.is(cleanEntryPath('a/b/../c'), 'a/c');
  assert.is(cleanEntryPath('./'), '');
  for (const bad of ['..', '../x', 'a/../../x', '/../x', 'a\0b']) {
    assert.throws(() => cleanEntryPath(bad), (err: unknown) => isBerthError(err, 'EUNSAFE'), bad);
  }
});

test('secureJoin follows symlinks as if root were /', async () => {
  const s = sandbox();
  try {
    symlinkSync('../outside', join(s.root, 'rel'));
    symlinkSync(s.outside, join(s.root, 'abs'));
    symlinkSync('../../../../..', join(s.root, 'up'));
    mkdirSync(join(s.root, 'real'));
    symlinkSync('/real', join(s.root, 'toreal'));
    assert.is(await secureJoin(s.root, 'rel/x'), join(s.root, 'outside/x'));
    assert.is(await secureJoin(s.root, 'abs/x'), join(s.root, s.outside, 'x'));
    assert.is(await secureJoin(s.root, 'up/etc'), join(s.root, 'etc'));
    assert.is(await secureJoin(s.root, 'toreal/y'), join(s.root, 'real/y'));
    assert.is(await secureJoin(s.root, '../../x'), join(s.root, 'x'));
    symlinkSync('loop2', join(s.root, 'loop1'));
    symlinkSync('loop1', join(s.root, 'loop2'));
    let loopError: unknown;
    try { await secureJoin(s.root, 'loop1/x'); } catch (err) { loopError = err; }
    assert.ok(isBerthError(loopError, 'EUNSAFE'));
  } finally { rmSync(s.dir, { recursive: true, force: true }); }
});

test('hostile: ../ paths are rejected', async () => {
  await hostile('../escape', () => [{ name: '../escape', body: 'x' }], { code: 'EUNSAFE' });
  await hostile('a/../../escape', () => [{ name: 'a/', type: 'directory' }, { name: 'a/../../escape', body: 'x' }], { code: 'EUNSAFE' });
  await hostile('../outside/canary', () => [{ name: '../outside/canary', body: 'pwned' }], { code: 'EUNSAFE' });
  await hostile('symlink named ..', () => [{ name: '..', type: 'symlink', linkname: '/' }], { code: 'EUNSAFE' });
});

test('hostile: absolute paths land inside root', async () => {
  await hostile('absolute', (s) => [
    { name: '/etc/berth-test', body: 'in root' },
    { name: `${s.outside}/canary`, body: 'pwned' },
  ], {
    check: (s) => {
      assert.is(readFileSync(join(s.root, 'etc/berth-test'), 'utf8'), 'in root');
      assert.is(readFileSync(join(s.root, s.outside, 'canary'), 'utf8'), 'pwned');
    },
  });
});

test('hostile: files written through symlinks to the outside stay inside root', async () => {
  await hostile('relative symlink', () => [
    { name: 'evil', type: 'symlink', linkname: '../outside' },
    { name: 'evil/pwned', body: 'x' },
    { name: 'evil/canary', body: 'overwritten?' },
    { name: 'evil/b/', type: 'directory', mode: 0o777 },
  ], {
    check: (s) => {
      assert.is(readlinkSync(join(s.root, 'evil')), '../outside');
      assert.is(readFileSync(join(s.root, 'outside/pwned'), 'utf8'), 'x');
      assert.is(readFileSync(join(s.root, 'outside/canary'), 'utf8'), 'overwritten?');
    },
  });
  await hostile('absolute symlink', (s) => [
    { name: 'evil', type: 'symlink', linkname: s.outside },
    { name: 'evil/pwned', body: 'x' },
    { name: 'evil/sub/deeper', body: 'y' },
  ], {
    check: (s) => {
      assert.is(readFileSync(join(s.root, s.outside, 'pwned'), 'utf8'), 'x');
      assert.is(readFileSync(join(s.root, s.outside, 'sub/deeper'), 'utf8'), 'y');
    },
  });
  await hostile('symlink chain climbing with ..', (s) => [
    { name: 'a/b/', type: 'directory' },
    { name: 'a/b/up', type: 'symlink', linkname: '../../../../../../..' },
    { name: 'a/b/up/outside/canary', body: 'pwned' },
    { name: 'hop', type: 'symlink', linkname: 'a/b/up' },
    { name: `hop${s.outside}/pwned`, body: 'x' },
  ], {
    check: (s) => {
      assert.is(readFileSync(join(s.root, 'outside/canary'), 'utf8'), 'pwned');
      assert.ok(existsSync(join(s.root, s.outside, 'pwned')));
    },
  });
});

test('hostile: a final-component symlink is replaced, never followed', async () => {
  await hostile('file over symlink', () => [
    { name: 'evil', type: 'symlink', linkname: '../outside/canary' },
    { name: 'evil', body: 'replaced', mode: 0o600 },
  ], { check: (s) => assert.is(readFileSync(join(s.root, 'evil'), 'utf8'), 'replaced') });
  await hostile('dir over symlink', (s) => [
    { name: 'evil', type: 'symlink', linkname: s.outside },
    { name: 'evil/', type: 'directory', mode: 0o777, uid: 1000 },
  ], { check: (s) => assert.ok(lstatSync(join(s.root, 'evil')).isDirectory()) });
  await hostile('device over symlink', () => [
    { name: 'evil', type: 'symlink', linkname: '../outside/canary' },
    { name: 'evil', type: 'fifo', mode: 0o666 },
  ], { check: (s) => assert.ok(lstatSync(join(s.root, 'evil')).isFIFO()) });
});

test('hostile: directory mtimes are not set through a later symlink', async () => {
  await hostile('dir replaced by symlink', (s) => [
    { name: 'a/', type: 'directory' },
    { name: 'a/b/', type: 'directory', mtime: new Date(1_234_567_890_000) },
    { name: 'a', type: 'symlink', linkname: s.outside },
  ], { check: (s) => assert.ok(lstatSync(join(s.root, 'a')).isSymbolicLink()) });
});

test('hostile: hardlinks to the outside are refused', async () => {
  await hostile('hardlink ../outside/canary', () => [
    { name: 'hl', type: 'link', linkname: '../outside/canary' },
  ], { code: 'EUNSAFE' });
  await hostile('hardlink via symlink', () => [
    { name: 'evil', type: 'symlink', linkname: '../outside' },
    { name: 'hl', type: 'link', linkname: 'evil/canary' },
  ], { code: 'EINVAL' });
  await hostile('hardlink via absolute symlink', (s) => [
    { name: 'evil', type: 'symlink', linkname: s.outside },
    { name: 'hl', type: 'link', linkname: 'evil/canary' },
  ], { code: 'EINVAL' });
  await hostile('hardlink absolute name', (s) => [
    { name: 'hl', type: 'link', linkname: `${s.outside}/canary` },
  ], { code: 'EINVAL' });
  await hostile('hardlink to a directory', () => [
    { name: 'd/', type: 'directory' },
    { name: 'hl', type: 'link', linkname: 'd' },
  ], { code: 'EUNSAFE' });
  await hostile('hardlink written through a symlinked parent', () => [
    { name: 'file', body: 'inside' },
    { name: 'evil', type: 'symlink', linkname: '../outside' },
    { name: 'evil/hl', type: 'link', linkname: 'file' },
  ], { check: (s) => assert.is(lstatSync(join(s.root, 'outside/hl')).ino, lstatSync(join(s.root, 'file')).ino) });
});

test('hostile: whiteouts pointing outside delete nothing outside', async () => {
  await hostile('../.wh.canary', () => [{ name: '../.wh.canary', body: '' }], { code: 'EUNSAFE' });
  await hostile('../outside/.wh.canary', () => [{ name: '../outside/.wh.canary', body: '' }], { code: 'EUNSAFE' });
  await hostile('evil/.wh.canary', () => [
    { name: 'evil', type: 'symlink', linkname: '../outside' },
    { name: 'evil/.wh.canary', body: '' },
  ], { check: (s) => assert.ok(lstatSync(join(s.root, 'evil')).isSymbolicLink()) });
  await hostile('abs evil/.wh.canary', (s) => [
    { name: 'evil', type: 'symlink', linkname: s.outside },
    { name: 'evil/.wh.canary', body: '' },
    { name: 'evil/b/.wh..wh..opq', body: '' },
  ], {});
  await hostile('.wh.. and .wh...', () => [{ name: 'x/.wh...', body: '' }], { code: 'EUNSAFE' });
  await hostile('.wh..', () => [{ name: '.wh..', body: '' }], { code: 'EUNSAFE' });
});

test('hostile: symlink loops are EUNSAFE', async () => {
  await hostile('loop', () => [
    { name: 'l1', type: 'symlink', linkname: 'l2' },
    { name: 'l2', type: 'symlink', linkname: '/l1' },
    { name: 'l1/x', body: 'x' },
  ], { code: 'EUNSAFE' });
});

test('hostile: diff_id mismatch, truncated gzip, over maxBytes', async () => {
  const layer = await buildTar([{ name: 'f', body: 'x'.repeat(10_000) }]);
  await hostile('diff_id', () => [{ name: 'f', body: 'x' }], { code: 'EDIGEST' }, { expectedDiffId: sha256(Buffer.from('other')) });

  for (const whiteoutFormat of ['none', 'overlay'] as const) {
    const s = sandbox();
    try {
      const before = snapshot(s.outside);
      const compressed = gzip(layer);
      let err: unknown;
      try { await applyLayer(tarStream(compressed.subarray(0, compressed.length >> 1)), s.root, { whiteoutFormat }); } catch (e) { err = e; }
      assert.ok(isBerthError(err, 'EINVAL'), String(err));
      assert.match((err as Error).message, /truncated/);

      err = undefined;
      try { await applyLayer(tarStream(layer.subarray(0, 2048)), s.root, { whiteoutFormat }); } catch (e) { err = e; }
      assert.ok(isBerthError(err, 'EINVAL'), `truncated plain tar: ${String(err)}`);

      err = undefined;
      let readAfterLimit = 0;
      const endless = new Readable({
        read() { readAfterLimit++; this.push(Buffer.alloc(64 * 1024)); },
      });
      try { await applyLayer(endless, s.root, { whiteoutFormat, maxBytes: 1024 * 1024 }); } catch (e) { err = e; }
      assert.ok(isBerthError(err, 'ETOOLARGE'), String(err));
      assert.ok(endless.destroyed, 'input must stop being read');
      assert.ok(readAfterLimit < 100);

      err = undefined;
      try { await applyLayer(tarStream(gzip(layer)), s.root, { whiteoutFormat, maxBytes: 5000 }); } catch (e) { err = e; }
      assert.ok(isBerthError(err, 'ETOOLARGE'), String(err));
      assert.equal(snapshot(s.outside), before);
      assert.equal(readdirSync(s.dir).sort(), ['outside', 'root']);
    } finally { rmSync(s.dir, { recursive: true, force: true }); }
  }
});

const lower: EntryInput[] = [
  { name: 'etc/', type: 'directory', mode: 0o755 },
  { name: 'etc/a', body: 'a' },
  { name: 'etc/b', body: 'b' },
  { name: 'etc/adir/', type: 'directory' },
  { name: 'etc/adir/inner', body: 'inner' },
  { name: 'opq/', type: 'directory' },
  { name: 'opq/old', body: 'old' },
  { name: 'opq/sub/', type: 'directory' },
  { name: 'opq/sub/old2', body: 'old2' },
  { name: 'opq/sub/keep-name', body: 'lower' },
];
const upper: EntryInput[] = [
  { name: 'etc/', type: 'directory', mode: 0o755 },
  { name: 'etc/.wh.a', body: '' },
  { name: 'etc/.wh.adir', body: '' },
  { name: 'etc/.wh..wh.plnk', body: '' },
  { name: 'opq/', type: 'directory' },
  { name: 'opq/.wh..wh..opq', body: '' },
  { name: 'opq/new', body: 'new' },
  { name: 'opq/sub/', type: 'directory' },
  { name: 'opq/sub/keep-name', body: 'upper' },
];

test('multi-layer apply on the copy path removes whited-out and opaque contents', async () => {
  const s = sandbox();
  try {
    await apply(s.root, lower);
    const result = await apply(s.root, upper);
    assert.equal(result.whiteouts.sort(), ['etc/a', 'etc/adir']);
    assert.equal(result.opaques, ['opq']);
    assert.equal(readdirSync(join(s.root, 'etc')).sort(), ['b']);
    assert.equal(readdirSync(join(s.root, 'opq')).sort(), ['new', 'sub']);
    assert.equal(readdirSync(join(s.root, 'opq/sub')), ['keep-name']);
    assert.is(readFileSync(join(s.root, 'opq/sub/keep-name'), 'utf8'), 'upper');
    assert.is(lgetxattr(join(s.root, 'opq'), 'trusted.overlay.opaque'), undefined);
  } finally { rmSync(s.dir, { recursive: true, force: true }); }
});

test('overlay format writes 0:0 whiteout devices and the opaque xattr', async () => {
  const s = sandbox();
  try {
    const result = await apply(s.root, upper, { whiteoutFormat: 'overlay' });
    assert.equal(result.whiteouts.sort(), ['etc/a', 'etc/adir']);
    assert.equal(result.opaques, ['opq']);
    for (const hidden of ['etc/a', 'etc/adir']) {
      const st = lstatSync(join(s.root, hidden));
      assert.ok(st.isCharacterDevice(), hidden);
      assert.is(st.rdev, 0);
    }
    assert.not.ok(existsSync(join(s.root, 'etc/.wh.a')));
    assert.not.ok(existsSync(join(s.root, 'etc/.wh..wh.plnk')));
    assert.not.ok(existsSync(join(s.root, 'opq/.wh..wh..opq')));
    assert.equal(lgetxattr(join(s.root, 'opq'), 'trusted.overlay.opaque'), Buffer.from('y'));
    assert.is(readFileSync(join(s.root, 'opq/new'), 'utf8'), 'new');
  } finally { rmSync(s.dir, { recursive: true, force: true }); }
});

test('files, links, devices, owners, modes, xattrs and times are reproduced', async () => {
  const s = sandbox();
  try {
    const binary = Buffer.from([0x01, 0x80, 0xff, 0x00, 0x7f]);
    const entries: EntryInput[] = [
      { name: './', type: 'directory', mode: 0o755 },
      { name: 'bin/', type: 'directory', mode: 0o755, mtime: new Date(1_111_111_111_000) },
      { name: 'bin/su', body: '#!/bin/sh\n', mode: 0o4755, uid: 0, gid: 0 },
      { name: 'bin/sgid', body: 'g', mode: 0o2711, uid: 1000, gid: 1000 },
      { name: 'bin/link', type: 'link', linkname: 'bin/su', mode: 0o4755 },
      { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox', uid: 1000, gid: 1000 },
      { name: 'home/user/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
      { name: 'home/user/file', body: 'hello', mode: 0o640, uid: 1000, gid: 1000, mtime: new Date(1_222_222_222_000) },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
      { name: 'run/fifo', type: 'fifo', mode: 0o620 },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      {
        name: 'xattr-file', body: 'x',
        rawPax: { 'SCHILY.xattr.user.berth': binary, 'SCHILY.xattr.trusted.berth': 'text', 'SCHILY.xattr.trusted.overlay.opaque': 'y' },
      },
      { name: 'weird', body: '', typeFlag: 'V' }, // unknown type: skipped
      { name: 'bin/.wh..wh.orph', body: '' },
    ];
    const layer = await buildTar(entries);
    const result = await applyLayer(tarStream(zstd(layer)), s.root, { whiteoutFormat: 'none', expectedDiffId: sha256(layer) });
    assert.is(result.diffId, sha256(layer));
    assert.is(result.size, '#!/bin/sh\n'.length + 1 + 'hello'.length + 1);

    const su = lstatSync(join(s.root, 'bin/su'));
    assert.is(su.mode & 0o7777, 0o4755);
    assert.is(lstatSync(join(s.root, 'bin/link')).ino, su.ino);
    assert.is(su.nlink, 2);
    const sgid = lstatSync(join(s.root, 'bin/sgid'));
    assert.is(sgid.mode & 0o7777, 0o2711);
    assert.is(sgid.uid, 1000);
    assert.is(sgid.gid, 1000);
    assert.is(readlinkSync(join(s.root, 'bin/sh')), '/bin/busybox');
    assert.is(lstatSync(join(s.root, 'bin/sh')).uid, 1000);
    const home = lstatSync(join(s.root, 'home/user'));
    assert.is(home.mode & 0o7777, 0o700);
    assert.is(home.uid, 1000);
    const file = lstatSync(join(s.root, 'home/user/file'));
    assert.is(file.mtimeMs, 1_222_222_222_000);
    assert.is(file.mode & 0o7777, 0o640);
    assert.is(lstatSync(join(s.root, 'bin')).mtimeMs, 1_111_111_111_000, 'directory mtime is set after its children');
    const devNull = lstatSync(join(s.root, 'dev/null'));
    assert.ok(devNull.isCharacterDevice());
    assert.equal(splitDev(devNull.rdev), { major: 1, minor: 3 });
    assert.is(devNull.mode & 0o7777, 0o666);
    const sda = lstatSync(join(s.root, 'dev/sda'));
    assert.ok(sda.isBlockDevice());
    assert.equal(splitDev(sda.rdev), { major: 8, minor: 0 });
    assert.ok(lstatSync(join(s.root, 'run/fifo')).isFIFO());
    assert.is(lstatSync(join(s.root, 'tmp')).mode & 0o7777, 0o1777);
    assert.is(lstatSync(s.root).mode & 0o7777, 0o755);
    const xattrFile = join(s.root, 'xattr-file');
    const userValue = lgetxattr(xattrFile, 'user.berth');
    if (userValue !== undefined) assert.equal(userValue, binary); // some file systems lack user.*
    assert.equal(lgetxattr(xattrFile, 'trusted.berth'), Buffer.from('text'));
    assert.is(lgetxattr(xattrFile, 'trusted.overlay.opaque'), undefined, 'overlay xattrs from a layer are dropped');
    assert.not.ok(existsSync(join(s.root, 'weird')));
    assert.equal(result.whiteouts, []);
  } finally { rmSync(s.dir, { recursive: true, force: true }); }
});

test('diffId is the sha256 of the uncompressed bytes, whatever the compression', async () => {
  const layer = await buildTar([{ name: 'a', body: 'a'.repeat(5000) }, { name: 'd/', type: 'directory' }]);
  // Extra zero blocks after the trailer are part of the stream and of its digest.
  const padded = Buffer.concat([layer, Buffer.alloc(10 * 512)]);
  for (const data of [layer, padded]) {
    for (const encoded of [data, gzip(data), zstd(data)]) {
      const s = sandbox();
      try {
        const result = await applyLayer(tarStream(encoded), s.root, { whiteoutFormat: 'overlay' });
        assert.is(result.diffId, sha256(data));
        assert.is(result.size, 5000);
        assert.is(readFileSync(join(s.root, 'a'), 'utf8'), 'a'.repeat(5000));
      } finally { rmSync(s.dir, { recursive: true, force: true }); }
    }
  }
});

test('an existing path is replaced, a directory over a directory keeps its contents', async () => {
  const s = sandbox();
  try {
    await apply(s.root, [
      { name: 'd/', type: 'directory', mode: 0o700 },
      { name: 'd/keep', body: 'k' },
      { name: 'f/', type: 'directory' },
      { name: 'f/gone', body: 'g' },
      { name: 'l', body: 'file' },
    ]);
    await apply(s.root, [
      { name: 'd/', type: 'directory', mode: 0o751 },
      { name: 'f', body: 'now a file' },
      { name: 'l', type: 'symlink', linkname: 'd/keep' },
    ]);
    assert.is(readFileSync(join(s.root, 'd/keep'), 'utf8'), 'k');
    assert.is(lstatSync(join(s.root, 'd')).mode & 0o7777, 0o751);
    assert.is(readFileSync(join(s.root, 'f'), 'utf8'), 'now a file');
    assert.is(readlinkSync(join(s.root, 'l')), 'd/keep');
  } finally { rmSync(s.dir, { recursive: true, force: true }); }
});

test('missing parent directories are created', async () => {
  const s = sandbox();
  try {
    await apply(s.root, [{ name: 'a/b/c/file', body: 'deep' }]);
    assert.is(readFileSync(join(s.root, 'a/b/c/file'), 'utf8'), 'deep');
    assert.is(lstatSync(join(s.root, 'a/b')).mode & 0o777, 0o755);
  } finally { rmSync(s.dir, { recursive: true, force: true }); }
});

test.run();
