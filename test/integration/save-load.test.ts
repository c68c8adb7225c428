// `docker save` / `docker load` through the image service: our archives round-trip
// into a fresh data root and other tools read them; archives from skopeo (Docker's
// legacy layout, plain OCI layouts) load; hostile archives fail cleanly.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Graph } from '../../src/minimal-graph';
import { RegistryClient } from '../../src/image/registry';
import { ImageService } from '../../src/image/service';
import { isBerthError, type ErrorCode } from '../../src/util/errors';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { pushFixtures, type FixtureSet } from '../helpers/fixture-images';
import { buildTar, type EntryInput } from '../helpers/tar';

const run = promisify(execFile);
const AMD64 = { os: 'linux', architecture: 'amd64' };
const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

let plain: RunningRegistry;
let fixtures: FixtureSet;
let registry: RegistryClient;
let workDir: string;
let canary: string;
let source: ImageService;
let serviceCount = 0;

function makeService(): Promise<ImageService> {
  return Graph.open(join(workDir, 'roots', `root-${++serviceCount}`)).then((graph) => new ImageService({
    graph, registry, whiteoutFormat: 'overlay', storageDriverName: 'overlay', platform: AMD64, maxLayerSize: 64 * 1024 * 1024,
  }));
}

async function saveToFile(service: ImageService, names: string[], file: string): Promise<void> {
  await service.save(names, createWriteStream(file));
}

async function tarList(file: string): Promise<string[]> {
  return (await run('tar', ['tf', file], { maxBuffer: 16 * 1024 * 1024 })).stdout.split('\n').filter(Boolean);
}

async function tarRead(file: string, member: string): Promise<string> {
  return (await run('tar', ['xOf', file, member], { maxBuffer: 16 * 1024 * 1024 })).stdout;
}

/** Everything beside the data roots, to prove a hostile load wrote nowhere else. */
async function snapshotOutside(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      if (path === join(workDir, 'roots') || path === join(workDir, 'archives')) continue;
      const st = await lstat(path);
      out.push(`${path} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}${st.isSymbolicLink() ? ` -> ${await readlink(path)}` : ''}`);
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk(workDir);
  return out;
}

async function assertCheckClean(service: ImageService): Promise<void> {
  assert.equal(await service.graph.check(), [], 'graph.check() is clean');
  assert.equal(await readdir(service.graph.layers.tmpDir), [], 'no spool or extraction left in tmp/');
}

test.before(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'berth-save-load-'));
  mkdirSync(join(workDir, 'archives'));
  canary = join(workDir, 'canary');
  mkdirSync(canary);
  writeFileSync(join(canary, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  try {
    plain = await startRegistry();
    fixtures = await pushFixtures(plain.host);
  } catch (err) {
    await plain?.stop();
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  }
  registry = new RegistryClient({ userAgent: 'berth-test' });
  source = await makeService();
  await source.pull(fixtures.oci.reference, {});
  await source.pull(fixtures.layers.reference, {});
  await source.tag(fixtures.oci.reference, 'example/other', 'v1');
});

test.after(async () => {
  registry?.close();
  await plain?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

const archive = (name: string) => join(workDir, 'archives', name);

test('save of two images loads into a fresh data root with the same IDs and tags', async () => {
  const file = archive('two.tar');
  await saveToFile(source, [fixtures.oci.reference, fixtures.layers.reference], file);
  const names = await tarList(file);
  for (const required of ['manifest.json', 'index.json', 'oci-layout', 'blobs/', 'blobs/sha256/']) assert.ok(names.includes(required), `${required} in the archive`);
  const manifest = JSON.parse(await tarRead(file, 'manifest.json'));
  assert.equal(manifest.map((m: { RepoTags: string[] }) => m.RepoTags), [[fixtures.oci.reference], [fixtures.layers.reference]]);
  // Docker 25 layout: layers are uncompressed tars named by their diff_id.
  const layersConfig = JSON.parse(await tarRead(file, manifest[1].Config));
  assert.equal(manifest[1].Layers, layersConfig.rootfs.diff_ids.map((d: string) => `blobs/sha256/${d.slice(7)}`));

  const target = await makeService();
  const progress: string[] = [];
  const loaded = await target.load(createReadStream(file), (m) => { if (m.stream) progress.push(m.stream); });
  assert.equal(loaded, [`${plain.host}/busybox:oci`, `${plain.host}/busybox:layers`].map((r) => r));
  assert.equal(progress, [`Loaded image: ${fixtures.oci.reference}\n`, `Loaded image: ${fixtures.layers.reference}\n`]);
  for (const ref of [fixtures.oci.reference, fixtures.layers.reference]) {
    const before = await source.inspect(ref);
    const after = await target.inspect(ref);
    assert.is(after.Id, before.Id, `${ref} keeps its ID`);
    assert.equal(after.RootFS, before.RootFS);
    assert.equal(after.RepoTags, [ref], 'only the saved tag travels');
  }
  const listed = (await target.list()).map((i) => i.RepoTags).sort();
  assert.equal(listed, [[fixtures.layers.reference], [fixtures.oci.reference]]);
  // The loaded layers are unpacked and carry the whiteout of layer 2.
  const record = (await target.graph.getImage((await target.inspect(fixtures.layers.reference)).Id))!;
  assert.equal((await target.graph.layers.get(record.layers[1]!.chainId))!.whiteouts, ['data/file.txt']);
  assert.ok((await lstat(join(target.graph.layers.diffPath(record.layers[0]!.chainId), 'bin', 'busybox'))).isFile());
  await assertCheckClean(target);

  // Loading the same archive again changes nothing.
  assert.equal(await target.load(createReadStream(file)), loaded);
  await assertCheckClean(target);
});

test('skopeo reads the saved archive', async () => {
  const file = archive('two.tar');
  const { stdout } = await run('skopeo', ['inspect', `docker-archive:${file}:${fixtures.layers.reference}`]);
  const info = JSON.parse(stdout);
  assert.is(info.Architecture, 'amd64');
  assert.is(info.Layers.length, 3);
  const { stdout: raw } = await run('skopeo', ['inspect', '--config', '--raw', `docker-archive:${file}:${fixtures.oci.reference}`]);
  assert.is(sha256(Buffer.from(raw)), (await source.inspect(fixtures.oci.reference)).Id);
});

test('save by repository name saves every tag of that repository', async () => {
  const file = archive('repo.tar');
  await saveToFile(source, [`${plain.host}/busybox`], file);
  const manifest = JSON.parse(await tarRead(file, 'manifest.json'));
  const tags = manifest.flatMap((m: { RepoTags: string[] }) => m.RepoTags).sort();
  assert.equal(tags, [fixtures.layers.reference, fixtures.oci.reference].sort());
  assert.not.ok(tags.includes('example/other:v1'), 'other repositories stay out');

  const target = await makeService();
  const loaded = await target.load(createReadStream(file));
  assert.equal(loaded.sort(), [fixtures.layers.reference, fixtures.oci.reference].sort());
  await assertCheckClean(target);

  // By ID: no tags travel, and load reports the ID.
  const byId = archive('by-id.tar');
  const id = (await source.inspect('example/other:v1')).Id;
  await saveToFile(source, [id.slice(7, 19)], byId);
  const untagged = await makeService();
  assert.equal(await untagged.load(createReadStream(byId)), [id]);
  assert.equal((await untagged.inspect(id)).RepoTags, []);
  await assertCheckClean(untagged);

  await saveToFile(source, ['example/other'], archive('other.tar')).then(async () => {
    const other = JSON.parse(await tarRead(archive('other.tar'), 'manifest.json'));
    assert.equal(other[0].RepoTags, ['example/other:v1']);
  });
  await rejectsWith(source.save(['nosuch/repo'], createWriteStream(archive('none.tar'))), 'ENOIMAGE', /No such image: nosuch\/repo/);
});

test('a save whose reader goes away rejects instead of crashing, and the next save works', async () => {
  let received = 0;
  const dying = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      callback(received > 100_000 ? new Error('reader closed the connection') : null);
    },
  });
  await rejectsWithError(source.save([fixtures.layers.reference], dying), /reader closed the connection/);
  const closedEarly = new Writable({ write(_chunk, _encoding, callback) { callback(); } });
  closedEarly.destroy();
  await rejectsWithError(source.save([fixtures.oci.reference], closedEarly), /./);
  await saveToFile(source, [fixtures.oci.reference], archive('after-failure.tar'));
  assert.ok((await tarList(archive('after-failure.tar'))).includes('manifest.json'));
});

async function rejectsWithError(promise: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await promise;
  } catch (err) {
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable('expected a rejection');
}

test('a gzip-compressed save loads', async () => {
  const tarBytes = await readFile(archive('two.tar'));
  const target = await makeService();
  const loaded = await target.load(Readable.from([gzipSync(tarBytes)]));
  assert.is(loaded.length, 2);
  await assertCheckClean(target);
});

test('loads what skopeo writes: Docker legacy docker-archive and an OCI layout tar', async () => {
  const legacy = archive('skopeo-legacy.tar');
  await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${fixtures.layers.reference}`, `docker-archive:${legacy}:example/layers:v1`]);
  const target = await makeService();
  assert.equal(await target.load(createReadStream(legacy)), ['docker.io/example/layers:v1']);
  const loaded = await target.inspect('example/layers:v1');
  assert.is(loaded.Id, (await source.inspect(fixtures.layers.reference)).Id);
  assert.equal(loaded.RepoTags, ['example/layers:v1']);

  const layoutDir = join(workDir, 'archives', 'oci-layout');
  await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${fixtures.oci.reference}`, `oci:${layoutDir}:v1`]);
  const layoutTar = archive('oci-layout.tar');
  await run('tar', ['-C', layoutDir, '-cf', layoutTar, '.']);
  const fromLayout = await target.load(createReadStream(layoutTar));
  const ociId = (await source.inspect(fixtures.oci.reference)).Id;
  // Without io.containerd.image.name there is no repository to tag, as with docker load.
  assert.equal(fromLayout, [ociId]);
  const record = (await target.graph.getImage(ociId))!;
  assert.is(record.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  await assertCheckClean(target);
});

test('loads a Docker legacy archive whose layer.tar entries are symlinks', async () => {
  const layer = await buildTar([{ name: 'hello', body: 'hi\n' }]);
  const diffId = sha256(layer);
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId, diffId] } });
  const tar = await buildTar([
    { name: 'aaa/layer.tar', body: layer },
    { name: 'bbb/layer.tar', type: 'symlink', linkname: '../aaa/layer.tar' },
    { name: 'cfg.json', body: config },
    { name: 'manifest.json', body: JSON.stringify([{ Config: 'cfg.json', RepoTags: ['linked:latest'], Layers: ['aaa/layer.tar', 'bbb/layer.tar'] }]) },
  ]);
  const target = await makeService();
  assert.equal(await target.load(Readable.from([tar])), ['docker.io/library/linked:latest']);
  assert.is((await target.inspect('linked')).Id, sha256(config));
  await assertCheckClean(target);
});

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<void> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isBerthError(err, code), `expected ${code}, got ${String((err as Error)?.stack ?? err)}`);
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

describeHostile();

function describeHostile(): void {
  const goodLayer = buildTar([{ name: 'ok', body: 'ok\n' }]);
  const image = async (layers: string[], extra: EntryInput[], diffIds?: string[]) => {
    const layer = await goodLayer;
    const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds ?? layers.map(() => sha256(layer)) } });
    return buildTar([
      { name: 'layer/layer.tar', body: layer },
      { name: 'config.json', body: config },
      ...extra,
      { name: 'manifest.json', body: JSON.stringify([{ Config: 'config.json', RepoTags: ['hostile:latest'], Layers: layers }]) },
    ]);
  };

  const cases: Array<[string, () => Promise<Buffer>, ErrorCode, RegExp]> = [
    ['manifest.json pointing at ../../etc/passwd', () => image(['../../etc/passwd'], []), 'EINVAL', /archive is missing layer "\.\.\/\.\.\/etc\/passwd"/],
    ['manifest.json pointing at an absolute path', () => image([`${canary}/passwd`], []), 'EINVAL', /archive is missing layer/],
    ['a missing layer', () => image(['layer/layer.tar', 'gone/layer.tar'], []), 'EINVAL', /archive is missing layer "gone\/layer.tar"/],
    ['a layer symlinked to the outside', () => image(['evil/layer.tar'], [{ name: 'evil/layer.tar', type: 'symlink', linkname: `../../../..${canary}/passwd` }]), 'EINVAL', /archive is missing layer "evil\/layer.tar"/],
    ['entries named ../ beside a missing manifest', async () => buildTar([{ name: '../../escape', body: 'x' }, { name: `${canary}/dropped`, body: 'x' }]), 'EINVAL', /neither manifest.json nor index.json/],
    ['a layer whose content does not match its diff_id', () => image(['layer/layer.tar'], [], [sha256('something else')]), 'EDIGEST', /diff_id mismatch: expected sha256:/],
    ['an invalid repository name', () => image(['layer/layer.tar'], []).then((tar) => Buffer.from(tar.toString('latin1').replace('hostile:latest', 'HOSTILE:Latest'), 'latin1')), 'EINVAL', /invalid image name "HOSTILE:Latest"/],
    ['a non-tar body', async () => Buffer.from('this is not a tar archive, just text that goes on for a while. '.repeat(20)), 'EINVAL', /invalid image archive/],
    ['a truncated archive', async () => (await image(['layer/layer.tar'], [])).subarray(0, 1500), 'EINVAL', /invalid image archive/],
    ['an OCI layout blob that does not match its name', async () => {
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
      const fakeDigest = sha256('not the config');
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: fakeDigest, size: config.length }, layers: [] }));
      return buildTar([
        { name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}' },
        { name: `blobs/sha256/${fakeDigest.slice(7)}`, body: config },
        { name: `blobs/sha256/${sha256(manifest).slice(7)}`, body: manifest },
        { name: 'index.json', body: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length }] }) },
      ]);
    }, 'EDIGEST', /config blob sha256:[0-9a-f]{64} in the archive hashes to/],
  ];

  for (const [name, build, code, message] of cases) {
    test(`hostile archive: ${name} -> ${code}`, async () => {
      const before = await snapshotOutside();
      const target = await makeService();
      await target.pull(fixtures.oci.reference, {});
      const imagesBefore = (await target.graph.listImages()).map((i) => i.id);
      const tagsBefore = target.graph.repositories.snapshot();
      await rejectsWith(target.load(Readable.from([await build()])), code, message);
      assert.equal((await target.graph.listImages()).map((i) => i.id), imagesBefore, 'no partial image');
      assert.equal(target.graph.repositories.snapshot(), tagsBefore, 'no tag');
      await assertCheckClean(target);
      assert.equal(await snapshotOutside(), before, 'nothing outside the data root changed');
      // The service still loads a good archive.
      assert.is((await target.load(createReadStream(archive('two.tar')))).length, 2);
    });
  }
}

test.run();
