import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { chainIds, hexOf, isDigest } from '../../../src/minimal-graph';
import { isBerthError } from '../../../src/util/errors';

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

test('chain IDs: first is the diff ID, then sha256 of "<parent> <diffid>"', () => {
  const d0 = sha('layer zero'), d1 = sha('layer one'), d2 = sha('layer two');
  const c1 = sha(`${d0} ${d1}`);
  const c2 = sha(`${c1} ${d2}`);
  assert.equal(chainIds([d0, d1, d2]), [d0, c1, c2]);
  assert.equal(chainIds([]), []);
});

test('a single layer has its diff ID as chain ID; a repeated layer still gets a new chain ID', () => {
  const d = sha('the same tar twice');
  assert.equal(chainIds([d])[0], d);
  assert.is(chainIds([d, d])[1], sha(`${d} ${d}`));
});

test('digests are validated strictly before they can reach a path', () => {
  assert.ok(isDigest(`sha256:${'a'.repeat(64)}`));
  for (const bad of [`sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(63)}`, 'sha256:../../etc/passwd', `sha512:${'a'.repeat(64)}`, 'a'.repeat(64), '']) {
    assert.not.ok(isDigest(bad), bad);
    try { hexOf(bad); assert.unreachable(`accepted ${bad}`); } catch (err) { assert.ok(isBerthError(err, 'EINVAL'), String(err)); }
  }
  assert.is(hexOf(`sha256:${'0'.repeat(64)}`), '0'.repeat(64));
  try { chainIds(['sha256:nope']); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'EINVAL')); }
});

test.run();
