// docker diff's change lists from the two storage layouts: an overlay upper dir (with
// whiteouts) and a full-copy rootfs compared with its image layers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, unlinkSync, cpSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyChanges, overlayChanges, imageIndex } from '../../../src/storage/changes';
import { mknod, S_IFCHR } from '../../../src/host/fsops';
import type { LowerLayer } from '../../../src/storage';

let dir: string;
const layer = (path: string, whiteouts: string[] = [], opaques: string[] = []): LowerLayer => ({ diffPath: path, whiteouts, opaques, whiteoutFormat: 'none' });

test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-changes-'));
  mkdirSync(join(dir, 'l1/etc'), { recursive: true });
  mkdirSync(join(dir, 'l1/bin'), { recursive: true });
  writeFileSync(join(dir, 'l1/etc/passwd'), 'root\n');
  writeFileSync(join(dir, 'l1/bin/ls'), 'ls');
  writeFileSync(join(dir, 'l1/bin/old'), 'old');
  mkdirSync(join(dir, 'l2'));
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

test('the image index applies whiteouts of upper layers', async () => {
  const index = await imageIndex([layer(join(dir, 'l1')), layer(join(dir, 'l2'), ['bin/old'])]);
  assert.ok(index.has('bin/ls'));
  assert.not.ok(index.has('bin/old'));
});

test('copy driver: added, modified and deleted against the image', async () => {
  const lowers = [layer(join(dir, 'l1')), layer(join(dir, 'l2'), ['bin/old'])];
  const rootfs = join(dir, 'rootfs');
  cpSync(join(dir, 'l1'), rootfs, { recursive: true, preserveTimestamps: true });
  unlinkSync(join(rootfs, 'bin/old'));
  unlinkSync(join(rootfs, 'bin/ls'));
  appendFileSync(join(rootfs, 'etc/passwd'), 'user\n');
  mkdirSync(join(rootfs, 'new'));
  writeFileSync(join(rootfs, 'new/f'), 'x');
  assert.equal(await copyChanges(rootfs, lowers), [
    { Path: '/bin', Kind: 0 }, { Path: '/bin/ls', Kind: 2 },
    { Path: '/etc', Kind: 0 }, { Path: '/etc/passwd', Kind: 0 },
    { Path: '/new', Kind: 1 }, { Path: '/new/f', Kind: 1 },
  ]);
});

test('overlay driver: the upper dir, whiteouts included', async () => {
  if (process.getuid?.() !== 0) return; // whiteouts are device nodes
  const upper = join(dir, 'upper');
  mkdirSync(join(upper, 'bin'), { recursive: true });
  mknod(join(upper, 'bin/ls'), S_IFCHR | 0o000, 0, 0);
  mkdirSync(join(upper, 'etc'));
  writeFileSync(join(upper, 'etc/passwd'), 'changed\n');
  writeFileSync(join(upper, 'etc/added'), 'new\n');
  assert.equal(await overlayChanges(upper, [layer(join(dir, 'l1'))]), [
    { Path: '/bin', Kind: 0 }, { Path: '/bin/ls', Kind: 2 },
    { Path: '/etc', Kind: 0 }, { Path: '/etc/added', Kind: 1 }, { Path: '/etc/passwd', Kind: 0 },
  ]);
});

test.run();
