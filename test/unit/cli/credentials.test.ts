import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync, readFileSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DOCKER_HUB_KEY, configPath, findCredentials, hostnameOf, readConfig, registryAuthHeader,
  removeCredentials, saveCredentials, serverKey, authHeaderFor,
} from '../../../src/cli/credentials';
import { fullyQualified, splitReference, splitRepoTag } from '../../../src/cli/reference';

let dir: string;
let env: NodeJS.ProcessEnv;

test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-cred-'));
  env = { BERTH_CONFIG: join(dir, 'conf') };
});
test.after.each(() => { rmSync(dir, { recursive: true, force: true }); });

test('config location: $BERTH_CONFIG, else ~/.berth', () => {
  assert.is(configPath(env), join(dir, 'conf', 'config.json'));
  assert.is(configPath({ HOME: '/home/u' }), '/home/u/.berth/config.json');
});

test('server keys and hostnames follow docker', () => {
  assert.is(serverKey(undefined), DOCKER_HUB_KEY);
  assert.is(serverKey('docker.io'), DOCKER_HUB_KEY);
  assert.is(serverKey('index.docker.io'), DOCKER_HUB_KEY);
  assert.is(serverKey('127.0.0.1:5000'), '127.0.0.1:5000');
  assert.is(hostnameOf('https://index.docker.io/v1/'), 'docker.io');
  assert.is(hostnameOf('https://Reg.Example.com:5000/v2/'), 'reg.example.com:5000');
});

test('saved credentials: docker layout, mode 0600, other settings kept, atomic', async () => {
  mkdirSync(join(dir, 'conf'));
  writeFileSync(configPath(env), JSON.stringify({ credsStore: '', auths: { 'other:1': { auth: Buffer.from('a:b').toString('base64') } } }));
  const path = await saveCredentials(env, '127.0.0.1:5000', { username: 'berth', password: 'p:a:ss' });
  assert.is(statSync(path).mode & 0o777, 0o600);
  const saved = JSON.parse(readFileSync(path, 'utf8'));
  assert.is(saved.credsStore, '');
  assert.equal(saved.auths['127.0.0.1:5000'], { auth: Buffer.from('berth:p:a:ss').toString('base64') });
  assert.ok(saved.auths['other:1']);
  assert.equal(readdirSync(join(dir, 'conf')), ['config.json'], 'no temp file left behind');
  const creds = findCredentials(await readConfig(path), '127.0.0.1:5000');
  assert.equal(creds, { username: 'berth', password: 'p:a:ss', serveraddress: '127.0.0.1:5000' });
});

test('a fresh config directory is created private', async () => {
  const path = await saveCredentials(env, DOCKER_HUB_KEY, { username: 'u', password: 'p' });
  assert.is(statSync(join(dir, 'conf')).mode & 0o777, 0o700);
  assert.ok(findCredentials(await readConfig(path), 'docker.io'));
});

test('lookup matches keys by hostname, as docker does', async () => {
  await saveCredentials(env, 'https://reg.example.com/v2/', { username: 'u', password: 'p' });
  const config = await readConfig(configPath(env));
  assert.is(findCredentials(config, 'reg.example.com')?.username, 'u');
  assert.is(findCredentials(config, 'docker.io'), undefined);
});

test('identity tokens are stored instead of the password', async () => {
  await saveCredentials(env, 'r:1', { username: 'u', password: 'secret', identityToken: 'tok' });
  const raw = readFileSync(configPath(env), 'utf8');
  assert.not.match(raw, /secret/);
  assert.equal(findCredentials(await readConfig(configPath(env)), 'r:1'), { username: 'u', password: '', serveraddress: 'r:1', identitytoken: 'tok' });
});

test('X-Registry-Auth is base64url JSON', async () => {
  assert.is(await authHeaderFor(env, 'r:1'), undefined);
  await saveCredentials(env, 'r:1', { username: 'u', password: '??>>' });
  const header = (await authHeaderFor(env, 'r:1'))!;
  assert.not.match(header, /[+/=]/);
  assert.equal(JSON.parse(Buffer.from(header, 'base64url').toString()), { username: 'u', password: '??>>', serveraddress: 'r:1' });
  assert.equal(JSON.parse(Buffer.from(registryAuthHeader({ username: 'a', password: 'b', serveraddress: 's', identitytoken: 't' }), 'base64url').toString()).identitytoken, 't');
});

test('logout removes only that server', async () => {
  await saveCredentials(env, 'r:1', { username: 'u', password: 'p' });
  await saveCredentials(env, 'r:2', { username: 'u', password: 'p' });
  assert.is(await removeCredentials(env, 'r:1'), true);
  assert.is(await removeCredentials(env, 'r:1'), false);
  assert.equal(Object.keys((await readConfig(configPath(env))).auths!), ['r:2']);
});

test('a broken config file is reported, not overwritten', async () => {
  mkdirSync(join(dir, 'conf'));
  writeFileSync(configPath(env), '{nope');
  try {
    await saveCredentials(env, 'r:1', { username: 'u', password: 'p' });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /not valid JSON/);
  }
  assert.is(readFileSync(configPath(env), 'utf8'), '{nope');
});

test('image names: registry, full name, repo and tag', () => {
  assert.equal(splitReference('busybox'), { domain: 'docker.io', path: 'library/busybox' });
  assert.equal(splitReference('127.0.0.1:5000/busybox:oci'), { domain: '127.0.0.1:5000', path: 'busybox', tag: 'oci' });
  assert.equal(splitReference('localhost/a/b@sha256:abc'), { domain: 'localhost', path: 'a/b', digest: 'sha256:abc' });
  assert.is(fullyQualified('busybox'), 'docker.io/library/busybox:latest');
  assert.is(fullyQualified('user/app:1'), 'docker.io/user/app:1');
  assert.is(fullyQualified('127.0.0.1:5000/busybox@sha256:abc'), '127.0.0.1:5000/busybox@sha256:abc');
  assert.equal(splitRepoTag('127.0.0.1:5000/busybox'), { repo: '127.0.0.1:5000/busybox' });
  assert.equal(splitRepoTag('127.0.0.1:5000/busybox:x'), { repo: '127.0.0.1:5000/busybox', tag: 'x' });
});

test.run();
