// The image commands of the berth CLI, run as a user would: the built binary against a
// real daemon on temp dirs and Debian's docker-registry serving the fixture images.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, makeTempDir, run, BERTH_BIN, REPO_ROOT, type TestDaemon, type RunResult } from '../helpers/daemon';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { pushFixtures, type FixtureSet } from '../helpers/fixture-images';
import { ERROR_CODES } from '../../src/util/errors';

let registry: RunningRegistry | undefined;
let daemon: TestDaemon | undefined;
let fixtures: FixtureSet;
let work: string;

const HOST_ARCH = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm' } as Record<string, string>)[process.arch] ?? process.arch;

async function berth(args: string[], input?: string): Promise<RunResult> {
  return daemon!.cli(args, { input, env: { ...process.env, BERTH_CONFIG: join(work, 'config') } });
}

/** Runs berth and fails the test with its output unless the exit code is as expected. */
async function ok(args: string[], code = 0): Promise<RunResult> {
  const r = await berth(args);
  assert.is(r.code, code, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

async function imageId(name: string): Promise<string> {
  return (await ok(['image', 'inspect', '-f', '{{.Id}}', name])).stdout.trim();
}

test.before(async () => {
  work = makeTempDir('berth-e2e-images-');
  registry = await startRegistry();
  fixtures = await pushFixtures(registry.host);
  daemon = await startDaemon();
});

test.after(async () => {
  await daemon?.stop().catch(() => {});
  await registry?.stop().catch(() => {});
  await run('rm', ['-rf', work]);
});

test('pull prints docker plain progress, no escapes, and the full reference last', async () => {
  const r = await ok(['pull', fixtures.oci.reference]);
  assert.not.match(r.stdout + r.stderr, /\x1b/);
  const lines = r.stdout.trimEnd().split('\n');
  assert.is(lines[0], 'oci: Pulling from busybox');
  assert.ok(lines.some((l) => /^[0-9a-f]{12}: Pull complete$/.test(l)), r.stdout);
  assert.not.ok(lines.some((l) => /Downloading|Extracting/.test(l)), 'no per-tick lines without a terminal');
  assert.is(lines.at(-3), `Digest: ${fixtures.oci.digest}`);
  assert.is(lines.at(-2), `Status: Downloaded newer image for ${fixtures.oci.reference}`);
  assert.is(lines.at(-1), fixtures.oci.reference);

  const again = await ok(['pull', fixtures.oci.reference]);
  assert.match(again.stdout, `Status: Image is up to date for ${fixtures.oci.reference}\n`);
});

test('pull on a terminal redraws layer lines in place', async () => {
  // script(1) gives the CLI a pseudo-terminal as stdout.
  const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(BERTH_BIN)} -H ${daemon!.host}`;
  const r = await run('script', ['-qec', `${cli} pull ${fixtures.layers.reference}`, '/dev/null']);
  assert.is(r.code, 0, r.stdout);
  assert.match(r.stdout, /\x1b\[\d+A\x1b\[2K\r[0-9a-f]{12}: Pull complete\r\x1b\[\d+B/);
  const lines = r.stdout.split(/\r?\n/).filter((l) => l.trim() !== '');
  assert.is(lines.at(-1), fixtures.layers.reference);
  assert.is(lines.at(-2), `Status: Downloaded newer image for ${fixtures.layers.reference}`);
});

test('pull -q prints only the reference; schema 2 and OCI give one image', async () => {
  const r = await ok(['pull', '-q', fixtures.v2s2.reference]);
  assert.is(r.stdout, `${fixtures.v2s2.reference}\n`);
  assert.is(await imageId(fixtures.v2s2.reference), await imageId(fixtures.oci.reference));
});

test('pull of an index picks the host platform, or the one asked for', async () => {
  await ok(['pull', '-q', fixtures.multi.reference]);
  assert.is((await ok(['image', 'inspect', '-f', '{{.Architecture}}', fixtures.multi.reference])).stdout, `${HOST_ARCH}\n`);
  await ok(['pull', '-q', '--platform', 'linux/arm/v7', fixtures.multi.reference]);
  assert.is((await ok(['image', 'inspect', '-f', '{{.Os}}/{{.Architecture}}/{{.Variant}}', fixtures.multi.reference])).stdout, 'linux/arm/v7\n');
  await ok(['pull', '-q', '--platform', 'linux/mipsle', fixtures.multi.reference]);
  assert.is((await ok(['inspect', '-f', '{{.Architecture}}', fixtures.multi.reference])).stdout, 'mipsle\n');
});

test('pull of a missing tag fails before any progress, with the not-found exit code', async () => {
  const r = await berth(['pull', `${registry!.host}/busybox:nope`]);
  assert.is(r.code, ERROR_CODES.ENOTFOUND.exit, r.stderr);
  assert.match(r.stderr, /^Error response from daemon: .*(not found|unknown|does not exist)/i);
  assert.not.match(r.stdout, /Pulling from/);
});

test('images: docker table, one row per tag, <none> for untagged', async () => {
  const r = await ok(['images']);
  const [header, ...rows] = r.stdout.trimEnd().split('\n');
  assert.match(header!, /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$/);
  const repo = `${registry!.host}/busybox`;
  const row = (tag: string) => rows.find((l) => l.split(/ {2,}/)[0] === repo && l.split(/ {2,}/)[1] === tag);
  for (const tag of ['oci', 'v2s2', 'multi']) assert.ok(row(tag), `no row for ${tag}:\n${r.stdout}`);
  assert.match(row('oci')!, /^\S+ +oci +[0-9a-f]{12} +(\d+ seconds|Less than a second|About a minute|\d+ minutes|\d+ years) ago +\d+(\.\d+)?[kM]?B$/);
  // The index tag moved twice; the earlier platform images are dangling now.
  assert.ok(rows.some((l) => /^<none> +<none> +[0-9a-f]{12} /.test(l)), r.stdout);

  const ids = (await ok(['images', '-q'])).stdout.trim().split('\n');
  assert.ok(ids.every((id) => /^[0-9a-f]{12}$/.test(id)), ids.join());
  assert.ok(ids.length >= rows.length - 1);

  const names = (await ok(['images', '--format', '{{.Repository}}:{{.Tag}}', repo])).stdout.trim().split('\n').sort();
  assert.equal(names, [`${repo}:layers`, `${repo}:multi`, `${repo}:oci`, `${repo}:v2s2`]);
  const json = (await ok(['images', '--format', '{{json .}}', '-f', 'dangling=true'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(json.length >= 2 && json.every((j) => j.Repository === '<none>' && j.Tag === '<none>'));
  assert.match((await ok(['images', '--digests', fixtures.oci.reference])).stdout, fixtures.oci.digest);
  assert.match((await ok(['images', '--no-trunc', '-q', fixtures.oci.reference])).stdout, /^sha256:[0-9a-f]{64}\n/);
});

test('tag and rmi: docker lines, rmi goes on past a bad name and fails at the end', async () => {
  await ok(['tag', fixtures.oci.reference, 'mine/app:1']);
  assert.is(await imageId('mine/app:1'), await imageId(fixtures.oci.reference));
  await ok(['image', 'tag', 'mine/app:1', 'mine/app']);
  assert.ok(await imageId('mine/app:latest'));

  const r = await berth(['rmi', 'mine/app:1', 'no-such-image:x', 'mine/app']);
  assert.is(r.code, ERROR_CODES.ENOTFOUND.exit);
  assert.is(r.stdout, 'Untagged: mine/app:1\nUntagged: mine/app:latest\n');
  assert.match(r.stderr, /^Error response from daemon: No such image: no-such-image:x\n$/);
});

test('save -o, rmi, load -i gives back the same image', async () => {
  const id = await imageId(fixtures.oci.reference);
  await ok(['tag', fixtures.oci.reference, 'roundtrip:1']);
  const archive = join(work, 'roundtrip.tar');
  await ok(['save', '-o', archive, 'roundtrip:1']);
  assert.equal(readdirSync(work).filter((n) => n.includes('roundtrip')), ['roundtrip.tar'], 'no temp file left');
  const rm = await ok(['rmi', 'roundtrip:1']);
  assert.is(rm.stdout, 'Untagged: roundtrip:1\n');
  assert.is((await berth(['image', 'inspect', 'roundtrip:1'])).code, ERROR_CODES.ENOIMAGE.exit);
  const load = await ok(['load', '-i', archive]);
  assert.is(load.stdout, 'Loaded image: roundtrip:1\n');
  assert.is(await imageId('roundtrip:1'), id);
});

test('save to stdout and load from stdin stream the archive', async () => {
  const archive = join(work, 'piped.tar');
  const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(BERTH_BIN)} -H ${daemon!.host}`;
  const save = await run('sh', ['-c', `${cli} save roundtrip:1 > ${JSON.stringify(archive)}`]);
  assert.is(save.code, 0, save.stderr);
  await ok(['rmi', 'roundtrip:1']);
  const load = await run('sh', ['-c', `${cli} load < ${JSON.stringify(archive)}`]);
  assert.is(load.code, 0, load.stderr);
  assert.is(load.stdout, 'Loaded image: roundtrip:1\n');
});

test('save of a missing image leaves no file', async () => {
  const target = join(work, 'missing.tar');
  const r = await berth(['save', '-o', target, 'roundtrip:1', 'no-such-image']);
  assert.is(r.code, ERROR_CODES.ENOTFOUND.exit);
  assert.match(r.stderr, /No such image: no-such-image/);
  assert.not.ok(existsSync(target));
  assert.not.ok(readdirSync(work).some((n) => n.includes('missing')));
});

test('load -i dist/default-image.tar gives localhost/busybox:latest', async () => {
  const r = await ok(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
  assert.is(r.stdout, 'Loaded image: localhost/busybox:latest\n');
  assert.match((await ok(['images', 'localhost/busybox'])).stdout, /\nlocalhost\/busybox +latest +[0-9a-f]{12} /);
  const missing = await berth(['load', '-i', join(work, 'nope.tar')]);
  assert.is(missing.code, ERROR_CODES.ENOTFOUND.exit);
  assert.match(missing.stderr, /nope\.tar: no such file or directory/);
});

test('inspect: docker JSON layout; a missing image is docker\'s error and exit code', async () => {
  const r = await ok(['image', 'inspect', 'localhost/busybox']);
  const parsed = JSON.parse(r.stdout);
  assert.is(parsed.length, 1);
  assert.equal(parsed[0].RepoTags, ['localhost/busybox:latest']);
  assert.match(r.stdout, /^\[\n {4}\{\n {8}"Id": "sha256:/);

  const missing = await berth(['image', 'inspect', 'no-such-image']);
  assert.is(missing.code, ERROR_CODES.ENOIMAGE.exit);
  assert.is(missing.stdout, '[]\n');
  assert.is(missing.stderr, 'Error: No such image: no-such-image\n');
  const both = await berth(['inspect', '-f', '{{.Os}}', 'localhost/busybox', 'nothing-here']);
  assert.is(both.code, ERROR_CODES.ENOIMAGE.exit);
  assert.is(both.stdout, 'linux\n');
  assert.is(both.stderr, 'Error: No such object: nothing-here\n');
});

test('image history is docker\'s table', async () => {
  const r = await ok(['image', 'history', 'localhost/busybox']);
  const [header, first] = r.stdout.split('\n');
  assert.match(header!, /^IMAGE +CREATED +CREATED BY +SIZE +COMMENT$/);
  assert.match(first!, /^[0-9a-f]{12} /);
});

test('image prune asks first; -f skips the question', async () => {
  const dangling = (await ok(['images', '-q', '-f', 'dangling=true'])).stdout.trim().split('\n').filter(Boolean);
  assert.ok(dangling.length > 0);
  const declined = await berth(['image', 'prune'], 'n\n');
  assert.is(declined.code, 0);
  assert.match(declined.stdout, /^WARNING! This will remove all dangling images\.\nAre you sure you want to continue\? \[y\/N\] /);
  assert.is((await ok(['images', '-q', '-f', 'dangling=true'])).stdout.trim().split('\n').filter(Boolean).length, dangling.length);

  const r = await ok(['image', 'prune', '-f']);
  for (const id of dangling) assert.match(r.stdout, new RegExp(`deleted: sha256:${id}`));
  assert.match(r.stdout, /^Deleted Images:\n[^]*\n\nTotal reclaimed space: \d+(\.\d+)?[kM]?B\n$/);
  assert.is((await ok(['images', '-q', '-f', 'dangling=true'])).stdout, '');
});

test('system check: clean, then a flipped byte in a blob, then --repair', async () => {
  assert.is((await ok(['system', 'check'])).stdout, 'no problems found\n');
  // Damage the config blob of an image: the check must re-hash and notice.
  const id = await imageId('localhost/busybox:latest');
  const blob = join(daemon!.dataRoot, 'image/blobs/sha256', id.replace('sha256:', ''));
  const fd = openSync(blob, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, 10);
  byte[0] = byte[0]! ^ 0xff;
  writeSync(fd, byte, 0, 1, 10);
  closeSync(fd);

  const bad = await ok(['system', 'check'], ERROR_CODES.ECORRUPT.exit);
  assert.match(bad.stdout, new RegExp(`^blob-digest: ${blob}: content hashes to sha256:[0-9a-f]{64}, not ${id}\n`));
  assert.match(bad.stdout, /\n\d+ problems? found\n$/);

  const repaired = await ok(['system', 'check', '--repair']);
  assert.match(repaired.stdout, /blob-digest: .* \(repaired\)\n/);
  assert.match(repaired.stdout, /problems? found, \d+ repaired\n$/);
  assert.is((await ok(['system', 'check'])).stdout, 'no problems found\n');
  // The broken image was removed whole; loading it again restores it.
  await ok(['load', '-q', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
  assert.is(await imageId('localhost/busybox:latest'), id);
});

test.run();
