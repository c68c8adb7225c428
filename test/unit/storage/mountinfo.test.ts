import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseMountInfo, mountsUnder, isMountpoint } from '../../../src/host/mount';

const FIXTURE = [
  '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard',
  '90 27 0:50 / /srv/berth/storage/overlay/c1/merged rw,relatime shared:5 master:1 - overlay overlay rw,lowerdir=/a:/b,upperdir=/u,workdir=/w',
  '91 90 0:51 / /srv/berth/storage/overlay/c1/merged/proc rw - proc proc rw',
  '92 27 0:52 /sub /srv/berth/storage/overlay/c1x/merged rw - tmpfs tmpfs rw',
  '93 27 0:53 / /mnt/with\\040space\\011tab rw - tmpfs my\\134src rw',
  '',
].join('\n');

test('parses fields, optional tags and octal escapes', () => {
  const mounts = parseMountInfo(FIXTURE);
  assert.is(mounts.length, 5);
  assert.equal(mounts[1], {
    mountId: 90, parentId: 27, device: '0:50', root: '/', mountPoint: '/srv/berth/storage/overlay/c1/merged',
    mountOptions: 'rw,relatime', fsType: 'overlay', source: 'overlay', superOptions: 'rw,lowerdir=/a:/b,upperdir=/u,workdir=/w',
  });
  assert.is(mounts[3]!.root, '/sub');
  assert.is(mounts[4]!.mountPoint, '/mnt/with space\ttab');
  assert.is(mounts[4]!.source, 'my\\src');
});

test('mounts under a directory, deepest first, not siblings sharing a prefix', async () => {
  const mounts = parseMountInfo(FIXTURE);
  assert.equal(await mountsUnder('/srv/berth/storage/overlay/c1', mounts), [
    '/srv/berth/storage/overlay/c1/merged/proc',
    '/srv/berth/storage/overlay/c1/merged',
  ]);
  assert.ok(await isMountpoint('/srv/berth/storage/overlay/c1/merged', mounts));
  assert.not.ok(await isMountpoint('/srv/berth/storage/overlay/c1', mounts));
});

test.run();
