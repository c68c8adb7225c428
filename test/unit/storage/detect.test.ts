import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backingFsName, normaliseDriverName } from '../../../src/storage/detect';
import { isBerthError } from '../../../src/util/errors';

test('driver names and aliases', () => {
  assert.is(normaliseDriverName(undefined), undefined);
  assert.is(normaliseDriverName(''), undefined);
  assert.is(normaliseDriverName('overlay'), 'overlay');
  assert.is(normaliseDriverName('overlay2'), 'overlay');
  assert.is(normaliseDriverName('Overlay2 '), 'overlay');
  assert.is(normaliseDriverName('copy'), 'copy');
  assert.is(normaliseDriverName('vfs'), 'copy');
  let error: unknown;
  try { normaliseDriverName('devicemapper'); } catch (err) { error = err; }
  assert.ok(isBerthError(error, 'EINVAL'));
});

test('backing filesystem names follow docker info', () => {
  assert.is(backingFsName(0xef53), 'extfs');
  assert.is(backingFsName(0x58465342), 'xfs');
  assert.is(backingFsName(0x9123683e), 'btrfs');
  assert.is(backingFsName(0x9123683e | 0), 'btrfs', 'a negative (signed) magic is the same filesystem');
  assert.is(backingFsName(0x01021994), 'tmpfs');
  assert.is(backingFsName(0x794c7630), 'overlayfs');
  assert.is(backingFsName(0x72b6), 'jffs2');
  assert.is(backingFsName(0x24051905), 'ubifs');
  assert.is(backingFsName(0xf2f52010), 'f2fs');
  assert.is(backingFsName(0x73717368), 'squashfs');
  assert.is(backingFsName(0x1234), 'unknown (0x1234)');
});

test.run();
