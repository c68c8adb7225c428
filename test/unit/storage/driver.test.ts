import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertValidId, relativeComponents } from '../../../src/storage/driver';
import { isBerthError } from '../../../src/util/errors';

function codeOf(fn: () => unknown): string | undefined {
  try { fn(); return undefined; } catch (err) { return isBerthError(err) ? err.code : 'other'; }
}

test('ids must be plain directory names', () => {
  assert.is(codeOf(() => assertValidId('a'.repeat(64))), undefined);
  assert.is(codeOf(() => assertValidId('web_1-x')), undefined);
  for (const bad of ['', '.', '..', '.tmp-x', 'a/b', 'l', 'x y', 'a'.repeat(129)]) {
    assert.is(codeOf(() => assertValidId(bad)), 'EINVAL', bad);
  }
});

test('layer-relative paths are split and kept inside the root', () => {
  assert.equal(relativeComponents('etc/passwd'), ['etc', 'passwd']);
  assert.equal(relativeComponents('./a//b/'), ['a', 'b']);
  assert.equal(relativeComponents('', true), []);
  assert.equal(relativeComponents('.', true), []);
  for (const bad of ['../etc', 'a/../../b', '/etc/passwd', '', '.']) {
    assert.is(codeOf(() => relativeComponents(bad)), 'EUNSAFE', bad);
  }
  assert.is(codeOf(() => relativeComponents('/', true)), 'EUNSAFE');
});

test.run();
