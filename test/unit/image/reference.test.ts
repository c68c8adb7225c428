import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isBerthError } from '../../../src/util/errors';
import {
  familiarString, formatReference, isLoopbackRegistry, parseReference, registryHost, repositoryName,
} from '../../../src/image/reference';

const HEX = 'a'.repeat(64);

// input -> [full normalised form, docker's familiar form]
const NORMALISED: Array<[string, string, string]> = [
  ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
  ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['user/x', 'docker.io/user/x:latest', 'user/x:latest'],
  ['user/x:tag', 'docker.io/user/x:tag', 'user/x:tag'],
  ['docker.io/library/a/b', 'docker.io/library/a/b:latest', 'library/a/b:latest'],
  ['127.0.0.1:5000/x:tag', '127.0.0.1:5000/x:tag', '127.0.0.1:5000/x:tag'],
  ['myhost:5000/ns/name:v1.2-rc_3', 'myhost:5000/ns/name:v1.2-rc_3', 'myhost:5000/ns/name:v1.2-rc_3'],
  ['localhost/x', 'localhost/x:latest', 'localhost/x:latest'],
  ['localhost:5000/x', 'localhost:5000/x:latest', 'localhost:5000/x:latest'],
  ['ghcr.io/owner/repo/sub', 'ghcr.io/owner/repo/sub:latest', 'ghcr.io/owner/repo/sub:latest'],
  ['[::1]:5000/x', '[::1]:5000/x:latest', '[::1]:5000/x:latest'],
  ['Registry.Example.com/x', 'Registry.Example.com/x:latest', 'Registry.Example.com/x:latest'],
  ['a__b/c-d--e/f.g', 'docker.io/a__b/c-d--e/f.g:latest', 'a__b/c-d--e/f.g:latest'],
  [`busybox@sha256:${HEX}`, `docker.io/library/busybox@sha256:${HEX}`, `busybox@sha256:${HEX}`],
  [`busybox:1.36@sha256:${HEX}`, `docker.io/library/busybox:1.36@sha256:${HEX}`, `busybox:1.36@sha256:${HEX}`],
  [`127.0.0.1:5000/x@sha256:${HEX}`, `127.0.0.1:5000/x@sha256:${HEX}`, `127.0.0.1:5000/x@sha256:${HEX}`],
];

for (const [input, full, familiar] of NORMALISED) {
  test(`normalises ${input}`, () => {
    const ref = parseReference(input);
    assert.is(formatReference(ref), full);
    assert.is(familiarString(ref), familiar);
  });
}

test('splits into domain, path, tag and digest', () => {
  assert.equal(parseReference('busybox'), { domain: 'docker.io', path: 'library/busybox', tag: 'latest' });
  assert.equal(parseReference(`host:5000/ns/name:t@sha256:${HEX}`), { domain: 'host:5000', path: 'ns/name', tag: 't', digest: `sha256:${HEX}` });
  // A digest alone does not imply :latest.
  assert.equal(parseReference(`x@sha256:${HEX}`), { domain: 'docker.io', path: 'library/x', digest: `sha256:${HEX}` });
  assert.is(repositoryName(parseReference('busybox:1')), 'docker.io/library/busybox');
});

const INVALID: string[] = [
  '',
  'Busybox',
  'docker.io/Library/busybox',
  'user/X',
  'busybox:',
  'busybox:-tag',
  `busybox:${'t'.repeat(129)}`,
  'busybox@sha256:abc',
  `busybox@sha256:${'A'.repeat(64)}`,
  'busybox@',
  '/busybox',
  'busybox/',
  'a//b',
  'a/-b',
  '-x',
  'x_',
  'has space',
  'host:port/x',
  HEX,
  `${'a'.repeat(256)}`,
];

for (const input of INVALID) {
  test(`rejects ${JSON.stringify(input.length > 40 ? input.slice(0, 40) + '...' : input)}`, () => {
    try {
      parseReference(input);
      assert.unreachable('should have thrown');
    } catch (err) {
      assert.ok(isBerthError(err, 'EINVAL'), String(err));
    }
  });
}

test('uppercase repository paths say they must be lowercase', () => {
  try {
    parseReference('user/Foo');
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /invalid reference format: repository name must be lowercase/);
  }
});

test('registry host for docker hub and others', () => {
  assert.is(registryHost(parseReference('busybox')), 'registry-1.docker.io');
  assert.is(registryHost(parseReference('ghcr.io/a/b')), 'ghcr.io');
  assert.is(registryHost(parseReference('127.0.0.1:5000/x')), '127.0.0.1:5000');
});

test('loopback registries', () => {
  for (const d of ['127.0.0.1:5000', '127.1.2.3', 'localhost', 'localhost:5000', 'LOCALHOST:1', '[::1]:5000', '[::1]']) assert.ok(isLoopbackRegistry(d), d);
  for (const d of ['docker.io', '128.0.0.1:5000', '10.0.0.1', '127.0.0.1.example.com', '[::2]:5000', 'localhost.example']) assert.not.ok(isLoopbackRegistry(d), d);
});

test.run();
