import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { canonicalJson, signRequest, verifyRequest, parsePublicKey } from '../../../src/fleet/signing';

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
const rawBase64 = (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).subarray(12).toString('base64');

test('canonical JSON sorts keys at every level and drops undefined', () => {
  assert.is(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } }), '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
});

test('a signed request verifies with the PEM key and with the raw base64 key', () => {
  const req = signRequest({ id: 'r1', action: 'ps', args: { all: true } }, privateKey);
  verifyRequest(req, [parsePublicKey(pem)]);
  verifyRequest(req, [parsePublicKey(other.publicKey.export({ type: 'spki', format: 'pem' }).toString()), parsePublicKey(rawBase64)]);
});

test('unsigned, tampered, wrongly signed and stale requests are refused with EDENIED', () => {
  const keys = [parsePublicKey(pem)];
  const signed = signRequest({ id: 'r1', action: 'ps', args: {} }, privateKey);
  const refuse = (req: any, message: RegExp): void => {
    try { verifyRequest(req, keys); assert.unreachable('accepted'); } catch (err) {
      assert.is((err as { code?: string }).code, 'EDENIED');
      assert.match((err as Error).message, message);
    }
  };
  refuse({ id: 'r1', action: 'ps', args: {} }, /unsigned/);
  refuse({ ...signed, action: 'rm' }, /bad signature/);
  refuse({ ...signed, args: { all: true } }, /bad signature/);
  refuse(signRequest({ id: 'r1', action: 'ps', args: {} }, other.privateKey), /bad signature/);
  refuse(signRequest({ id: 'r1', action: 'ps', args: {} }, privateKey, Date.now() - 10 * 60_000), /stale/);
});

test('non-Ed25519 keys are rejected', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  assert.throws(() => parsePublicKey(rsa), /Ed25519/);
  assert.throws(() => parsePublicKey('bm90IGEga2V5'), /not an Ed25519 public key/);
});

test.run();
