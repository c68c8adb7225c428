// Storage drivers against the real kernel: needs root and overlayfs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { promises as fsp, mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync, linkSync, symlinkSync, chownSync, chmodSync, lstatSync, lutimesSync, readdirSync, readlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { selectDriver, OverlayDriver, CopyDriver, backingFsName, type LowerLayer, type StorageDriver } from '../../src/storage';
import { mount, umount2, MNT_DETACH, mountsUnder, readMountInfo, fsTypeMagic } from '../../src/host/mount';
import { mknod, makedev, lsetxattr, lgetxattr, llistxattr, S_IFCHR, S_IFIFO } from '../../src/host/fsops';
import { isBerthError } from '../../src/util/errors';
import { setLogLevel } from '../../src/util/log';

setLogLevel('error');

/** Runs `fn` in a fresh temp dir, then detaches every mount under it and deletes it, even on failure. */
async function withScratch(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-storage-'));
  try {
    await fn(dir);
  } finally {
    for (const m of await mountsUnder(dir)) { try { umount2(m, MNT_DETACH); } catch { /* already gone */ } }
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Three layers: 1 has the base files; 2 deletes gone.txt and adds b.txt; 3 makes d/
 * opaque (hiding d/old*) and rewrites a.txt. With 'overlay' format the diffs also hold
 * overlayfs's markers, as the layer applier writes them.
 */
function buildStack(base: string, format: 'overlay' | 'none'): LowerLayer[] {
  const diff = (n: number): string => { const d = join(base, `layer${n}`, 'diff'); mkdirSync(d, { recursive: true }); return d; };
  const l1 = diff(1), l2 = diff(2), l3 = diff(3);

  writeFileSync(join(l1, 'a.txt'), 'one');
  writeFileSync(join(l1, 'gone.txt'), 'bye');
  mkdirSync(join(l1, 'd'));
  writeFileSync(join(l1, 'd', 'old1'), 'o1');
  writeFileSync(join(l1, 'd', 'old2'), 'o2');
  mkdirSync(join(l1, 'keep'));
  writeFileSync(join(l1, 'keep', 'k'), 'k');
  lsetxattr(join(l1, 'keep', 'k'), 'user.berth', Buffer.from('kept'));
  writeFileSync(join(l1, 'h1'), 'hard');
  linkSync(join(l1, 'h1'), join(l1, 'h2'));
  mkdirSync(join(l1, 'bin'));
  writeFileSync(join(l1, 'bin', 'su'), '#!/bin/sh\n');
  chownSync(join(l1, 'bin', 'su'), 1000, 1000);
  chmodSync(join(l1, 'bin', 'su'), 0o4755);
  symlinkSync('a.txt', join(l1, 'link'));
  mkdirSync(join(l1, 'dev'));
  mknod(join(l1, 'dev', 'null'), S_IFCHR | 0o666, 1, 3);
  mknod(join(l1, 'dev', 'fifo'), S_IFIFO | 0o600);

  writeFileSync(join(l2, 'b.txt'), 'two');
  if (format === 'overlay') mknod(join(l2, 'gone.txt'), S_IFCHR, 0, 0);

  mkdirSync(join(l3, 'd'));
  writeFileSync(join(l3, 'd', 'new'), 'n');
  writeFileSync(join(l3, 'a.txt'), 'three');
  if (format === 'overlay') lsetxattr(join(l3, 'd'), 'trusted.overlay.opaque', Buffer.from('y'));

  // Fixed, per-layer times: the copy must carry them over rather than take "now".
  [l1, l2, l3].forEach((d, i) => pinTimes(d, 1_600_000_000 + i * 1000));
  return [
    { diffPath: l1, whiteouts: [], opaques: [], whiteoutFormat: format },
    { diffPath: l2, whiteouts: ['gone.txt'], opaques: [], whiteoutFormat: format },
    { diffPath: l3, whiteouts: [], opaques: ['d'], whiteoutFormat: format },
  ];
}

function pinTimes(dir: string, seconds: number): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (lstatSync(path).isDirectory()) pinTimes(path, seconds);
    else lutimesSync(path, seconds, seconds);
  }
  lutimesSync(dir, seconds, seconds);
}

const EXPECTED_PATHS = ['a.txt', 'b.txt', 'bin', 'bin/su', 'd', 'd/new', 'dev', 'dev/fifo', 'dev/null', 'h1', 'h2', 'keep', 'keep/k', 'link'];

/** Everything observable about a tree except inode numbers: type, owner, mode, mtime, content. */
function describeTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name), key = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path);
      let what = `${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} mtime=${Math.floor(st.mtimeMs)}`;
      if (st.isFile()) what += ` nlink=${st.nlink} data=${readFileSync(path, 'utf8')}`;
      if (st.isSymbolicLink()) what += ` -> ${readlinkSync(path)}`;
      if (st.isCharacterDevice() || st.isBlockDevice()) what += ` rdev=${st.rdev}`;
      const xattrs = llistxattr(path).filter((n) => !n.startsWith('security.')).sort();
      if (xattrs.length) what += ` xattrs=${xattrs.map((n) => `${n}=${lgetxattr(path, n)?.toString()}`).join(',')}`;
      out[key] = what;
      if (st.isDirectory()) walk(path, key);
    }
  };
  walk(root, '');
  return out;
}

async function mountPointsUnder(dir: string): Promise<string[]> {
  return mountsUnder(dir, await readMountInfo());
}

function hashTree(root: string): string {
  return createHash('sha256').update(JSON.stringify(describeTree(root))).digest('hex');
}

test('detection picks overlay on a directory of the real disk and leaves nothing behind', async () => {
  await withScratch(async (root) => {
    const driver = await selectDriver(root);
    assert.is(driver.name, 'overlay');
    assert.is(driver.whiteoutFormat, 'overlay');
    const status = Object.fromEntries(driver.status());
    assert.is(status['Backing Filesystem'], backingFsName(await fsTypeMagic(root)));
    assert.is(status['Supports d_type'], 'true');
    assert.equal(readdirSync(join(root, 'storage')), []);
    assert.equal(await mountPointsUnder(root), []);
    assert.is((await selectDriver(root, 'overlay2')).name, 'overlay');
    assert.is((await selectDriver(root, 'vfs')).name, 'copy');
  });
});

test('on a data root that is itself an overlayfs, detection falls back to copy and overlay is refused clearly', async () => {
  await withScratch(async (scratch) => {
    for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(scratch, d));
    mount('overlay', join(scratch, 'merged'), 'overlay', 0, `lowerdir=${scratch}/lower,upperdir=${scratch}/upper,workdir=${scratch}/work`);
    const root = join(scratch, 'merged', 'data');
    mkdirSync(root);

    const driver = await selectDriver(root);
    assert.is(driver.name, 'copy');
    assert.is(Object.fromEntries(driver.status())['Backing Filesystem'], 'overlayfs');

    let error: unknown;
    try { await selectDriver(root, 'overlay'); } catch (err) { error = err; }
    assert.ok(isBerthError(error, 'EUNSUPPORTED'), String(error));
    assert.match((error as Error).message, /^overlay is not supported on the data root \(overlayfs\): \S/);

    let unknown: unknown;
    try { await selectDriver(root, 'zfs'); } catch (err) { unknown = err; }
    assert.ok(isBerthError(unknown, 'EINVAL'));

    assert.equal(readdirSync(join(root, 'storage')), []);
    assert.equal(await mountPointsUnder(root), []);
  });
});

test('overlay: whiteouts and opaque dirs apply, writes go to upper only, unmount and remove leave nothing', async () => {
  await withScratch(async (scratch) => {
    const root = join(scratch, 'root');
    const lowers = buildStack(join(scratch, 'layers'), 'overlay');
    const lowersBefore = lowers.map((l) => hashTree(l.diffPath));
    const driver = await selectDriver(root, 'overlay');
    assert.ok(driver instanceof OverlayDriver);

    let unmarked: unknown;
    try { await driver.create('c0', lowers.map((l) => ({ ...l, whiteoutFormat: 'none' as const }))); } catch (err) { unmarked = err; }
    assert.ok(isBerthError(unmarked, 'EINVAL'), 'layers without markers cannot express deletions to overlayfs');
    let missing: unknown;
    try { await driver.mount('c0'); } catch (err) { missing = err; }
    assert.ok(isBerthError(missing, 'ENOCONTAINER'));

    await driver.create('c1', lowers);
    assert.ok(await driver.exists('c1'));
    let conflict: unknown;
    try { await driver.create('c1', lowers); } catch (err) { conflict = err; }
    assert.ok(isBerthError(conflict, 'ECONFLICT'));

    const rootfs = await driver.mount('c1');
    assert.is(await driver.mount('c1'), rootfs, 'mount is idempotent');
    assert.equal((await mountPointsUnder(root)), [rootfs], 'mounted exactly once');
    assert.equal(Object.keys(describeTree(rootfs)), EXPECTED_PATHS);
    assert.is(readFileSync(join(rootfs, 'a.txt'), 'utf8'), 'three');

    writeFileSync(join(rootfs, 'written'), 'hello');
    writeFileSync(join(rootfs, 'keep', 'k'), 'changed');
    rmSync(join(rootfs, 'b.txt'));
    const upper = join(root, 'storage', 'overlay', 'c1', 'upper');
    assert.ok(existsSync(join(upper, 'written')));
    assert.is(readFileSync(join(upper, 'keep', 'k'), 'utf8'), 'changed');
    assert.ok(lstatSync(join(upper, 'b.txt')).isCharacterDevice(), 'deletion recorded as a whiteout in upper');
    assert.equal(lowers.map((l) => hashTree(l.diffPath)), lowersBefore, 'lower dirs unchanged');
    assert.ok(await driver.diffSize('c1') >= 'hello'.length + 'changed'.length);

    await driver.unmount('c1');
    assert.equal(await mountPointsUnder(root), []);
    await driver.unmount('c1');
    // Mounting again shows the container's changes.
    assert.is(readFileSync(join(await driver.mount('c1'), 'written'), 'utf8'), 'hello');

    await driver.remove('c1');
    await driver.remove('c1');
    assert.not.ok(await driver.exists('c1'));
    assert.equal(await mountPointsUnder(root), []);
    assert.equal(readdirSync(join(root, 'storage', 'overlay')).filter((n) => n !== 'l'), []);
    assert.equal(lowers.map((l) => hashTree(l.diffPath)), lowersBefore);
  });
});

test('overlay: 120 layers under a long data root path mount fine', async () => {
  await withScratch(async (scratch) => {
    const longDir = join(scratch, ...Array.from({ length: 6 }, (_, i) => `a-rather-long-directory-name-number-${i}-for-the-data-root`));
    const root = join(longDir, 'root');
    const lowers: LowerLayer[] = [];
    for (let i = 0; i < 120; i++) {
      const diffPath = join(longDir, 'layers', createHash('sha256').update(String(i)).digest('hex'), 'diff');
      mkdirSync(diffPath, { recursive: true });
      writeFileSync(join(diffPath, `file${i}`), String(i));
      writeFileSync(join(diffPath, 'shared'), `layer ${i}`);
      lowers.push({ diffPath, whiteouts: [], opaques: [], whiteoutFormat: 'overlay' });
    }
    assert.ok(lowers.map((l) => l.diffPath).join(':').length > 4096, 'absolute lowerdir paths would not fit in a page');
    const cwdBefore = process.cwd();
    const driver = await selectDriver(root, 'overlay');
    await driver.create('deep', lowers);
    const rootfs = await driver.mount('deep');
    assert.is(process.cwd(), cwdBefore, 'cwd restored');
    const names = readdirSync(rootfs);
    assert.is(names.length, 121);
    assert.is(readFileSync(join(rootfs, 'shared'), 'utf8'), 'layer 119');
    assert.is(readFileSync(join(rootfs, 'file0'), 'utf8'), '0');
    await driver.remove('deep');
    assert.equal(await mountPointsUnder(scratch), []);
    assert.not.ok(existsSync(join(root, 'storage', 'overlay', 'deep')));
  });
});

test('copy: the same view as overlay for the same layers, with hardlinks, setuid, owners, symlinks and devices', async () => {
  await withScratch(async (scratch) => {
    const overlayDriver = await selectDriver(join(scratch, 'root-o'), 'overlay');
    await overlayDriver.create('c', buildStack(join(scratch, 'layers-o'), 'overlay'));
    const overlayView = describeTree(await overlayDriver.mount('c'));

    for (const format of ['none', 'overlay'] as const) {
      const root = join(scratch, `root-copy-${format}`);
      const driver: StorageDriver = await selectDriver(root, 'copy');
      assert.ok(driver instanceof CopyDriver);
      assert.is(driver.whiteoutFormat, 'none');
      await driver.create('c', buildStack(join(scratch, `layers-${format}`), format));
      const rootfs = await driver.mount('c');
      assert.is(rootfs, join(root, 'storage', 'copy', 'c', 'rootfs'));
      assert.equal(describeTree(rootfs), overlayView, `copy of '${format}' layers matches overlay`);

      const h1 = lstatSync(join(rootfs, 'h1')), h2 = lstatSync(join(rootfs, 'h2'));
      assert.is(h1.ino, h2.ino, 'hardlink kept');
      const su = lstatSync(join(rootfs, 'bin', 'su'));
      assert.is(su.mode & 0o7777, 0o4755);
      assert.is(`${su.uid}:${su.gid}`, '1000:1000');
      assert.is(readlinkSync(join(rootfs, 'link')), 'a.txt');
      const dev = lstatSync(join(rootfs, 'dev', 'null'));
      assert.ok(dev.isCharacterDevice());
      assert.is(BigInt(dev.rdev), makedev(1, 3));
      assert.ok(lstatSync(join(rootfs, 'dev', 'fifo')).isFIFO());
      assert.is(lgetxattr(join(rootfs, 'keep', 'k'), 'user.berth')?.toString(), 'kept');
      assert.is(lgetxattr(join(rootfs, 'd'), 'trusted.overlay.opaque'), undefined, 'overlay markers not copied');
      assert.ok(await driver.diffSize('c') > 0);

      await driver.unmount('c');
      await driver.remove('c');
      assert.not.ok(await driver.exists('c'));
      assert.equal(readdirSync(join(root, 'storage', 'copy')), []);
    }
    await overlayDriver.remove('c');
    assert.equal(await mountPointsUnder(scratch), []);
  });
});

test('cleanup removes what a crash left: temp dirs, unknown containers, a mounted unrecorded dir', async () => {
  await withScratch(async (scratch) => {
    const root = join(scratch, 'root');
    const lowers = buildStack(join(scratch, 'layers'), 'overlay');
    const driver = await selectDriver(root, 'overlay');
    const home = join(root, 'storage', 'overlay');

    await driver.create('kept', lowers);
    const keptRootfs = await driver.mount('kept');
    await driver.create('orphan', lowers.slice(0, 1));
    await driver.mount('orphan');
    // A crash between mkdir and the record: mounted, but no lowers.json.
    const ghost = join(home, 'ghost');
    for (const d of ['upper', 'work', 'merged']) mkdirSync(join(ghost, d), { recursive: true });
    mount('overlay', join(ghost, 'merged'), 'overlay', 0, `lowerdir=${lowers[0]!.diffPath},upperdir=${ghost}/upper,workdir=${ghost}/work`);
    // A crash in the middle of create().
    mkdirSync(join(home, '.tmp-half.0123456789ab', 'upper'), { recursive: true });
    // A link no container uses any more.
    symlinkSync('/nonexistent', join(home, 'l', 'stalelink000'));

    await driver.cleanup(new Set(['kept']));
    assert.equal(readdirSync(home).sort(), ['kept', 'l']);
    assert.equal(await mountPointsUnder(root), [keptRootfs], 'the known container stays mounted');
    assert.is(readdirSync(join(home, 'l')).length, 3, 'only the kept container\'s links remain');
    assert.equal(Object.keys(describeTree(keptRootfs)), EXPECTED_PATHS);

    await driver.cleanup(new Set());
    assert.equal(readdirSync(home), ['l']);
    assert.equal(readdirSync(join(home, 'l')), []);
    assert.equal(await mountPointsUnder(root), []);

    const copy = await selectDriver(root, 'copy');
    const copyHome = join(root, 'storage', 'copy');
    await copy.create('kept', lowers);
    await copy.create('orphan', lowers);
    mkdirSync(join(copyHome, '.tmp-half.0123456789ab', 'rootfs'), { recursive: true });
    await copy.cleanup(new Set(['kept']));
    assert.equal(readdirSync(copyHome), ['kept']);
    assert.ok(await copy.exists('kept'));
    await copy.remove('kept');
  });
});

test('create is atomic: a failing layer leaves nothing that looks created', async () => {
  await withScratch(async (scratch) => {
    const root = join(scratch, 'root');
    const missing: LowerLayer = { diffPath: join(scratch, 'no-such-layer'), whiteouts: [], opaques: [], whiteoutFormat: 'none' };
    const copy = await selectDriver(root, 'copy');
    let failed = false;
    try { await copy.create('broken', [missing]); } catch { failed = true; }
    assert.ok(failed);
    assert.not.ok(await copy.exists('broken'));
    assert.equal(readdirSync(join(root, 'storage', 'copy')), []);
    await fsp.rm(join(root, 'storage'), { recursive: true });
  });
});

test.run();
