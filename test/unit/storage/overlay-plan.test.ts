import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planOverlayMount, shortLinkName } from '../../../src/storage/overlay';
import { isBerthError } from '../../../src/util/errors';

const base = {
  linksDir: '/data/storage/overlay/l',
  upper: '/data/storage/overlay/c1/upper',
  work: '/data/storage/overlay/c1/work',
  relativeUpper: '../c1/upper',
  relativeWork: '../c1/work',
};

test('lowerdir lists the top layer first, with absolute paths when they fit', () => {
  const plan = planOverlayMount({ ...base, lowerDirs: ['/layers/bottom', '/layers/middle', '/layers/top'], linkNames: ['b', 'm', 't'] });
  assert.is(plan.data, 'lowerdir=/layers/top:/layers/middle:/layers/bottom,upperdir=/data/storage/overlay/c1/upper,workdir=/data/storage/overlay/c1/work');
  assert.is(plan.cwd, undefined);
});

test('extra options are appended', () => {
  const plan = planOverlayMount({ ...base, lowerDirs: ['/l'], linkNames: ['x'], extraOptions: ['index=off'] });
  assert.ok(plan.data.endsWith(',index=off'));
});

test('falls back to short relative links when the data would not fit in a page', () => {
  const lowerDirs = Array.from({ length: 120 }, (_, i) => `/very/long/data/root/${'x'.repeat(40)}/layers/${i}/diff`);
  const linkNames = lowerDirs.map((d) => shortLinkName(d));
  const plan = planOverlayMount({ ...base, lowerDirs, linkNames, extraOptions: ['index=off'] });
  assert.is(plan.cwd, base.linksDir);
  assert.is(plan.data, `lowerdir=${[...linkNames].reverse().join(':')},upperdir=../c1/upper,workdir=../c1/work,index=off`);
  assert.ok(plan.data.length <= 4095);
});

test('paths holding overlay option separators use the relative form', () => {
  for (const odd of ['/data,root/l', '/data:root/l', '/data\\root/l']) {
    const plan = planOverlayMount({ ...base, lowerDirs: [odd], linkNames: ['abc'] });
    assert.is(plan.cwd, base.linksDir, odd);
    assert.is(plan.data, 'lowerdir=abc,upperdir=../c1/upper,workdir=../c1/work');
  }
});

test('too many layers even for the relative form is a clear error', () => {
  const lowerDirs = Array.from({ length: 400 }, (_, i) => `/layers/${i}/${'y'.repeat(20)}`);
  let error: unknown;
  try { planOverlayMount({ ...base, lowerDirs, linkNames: lowerDirs.map((d) => shortLinkName(d)) }); } catch (err) { error = err; }
  assert.ok(isBerthError(error, 'EUNSUPPORTED'));
});

test('short link names are stable, short, option-safe and distinct', () => {
  const a = shortLinkName('/data/layers/a/diff');
  assert.is(a, shortLinkName('/data/layers/a/diff'));
  assert.match(a, /^[0-9a-z]{12}$/);
  assert.is.not(a, shortLinkName('/data/layers/b/diff'));
  assert.is.not(a, shortLinkName('/data/layers/a/diff', 1));
  const many = new Set(Array.from({ length: 5000 }, (_, i) => shortLinkName(`/layers/${i}`)));
  assert.is(many.size, 5000);
});

test.run();
