// The real docker CLI (v28) against berth: every image command a user types works and
// prints what docker users expect. Needs a prior `npm run build`, the docker CLI, and
// Debian's docker-registry, umoci and skopeo for the fixture images.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, run, startDaemon, type RunResult, type TestDaemon } from '../helpers/daemon';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { pushFixtures, type FixtureSet } from '../helpers/fixture-images';

let registry: RunningRegistry;
let authRegistry: RunningRegistry;
let fixtures: FixtureSet;
let daemon: TestDaemon;
let workDir: string;

const HEX64 = /^sha256:[0-9a-f]{64}$/;

function ok(r: RunResult, what: string): void {
  assert.is(r.code, 0, `${what} failed: ${r.stderr}`);
  assert.is(r.stderr, '', `${what} wrote to stderr`);
}

async function docker(args: string[], input?: string): Promise<RunResult> {
  return daemon.docker(args, input === undefined ? {} : { input });
}

/** A pipeline through bash (pipefail, so a failing `docker save` fails it), with the same DOCKER_HOST and config as daemon.docker. */
function dockerShell(script: string): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: daemon.host, DOCKER_CONFIG: join(workDir, 'docker-config') };
  delete env.DOCKER_CONTEXT;
  return run('bash', ['-o', 'pipefail', '-c', script], { env, timeoutMs: 60_000 });
}

async function imageId(name: string): Promise<string> {
  const r = await docker(['image', 'inspect', '--format', '{{.Id}}', name]);
  ok(r, `inspect ${name}`);
  return r.stdout.trim();
}

/** Rows of `docker images` as {repository, tag, id, size}. */
async function imageTable(): Promise<Array<{ repository: string; tag: string; id: string; size: string }>> {
  const r = await docker(['images']);
  ok(r, 'docker images');
  const [header, ...rows] = r.stdout.trimEnd().split('\n');
  assert.match(header!, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
  return rows.filter(Boolean).map((row) => {
    const cols = row.split(/\s{2,}/);
    return { repository: cols[0]!, tag: cols[1]!, id: cols[2]!, size: cols[cols.length - 1]! };
  });
}

test.before(async () => {
  workDir = makeTempDir('berth-docker-cli-');
  registry = await startRegistry();
  fixtures = await pushFixtures(registry.host);
  authRegistry = await startRegistry({ auth: 'basic', storageDir: registry.storageDir });
  daemon = await startDaemon();
});

test.after(async () => {
  await daemon?.stop();
  await authRegistry?.stop();
  await registry?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('docker version and docker info talk to berth', async () => {
  const version = await docker(['version']);
  ok(version, 'docker version');
  assert.match(version.stdout, /Server: berth/);
  const info = await docker(['info']);
  ok(info, 'docker info');
  assert.match(info.stdout, /Server Version: \d+\.\d+\.\d+/);
  assert.match(info.stdout, /Images: 0/);
});

test('docker pull of OCI, schema 2 and index images prints docker progress', async () => {
  const oci = await docker(['pull', fixtures.oci.reference]);
  ok(oci, 'pull oci');
  assert.match(oci.stdout, /^oci: Pulling from busybox$/m);
  assert.match(oci.stdout, /^[0-9a-f]{12}: Pull complete$/m);
  assert.match(oci.stdout, new RegExp(`^Digest: ${fixtures.oci.digest}$`, 'm'));
  assert.match(oci.stdout, new RegExp(`^Status: Downloaded newer image for ${fixtures.oci.reference}$`, 'm'));
  assert.match(oci.stdout, new RegExp(`^${fixtures.oci.reference}$`, 'm'));

  const v2s2 = await docker(['pull', fixtures.v2s2.reference]);
  ok(v2s2, 'pull v2s2');
  // Same layer as :oci, so nothing is fetched again.
  assert.match(v2s2.stdout, /^[0-9a-f]{12}: Already exists$/m);
  assert.match(v2s2.stdout, new RegExp(`^Digest: ${fixtures.v2s2.digest}$`, 'm'));

  const again = await docker(['pull', fixtures.oci.reference]);
  ok(again, 'pull oci again');
  assert.match(again.stdout, new RegExp(`^Status: Image is up to date for ${fixtures.oci.reference}$`, 'm'));

  const multi = await docker(['pull', fixtures.multi.reference]);
  ok(multi, 'pull multi');
  assert.match(multi.stdout, new RegExp(`^Digest: ${fixtures.multi.digest}$`, 'm'));
  const inspect = JSON.parse((await docker(['image', 'inspect', fixtures.multi.reference])).stdout)[0];
  assert.is(inspect.Architecture, 'amd64');
});

test('docker pull --platform linux/arm/v7 picks that manifest from the index', async () => {
  const r = await docker(['pull', '--platform', 'linux/arm/v7', fixtures.multi.reference]);
  ok(r, 'pull --platform');
  assert.match(r.stdout, /Status: Downloaded newer image for /);
  const inspect = JSON.parse((await docker(['image', 'inspect', fixtures.multi.reference])).stdout)[0];
  assert.is(inspect.Architecture, 'arm');
  assert.is(inspect.Variant, 'v7');
});

test('docker images shows repository, tag, short ID and size', async () => {
  const rows = await imageTable();
  const repo = `${registry.host}/busybox`;
  const ociId = await imageId(fixtures.oci.reference);
  for (const tag of ['oci', 'v2s2', 'multi']) {
    const row = rows.find((r) => r.repository === repo && r.tag === tag);
    assert.ok(row, `row for ${repo}:${tag} in ${JSON.stringify(rows)}`);
    assert.match(row!.id, /^[0-9a-f]{12}$/);
    assert.match(row!.size, /^\d+(\.\d+)?(B|kB|MB)$/);
  }
  assert.is(rows.find((r) => r.tag === 'oci')!.id, ociId.slice('sha256:'.length, 'sha256:'.length + 12));
  // The amd64 image lost its tag to the arm/v7 pull and is now dangling, as in docker.
  assert.ok(rows.some((r) => r.repository === '<none>' && r.tag === '<none>'));
});

test('docker image inspect returns the JSON docker tools read', async () => {
  const r = await docker(['image', 'inspect', fixtures.oci.reference]);
  ok(r, 'image inspect');
  const [image] = JSON.parse(r.stdout);
  assert.match(image.Id, HEX64);
  assert.ok(image.RepoTags.includes(fixtures.oci.reference));
  assert.ok(image.RepoTags.includes(fixtures.v2s2.reference));
  assert.ok(image.RepoDigests.includes(`${registry.host}/busybox@${fixtures.oci.digest}`));
  assert.is(image.Architecture, 'amd64');
  assert.is(image.Os, 'linux');
  assert.is(image.RootFS.Type, 'layers');
  assert.is(image.RootFS.Layers.length, 1);
  assert.match(image.RootFS.Layers[0], HEX64);
  assert.equal(image.Config.Cmd, ['/bin/sh']);
  const formatted = await docker(['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}} {{len .RootFS.Layers}}', fixtures.oci.reference]);
  ok(formatted, 'inspect --format');
  assert.is(formatted.stdout.trim(), 'linux/amd64 1');
});

test('a missing image: inspect and pull fail with docker\'s messages', async () => {
  const inspect = await docker(['image', 'inspect', 'nope']);
  assert.is(inspect.code, 1);
  assert.is(inspect.stdout.trim(), '[]');
  assert.is(inspect.stderr.trim(), 'Error response from daemon: No such image: nope:latest');

  const pull = await docker(['pull', `${registry.host}/nope:x`]);
  assert.is(pull.code, 1);
  // The manifest lookup fails before any progress, so it is a plain daemon error.
  assert.is(pull.stdout, '');
  assert.is(pull.stderr.trim(), `Error response from daemon: manifest for ${registry.host}/nope:x not found: manifest unknown: manifest unknown`);
});

test('docker tag and docker rmi print Untagged/Deleted and refuse ambiguous deletes', async () => {
  const id = await imageId(fixtures.oci.reference);
  ok(await docker(['tag', fixtures.oci.reference, 'other/thing:t1']), 'tag');
  ok(await docker(['tag', 'other/thing:t1', 'other/thing:t2']), 'tag again');
  assert.is(await imageId('other/thing:t2'), id);

  const untag = await docker(['rmi', 'other/thing:t2']);
  ok(untag, 'rmi tag');
  assert.is(untag.stdout, 'Untagged: other/thing:t2\n');

  // Tagged in two repositories: deleting by ID needs -f, with dockerd's wording.
  const short = id.slice('sha256:'.length, 'sha256:'.length + 12);
  const refused = await docker(['rmi', short]);
  assert.is(refused.code, 1);
  assert.is(refused.stderr.trim(), `Error response from daemon: conflict: unable to delete ${short} (must be forced) - image is referenced in multiple repositories`);
  assert.is(await imageId('other/thing:t1'), id, 'nothing was removed');

  // An image with a single tag goes with one rmi: Untagged lines, then Deleted.
  const single = await docker(['pull', fixtures.layers.reference]);
  ok(single, 'pull layers');
  const layersId = await imageId(fixtures.layers.reference);
  const removed = await docker(['rmi', fixtures.layers.reference]);
  ok(removed, 'rmi last tag');
  const lines = removed.stdout.trimEnd().split('\n');
  assert.is(lines[0], `Untagged: ${fixtures.layers.reference}`);
  assert.ok(lines.includes(`Untagged: ${registry.host}/busybox@${fixtures.layers.digest}`), removed.stdout);
  assert.is(lines[lines.length - 1], `Deleted: ${layersId}`);
  const gone = await docker(['image', 'inspect', fixtures.layers.reference]);
  assert.is(gone.code, 1);
});

test('docker save a b | docker load round-trips through a pipe', async () => {
  const r = await dockerShell(`docker save ${fixtures.multi.reference} other/thing:t1 | docker load`);
  ok(r, 'save | load');
  assert.match(r.stdout, new RegExp(`^Loaded image: ${fixtures.multi.reference}$`, 'm'));
  assert.match(r.stdout, /^Loaded image: other\/thing:t1$/m);
});

test('docker save -o FILE then docker load -i FILE restores a removed image', async () => {
  const archive = join(workDir, 'thing.tar');
  const id = await imageId('other/thing:t1');
  const saved = await docker(['save', '-o', archive, 'other/thing:t1']);
  ok(saved, 'save -o');
  assert.is(saved.stdout, '');
  assert.ok(existsSync(archive) && statSync(archive).size > 1024);

  const forced = await docker(['rmi', '-f', id]);
  ok(forced, 'rmi -f');
  assert.match(forced.stdout, /^Untagged: other\/thing:t1$/m);
  assert.match(forced.stdout, new RegExp(`^Untagged: ${fixtures.oci.reference}$`, 'm'));
  assert.match(forced.stdout, new RegExp(`^Deleted: ${id}$`, 'm'));
  assert.is((await docker(['image', 'inspect', 'other/thing:t1'])).code, 1);

  const loaded = await docker(['load', '-i', archive]);
  ok(loaded, 'load -i');
  assert.is(loaded.stdout.trim(), 'Loaded image: other/thing:t1');
  assert.is(await imageId('other/thing:t1'), id);
});

test('docker login to a basic-auth registry, then pull through it with X-Registry-Auth', async () => {
  const reference = `${authRegistry.host}/busybox:oci`;
  const denied = await docker(['pull', reference]);
  assert.is(denied.code, 1);
  assert.match(denied.stderr, /^Error response from daemon: pull access denied for .*busybox/);

  const login = await docker(['login', '-u', authRegistry.username!, '--password-stdin', authRegistry.host], authRegistry.password);
  assert.is(login.code, 0, login.stderr);
  assert.match(login.stdout, /Login Succeeded/);
  // The CLI's own warning about storing the password in config.json is the only stderr.
  assert.not.match(login.stderr, /Error/);

  const badLogin = await docker(['login', '-u', authRegistry.username!, '--password-stdin', authRegistry.host], 'wrong-password');
  assert.is(badLogin.code, 1);
  assert.match(badLogin.stderr, /unauthorized|incorrect username or password/i);

  const pulled = await docker(['pull', reference]);
  ok(pulled, 'pull with credentials');
  assert.match(pulled.stdout, new RegExp(`^Status: Downloaded newer image for ${reference}$`, 'm'));
});

test('docker image prune -f removes dangling images only', async () => {
  const before = await imageTable();
  assert.ok(before.some((r) => r.repository === '<none>'), 'there is a dangling image to prune');
  const r = await docker(['image', 'prune', '-f']);
  ok(r, 'image prune -f');
  assert.match(r.stdout, /^Deleted Images:$/m);
  assert.match(r.stdout, /^deleted: sha256:[0-9a-f]{64}$/m);
  assert.match(r.stdout, /^Total reclaimed space: \d+(\.\d+)?(B|kB|MB)$/m);
  const after = await imageTable();
  assert.not.ok(after.some((row) => row.repository === '<none>'));
  assert.ok(after.some((row) => row.repository === `${registry.host}/busybox` && row.tag === 'multi'), 'tagged images stay');
  const again = await docker(['image', 'prune', '-f']);
  ok(again, 'prune with nothing to do');
  assert.match(again.stdout, /^Total reclaimed space: 0B$/m);
});

test.run();
