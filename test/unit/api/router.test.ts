import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Router, splitVersionPrefix, negotiateApiVersion, compareVersions } from '../../../src/api/router';
import { isBerthError } from '../../../src/util/errors';

const noop = (): void => {};

test('names match greedily and may contain slashes', () => {
  const r = new Router();
  r.add('GET', '/images/{name}/json', noop);
  const m = r.match('GET', '/images/127.0.0.1:5000/ns/busybox:tag/json');
  assert.ok(m);
  assert.equal(m!.params, { name: '127.0.0.1:5000/ns/busybox:tag' });
  assert.is(r.match('GET', '/images/json'), undefined);
  assert.is(r.match('POST', '/images/x/json'), undefined);
});

test('params are percent-decoded', () => {
  const r = new Router().add('DELETE', '/images/{name}', noop);
  assert.equal(r.match('DELETE', '/images/busybox%3Alatest')!.params, { name: 'busybox:latest' });
  assert.equal(r.match('DELETE', '/images/a/b:c')!.params, { name: 'a/b:c' });
});

test('fixed paths win over patterns regardless of order', () => {
  const r = new Router();
  r.add('GET', '/images/{name}/get', noop);
  r.add('GET', '/images/get', noop);
  assert.is(r.match('GET', '/images/get')!.pattern, '/images/get');
  assert.is(r.match('GET', '/images/alpine/get')!.pattern, '/images/{name}/get');
});

test('several params and HEAD falling back to GET', () => {
  const r = new Router().add('POST', '/containers/{id}/exec/{op}', noop).add('GET', '/_ping', noop);
  assert.equal(r.match('POST', '/containers/abc/exec/start')!.params, { id: 'abc', op: 'start' });
  assert.ok(r.match('HEAD', '/_ping'));
  assert.throws(() => r.add('GET', '/_ping', noop), /duplicate/);
});

test('version prefixes are split off', () => {
  assert.equal(splitVersionPrefix('/v1.47/images/json'), { version: '1.47', path: '/images/json' });
  assert.equal(splitVersionPrefix('/v1.24/_ping'), { version: '1.24', path: '/_ping' });
  assert.equal(splitVersionPrefix('/_ping'), { version: undefined, path: '/_ping' });
  assert.equal(splitVersionPrefix('/volumes/v1'), { version: undefined, path: '/volumes/v1' });
  assert.equal(splitVersionPrefix('/v1.51'), { version: '1.51', path: '/' });
});

test('versions compare numerically and are checked against the supported range', () => {
  assert.is(compareVersions('1.9', '1.24'), -1);
  assert.is(compareVersions('1.47', '1.47'), 0);
  assert.is(compareVersions('1.51', '1.47'), 1);
  assert.is(negotiateApiVersion(undefined), '1.47');
  assert.is(negotiateApiVersion('1.24'), '1.24');
  assert.is(negotiateApiVersion('1.41'), '1.41');
  try {
    negotiateApiVersion('1.51');
    assert.unreachable();
  } catch (err) {
    assert.ok(isBerthError(err, 'EAPIVERSION'));
    assert.is((err as Error).message, 'client version 1.51 is too new. Maximum supported API version is 1.47');
  }
  assert.throws(() => negotiateApiVersion('1.23'), /client version 1\.23 is too old\. Minimum supported API version is 1\.24, please upgrade your client to a newer version/);
});

test.run();
