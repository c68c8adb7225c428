// User resolution against a fixture rootfs, including hostile symlinks out of it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileInRoot, resolveInRoot, resolveUser, resolveUserFrom } from '../../../src/runtime/users';
import { isBerthError } from '../../../src/util/errors';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  '# a comment',
  'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
  'broken line',
  'app:x:1000:1000:App:/home/app:/bin/sh',
  'nohome:x:1001:1001::',
  'nobody:x:65534:65534:nobody:/home:/bin/false',
].join('\n');
const GROUP = ['root:x:0:', 'wheel:x:10:app,root', 'audio:x:29:app', 'app:x:1000:', 'staff:x:50:', 'nogroup:x:65534:'].join('\n');

let dir = '';
let rootfs = '';
test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-users-'));
  rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

async function rejects(p: Promise<unknown>, message: RegExp | string, code = 'EINVAL'): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.ok(isBerthError(err), String(err));
    assert.is((err as { code: string }).code, code);
    if (typeof message === 'string') assert.is((err as Error).message, message);
    else assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable('expected a rejection');
}

test('empty user is root with root home and its groups', () => {
  assert.equal(resolveUserFrom('', PASSWD, GROUP), { uid: 0, gid: 0, groups: [10], home: '/root' });
});

test('a name gives uid, gid, home and /etc/group memberships', () => {
  assert.equal(resolveUserFrom('app', PASSWD, GROUP), { uid: 1000, gid: 1000, groups: [10, 29], home: '/home/app' });
});

test('a numeric uid found in passwd behaves like its name; unknown numeric needs no passwd', () => {
  assert.equal(resolveUserFrom('1000', PASSWD, GROUP), { uid: 1000, gid: 1000, groups: [10, 29], home: '/home/app' });
  assert.equal(resolveUserFrom('4242', PASSWD, GROUP), { uid: 4242, gid: 0, groups: [], home: '/' });
  assert.equal(resolveUserFrom('4242:77', undefined, undefined), { uid: 4242, gid: 77, groups: [], home: '/' });
});

test('user:group picks the group and skips supplementary groups (Docker)', () => {
  assert.equal(resolveUserFrom('app:staff', PASSWD, GROUP), { uid: 1000, gid: 50, groups: [], home: '/home/app' });
  assert.equal(resolveUserFrom('app:9', PASSWD, GROUP), { uid: 1000, gid: 9, groups: [], home: '/home/app' });
  assert.equal(resolveUserFrom('0:wheel', PASSWD, GROUP).gid, 10);
});

test('an empty home field becomes /', () => {
  assert.is(resolveUserFrom('nohome', PASSWD, GROUP).home, '/');
});

test('GroupAdd by name or number is appended without duplicates', () => {
  assert.equal(resolveUserFrom('app', PASSWD, GROUP, ['staff', '29', '300']).groups, [10, 29, 50, 300]);
  assert.throws(() => resolveUserFrom('app', PASSWD, GROUP, ['nosuch']), /unable to find group nosuch/);
});

test('unknown names fail with Docker\'s messages', async () => {
  await rejects(Promise.resolve().then(() => resolveUserFrom('ghost', PASSWD, GROUP)), 'unable to find user ghost: no matching entries in passwd file');
  await rejects(Promise.resolve().then(() => resolveUserFrom('app:ghosts', PASSWD, GROUP)), 'unable to find group ghosts: no matching entries in group file');
  await rejects(Promise.resolve().then(() => resolveUserFrom('ghost', undefined, undefined)), 'unable to find user ghost: no matching entries in passwd file');
  await rejects(Promise.resolve().then(() => resolveUserFrom('99999999999', PASSWD, GROUP)), /out of range/);
});

test('resolveUser reads the rootfs files', async () => {
  writeFileSync(join(rootfs, 'etc/passwd'), PASSWD);
  writeFileSync(join(rootfs, 'etc/group'), GROUP);
  assert.equal(await resolveUser(rootfs, 'app'), { uid: 1000, gid: 1000, groups: [10, 29], home: '/home/app' });
  assert.equal(await resolveUser(rootfs, undefined), { uid: 0, gid: 0, groups: [10], home: '/root' });
});

test('no passwd at all: numeric users work, names do not', async () => {
  assert.equal(await resolveUser(rootfs, '5:6'), { uid: 5, gid: 6, groups: [], home: '/' });
  await rejects(resolveUser(rootfs, 'app'), 'unable to find user app: no matching entries in passwd file');
});

test('hostile absolute symlink to a host file is resolved inside the rootfs, never outside', async () => {
  const outside = join(dir, 'host-passwd');
  writeFileSync(outside, 'evil:x:4242:4242::/:/bin/sh\n');
  symlinkSync(outside, join(rootfs, 'etc/passwd'));
  assert.is(await resolveInRoot(rootfs, '/etc/passwd'), join(rootfs, outside));
  await rejects(resolveUser(rootfs, 'evil'), 'unable to find user evil: no matching entries in passwd file');
});

test('hostile relative symlink climbing with .. stays in the rootfs', async () => {
  writeFileSync(join(dir, 'passwd'), 'evil:x:4242:4242::/:/bin/sh\n');
  symlinkSync('../../../../../../passwd', join(rootfs, 'etc/passwd'));
  await rejects(resolveUser(rootfs, 'evil'), /unable to find user evil/);
  // The same name placed where the container would see it is used.
  writeFileSync(join(rootfs, 'passwd'), 'inner:x:7:7::/in:/bin/sh\n');
  assert.equal(await resolveUser(rootfs, 'inner'), { uid: 7, gid: 7, groups: [], home: '/in' });
});

test('a symlinked /etc directory is followed inside the rootfs', async () => {
  rmSync(join(rootfs, 'etc'), { recursive: true });
  mkdirSync(join(rootfs, 'usr/etc'), { recursive: true });
  writeFileSync(join(rootfs, 'usr/etc/passwd'), PASSWD);
  symlinkSync('/usr/etc', join(rootfs, 'etc'));
  assert.is((await resolveUser(rootfs, 'daemon')).home, '/usr/sbin');
});

test('a passwd that is not a regular file is refused', async () => {
  mkdirSync(join(rootfs, 'etc/passwd'));
  await rejects(resolveUser(rootfs, 'app'), /not a regular file/, 'EUNSAFE');
});

test('symlink loops are refused', async () => {
  symlinkSync('/etc/b', join(rootfs, 'etc/a'));
  symlinkSync('/etc/a', join(rootfs, 'etc/b'));
  await rejects(readFileInRoot(rootfs, '/etc/a'), /too many symlinks/, 'EUNSAFE');
});

test.run();
