import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, symlinkSync, existsSync, readdirSync, lstatSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyLayerByCopy, type LowerLayer } from '../../../src/storage';
import { isBerthError } from '../../../src/util/errors';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-copy-'));
  try { await fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

function layer(diffPath: string, whiteouts: string[] = [], opaques: string[] = []): LowerLayer {
  mkdirSync(diffPath, { recursive: true });
  return { diffPath, whiteouts, opaques, whiteoutFormat: 'none' };
}

test('whiteouts delete, opaque dirs hide lower content, upper content wins', async () => {
  await withDir(async (dir) => {
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs);
    const l1 = layer(join(dir, 'l1'));
    mkdirSync(join(l1.diffPath, 'etc/conf.d'), { recursive: true });
    writeFileSync(join(l1.diffPath, 'etc/conf.d/old'), '1');
    writeFileSync(join(l1.diffPath, 'etc/passwd'), 'root');
    writeFileSync(join(l1.diffPath, 'gone'), 'x');
    mkdirSync(join(l1.diffPath, 'tree/deep'), { recursive: true });
    await applyLayerByCopy(rootfs, l1);

    const l2 = layer(join(dir, 'l2'), ['gone', 'tree'], ['etc/conf.d']);
    mkdirSync(join(l2.diffPath, 'etc/conf.d'), { recursive: true });
    writeFileSync(join(l2.diffPath, 'etc/conf.d/new'), '2');
    writeFileSync(join(l2.diffPath, 'etc/passwd'), 'root2');
    await applyLayerByCopy(rootfs, l2);

    assert.equal(readdirSync(rootfs).sort(), ['etc']);
    assert.equal(readdirSync(join(rootfs, 'etc/conf.d')), ['new']);
    assert.is(readFileSync(join(rootfs, 'etc/passwd'), 'utf8'), 'root2');
  });
});

test('a file replaces a dir and a dir replaces a file or symlink', async () => {
  await withDir(async (dir) => {
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs);
    const l1 = layer(join(dir, 'l1'));
    mkdirSync(join(l1.diffPath, 'was-dir/inner'), { recursive: true });
    writeFileSync(join(l1.diffPath, 'was-file'), 'f');
    symlinkSync('/etc', join(l1.diffPath, 'was-link'));
    await applyLayerByCopy(rootfs, l1);
    assert.is(readlinkSync(join(rootfs, 'was-link')), '/etc', 'symlinks copied as links');

    const l2 = layer(join(dir, 'l2'));
    writeFileSync(join(l2.diffPath, 'was-dir'), 'now a file');
    mkdirSync(join(l2.diffPath, 'was-file'));
    mkdirSync(join(l2.diffPath, 'was-link'));
    writeFileSync(join(l2.diffPath, 'was-link', 'x'), 'inside');
    await applyLayerByCopy(rootfs, l2);
    assert.is(readFileSync(join(rootfs, 'was-dir'), 'utf8'), 'now a file');
    assert.ok(lstatSync(join(rootfs, 'was-file')).isDirectory());
    assert.ok(lstatSync(join(rootfs, 'was-link')).isDirectory());
    assert.is(readFileSync(join(rootfs, 'was-link', 'x'), 'utf8'), 'inside');
  });
});

test('whiteouts and opaques never reach through a symlink out of the rootfs', async () => {
  await withDir(async (dir) => {
    const rootfs = join(dir, 'rootfs');
    const outside = join(dir, 'outside');
    mkdirSync(rootfs);
    mkdirSync(outside);
    writeFileSync(join(outside, 'victim'), 'keep me');
    const l1 = layer(join(dir, 'l1'));
    symlinkSync(outside, join(l1.diffPath, 'escape'));
    await applyLayerByCopy(rootfs, l1);
    await applyLayerByCopy(rootfs, layer(join(dir, 'l2'), ['escape/victim'], ['escape']));
    assert.ok(existsSync(join(outside, 'victim')));
    // The symlink itself can be whited out, leaving its target alone.
    await applyLayerByCopy(rootfs, layer(join(dir, 'l3'), ['escape']));
    assert.not.ok(existsSync(join(rootfs, 'escape')));
    assert.ok(existsSync(join(outside, 'victim')));
  });
});

test('an opaque layer root hides everything below; unsafe paths are refused', async () => {
  await withDir(async (dir) => {
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs);
    const l1 = layer(join(dir, 'l1'));
    writeFileSync(join(l1.diffPath, 'old'), '');
    await applyLayerByCopy(rootfs, l1);
    const l2 = layer(join(dir, 'l2'), [], ['']);
    writeFileSync(join(l2.diffPath, 'new'), '');
    await applyLayerByCopy(rootfs, l2);
    assert.equal(readdirSync(rootfs), ['new']);

    let error: unknown;
    try { await applyLayerByCopy(rootfs, layer(join(dir, 'l3'), ['../outside'])); } catch (err) { error = err; }
    assert.ok(isBerthError(error, 'EUNSAFE'));
  });
});

test.run();
