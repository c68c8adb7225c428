import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_CAP_NAMES, computeCaps, DOCKER_DEFAULT_CAPS, hostBoundingCaps, normalizeCapName } from '../../../src/runtime/caps';

const LAST = ALL_CAP_NAMES.length - 1;

test('names with or without CAP_, any case', () => {
  assert.is(normalizeCapName('cap_net_admin'), 'NET_ADMIN');
  assert.is(normalizeCapName('NET_ADMIN'), 'NET_ADMIN');
  assert.is(normalizeCapName('all'), 'ALL');
  assert.throws(() => normalizeCapName('CAP_FLY'), /unknown capability: "CAP_FLY"/);
});

test('defaults, drop and add', () => {
  assert.equal(computeCaps({ lastCap: LAST }), DOCKER_DEFAULT_CAPS);
  const caps = computeCaps({ lastCap: LAST, capAdd: ['cap_net_admin', 'SYS_TIME'], capDrop: ['NET_RAW', 'cap_mknod'] });
  assert.ok(caps.includes('NET_ADMIN') && caps.includes('SYS_TIME'));
  assert.not.ok(caps.includes('NET_RAW') || caps.includes('MKNOD'));
  assert.is(caps.length, DOCKER_DEFAULT_CAPS.length);
});

test('ALL in add keeps everything but the drops; ALL in drop keeps only the adds', () => {
  const all = computeCaps({ lastCap: LAST, capAdd: ['ALL'], capDrop: ['SYS_ADMIN'] });
  assert.is(all.length, ALL_CAP_NAMES.length - 1);
  assert.not.ok(all.includes('SYS_ADMIN'));
  assert.equal(computeCaps({ lastCap: LAST, capDrop: ['all'], capAdd: ['chown', 'CHOWN'] }), ['CHOWN']);
});

test('privileged: every capability the kernel knows, whatever add/drop say', () => {
  assert.equal(computeCaps({ lastCap: LAST, privileged: true, capDrop: ['ALL'] }), [...ALL_CAP_NAMES]);
  assert.equal(computeCaps({ lastCap: 37, privileged: true }), ALL_CAP_NAMES.slice(0, 38));
});

test('"all" stops at the bounding set berth runs with; adding a cap outside it is refused by name', () => {
  // A sandbox that dropped CAP_SYS_RESOURCE (bit 24), as some container hosts do.
  const dir = mkdtempSync(join(tmpdir(), 'berth-caps-'));
  try {
    writeFileSync(join(dir, 'status'), 'Name:\tnode\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n');
    const bounding = hostBoundingCaps(join(dir, 'status'))!;
    assert.ok(!bounding.includes('SYS_RESOURCE'));
    assert.is(bounding.length, ALL_CAP_NAMES.length - 1);
    const privileged = computeCaps({ lastCap: LAST, privileged: true, bounding });
    assert.ok(!privileged.includes('SYS_RESOURCE') && privileged.includes('SYS_ADMIN'));
    assert.ok(!computeCaps({ lastCap: LAST, capAdd: ['ALL'], bounding }).includes('SYS_RESOURCE'));
    assert.throws(() => computeCaps({ lastCap: LAST, capAdd: ['sys_resource'], bounding }), /cannot add capability SYS_RESOURCE: .*bounding set/);
    assert.is(hostBoundingCaps(join(dir, 'missing')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
