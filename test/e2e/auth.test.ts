// `berth login`, `logout` and pulls through registries that want credentials: Basic auth
// and bearer tokens from a token server, with credentials kept in $BERTH_CONFIG.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, makeTempDir, run, type TestDaemon, type RunResult } from '../helpers/daemon';
import { startRegistry, TEST_USERNAME, TEST_PASSWORD, type RunningRegistry } from '../helpers/registry';
import { pushFixtures } from '../helpers/fixture-images';
import { ERROR_CODES } from '../../src/util/errors';

let plain: RunningRegistry | undefined;
let basic: RunningRegistry | undefined;
let token: RunningRegistry | undefined;
let daemon: TestDaemon | undefined;
let work: string;

const configFile = (): string => join(work, 'config', 'config.json');

function berth(args: string[], input?: string): Promise<RunResult> {
  return daemon!.cli(args, { input, env: { ...process.env, BERTH_CONFIG: join(work, 'config') } });
}

test.before(async () => {
  work = makeTempDir('berth-e2e-auth-');
  plain = await startRegistry();
  await pushFixtures(plain.host);
  // Same storage behind auth: the fixtures are there without pushing again.
  basic = await startRegistry({ auth: 'basic', storageDir: plain.storageDir });
  token = await startRegistry({ auth: 'token', storageDir: plain.storageDir });
  daemon = await startDaemon();
});

test.after(async () => {
  await daemon?.stop().catch(() => {});
  await Promise.all([plain, basic, token].map((r) => r?.stop().catch(() => {})));
  await run('rm', ['-rf', work]);
});

test('basic auth: anonymous pull is refused with docker\'s hint', async () => {
  const r = await berth(['pull', `${basic!.host}/busybox:oci`]);
  assert.ok(r.code !== 0);
  assert.match(r.stderr, /^Error response from daemon: .*docker login.*unauthorized/);
});

test('basic auth: a wrong password fails clearly and stores nothing', async () => {
  const r = await berth(['login', '-u', TEST_USERNAME, '--password-stdin', basic!.host], 'not-the-password\n');
  assert.is(r.code, ERROR_CODES.EAUTH.exit, r.stderr);
  assert.match(r.stderr, /^Error response from daemon: .*unauthorized/);
  assert.not.match(r.stdout, /Login Succeeded/);
  assert.not.ok(existsSync(configFile()));
});

test('basic auth: login stores docker-style credentials (0600), then pull works', async () => {
  const r = await berth(['login', '-u', TEST_USERNAME, '--password-stdin', basic!.host], `${TEST_PASSWORD}\n`);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'Login Succeeded\n');
  assert.is(statSync(configFile()).mode & 0o777, 0o600);
  const config = JSON.parse(readFileSync(configFile(), 'utf8'));
  assert.equal(config.auths[basic!.host], { auth: Buffer.from(`${TEST_USERNAME}:${TEST_PASSWORD}`).toString('base64') });

  const pull = await berth(['pull', `${basic!.host}/busybox:v2s2`]);
  assert.is(pull.code, 0, pull.stderr);
  assert.match(pull.stdout, `Status: Downloaded newer image for ${basic!.host}/busybox:v2s2\n${basic!.host}/busybox:v2s2\n`);
});

test('--password-stdin needs a username; -p warns', async () => {
  const r = await berth(['login', '--password-stdin', basic!.host], 'x\n');
  assert.is(r.code, ERROR_CODES.EINVAL.exit);
  assert.match(r.stderr, /Must provide --username with --password-stdin/);
  const p = await berth(['login', '-u', TEST_USERNAME, '-p', TEST_PASSWORD, basic!.host]);
  assert.is(p.code, 0, p.stderr);
  assert.match(p.stderr, /WARNING! Using --password via the CLI is insecure/);
});

test('logout forgets the registry; pulls are refused again', async () => {
  const r = await berth(['logout', basic!.host]);
  assert.is(r.stdout, `Removing login credentials for ${basic!.host}\n`);
  assert.equal(JSON.parse(readFileSync(configFile(), 'utf8')).auths, {});
  assert.is((await berth(['logout', basic!.host])).stdout, `Not logged in to ${basic!.host}\n`);
  assert.ok((await berth(['pull', '-q', `${basic!.host}/busybox:oci`])).code !== 0);
});

test('bearer token auth: login then pull', async () => {
  const bad = await berth(['login', '-u', TEST_USERNAME, '--password-stdin', token!.host], 'nope\n');
  assert.is(bad.code, ERROR_CODES.EAUTH.exit, bad.stderr);
  const r = await berth(['login', '-u', TEST_USERNAME, '--password-stdin', token!.host], TEST_PASSWORD);
  assert.is(r.code, 0, r.stderr);
  const pull = await berth(['pull', `${token!.host}/busybox:oci`]);
  assert.is(pull.code, 0, pull.stderr);
  assert.is(pull.stdout.trimEnd().split('\n').at(-1), `${token!.host}/busybox:oci`);
  const arch = await berth(['image', 'inspect', '-f', '{{.Os}}', `${token!.host}/busybox:oci`]);
  assert.is(arch.stdout, 'linux\n');
});

test.run();
