// The image service end to end against Debian's docker-registry: pulls of every fixture
// kind, auth, Docker's progress stream, and the listing/untag/delete/prune rules users
// see through `docker images`, `docker rmi` and `docker image prune`.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { lstat, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Graph } from '../../src/minimal-graph';
import { RegistryClient } from '../../src/image/registry';
import { ImageService } from '../../src/image/service';
import { humanSize, type ProgressMessage } from '../../src/image/progress';
import { isBerthError, type BerthError } from '../../src/util/errors';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { pushFixtures, type FixtureSet } from '../helpers/fixture-images';
import { FakeRegistry } from '../helpers/fake-registry';
import { buildTar } from '../helpers/tar';

const AMD64 = { os: 'linux', architecture: 'amd64' };

let plain: RunningRegistry;
let basic: RunningRegistry;
let token: RunningRegistry;
let fixtures: FixtureSet;
let registry: RegistryClient;
let workDir: string;
let service: ImageService;
let graph: Graph;

async function rejectsWith(promise: Promise<unknown>, code: BerthError['code'], message?: RegExp): Promise<BerthError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isBerthError(err, code), `expected ${code}, got ${String((err as Error)?.stack ?? err)}`);
    if (message) assert.match((err as Error).message, message);
    return err as BerthError;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

async function makeService(name: string, whiteoutFormat: 'overlay' | 'none' = 'overlay'): Promise<ImageService> {
  const g = await Graph.open(join(workDir, name));
  return new ImageService({ graph: g, registry, whiteoutFormat, storageDriverName: 'overlay', platform: AMD64, maxLayerSize: 64 * 1024 * 1024 });
}

/** The statuses in order, with runs of the same per-layer status (Downloading 3x) folded into one. */
function statusSequence(messages: ProgressMessage[]): string[] {
  const out: string[] = [];
  for (const m of messages) {
    const status = m.status ?? '';
    if (out[out.length - 1] !== status) out.push(status);
  }
  return out;
}

async function filesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(() => true, () => false);
}

async function assertCheckClean(g: Graph): Promise<void> {
  const problems = await g.check();
  assert.equal(problems, [], `graph.check() found: ${JSON.stringify(problems)}`);
}

test.before(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'berth-image-service-'));
  try {
    plain = await startRegistry();
    basic = await startRegistry({ auth: 'basic', storageDir: plain.storageDir });
    token = await startRegistry({ auth: 'token', storageDir: plain.storageDir });
    fixtures = await pushFixtures(plain.host);
  } catch (err) {
    await Promise.allSettled([plain?.stop(), basic?.stop(), token?.stop()]);
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  }
  registry = new RegistryClient({ userAgent: 'berth-test' });
  service = await makeService('main');
  graph = service.graph;
});

test.after(async () => {
  registry?.close();
  await Promise.allSettled([token?.stop(), basic?.stop(), plain?.stop()]);
  rmSync(workDir, { recursive: true, force: true });
});

test('pulling an OCI image reports Docker\'s progress sequence and records the image', async () => {
  const messages: ProgressMessage[] = [];
  const result = await service.pull(fixtures.oci.reference, {}, (m) => messages.push(m));
  assert.ok(result.downloaded);
  assert.is(result.reference, fixtures.oci.reference);

  const layerIds = new Set(messages.filter((m) => m.status === 'Pulling fs layer').map((m) => m.id));
  assert.is(layerIds.size, 1);
  assert.equal(messages[0], { status: 'Pulling from busybox', id: 'oci' });
  const sequence = statusSequence(messages).filter((s) => s !== 'Verifying Checksum');
  assert.equal(sequence, [
    'Pulling from busybox', 'Pulling fs layer', 'Downloading', 'Download complete', 'Extracting', 'Pull complete',
    `Digest: ${fixtures.oci.digest}`, `Status: Downloaded newer image for ${fixtures.oci.reference}`,
  ]);
  const downloading = messages.filter((m) => m.status === 'Downloading');
  assert.ok(downloading.every((m) => (m.progressDetail?.total ?? 0) > 0 && (m.progressDetail?.current ?? -1) >= 0), 'Downloading carries progressDetail');
  assert.match(downloading[0]!.progress ?? '', /^\[[=> ]{50}\] \d+(\.\d+)?[kM]?B\/\d+(\.\d+)?[kM]?B$/);
  const last = downloading[downloading.length - 1]!;
  assert.is(last.progressDetail!.current, last.progressDetail!.total, 'the last Downloading shows the whole blob');
  assert.equal([humanSize(100_000), humanSize(2_800_000), humanSize(4_261_234), humanSize(999)], ['100kB', '2.8MB', '4.261MB', '999B']);
  assert.ok(messages.filter((m) => m.id && m.id !== 'oci').every((m) => /^[0-9a-f]{12}$/.test(m.id!)), 'layer ids are 12-hex short ids');

  const inspect = await service.inspect(fixtures.oci.reference);
  assert.is(inspect.Id, result.id);
  assert.is(inspect.Architecture, 'amd64');
  assert.is(inspect.Os, 'linux');
  const config = JSON.parse((await graph.content.readBlob(result.id)).toString('utf8'));
  assert.equal(inspect.RootFS, { Type: 'layers', Layers: config.rootfs.diff_ids });
  assert.equal(inspect.RepoTags, [fixtures.oci.reference]);
  assert.equal(inspect.RepoDigests, [`${plain.host}/busybox@${fixtures.oci.digest}`]);
  assert.equal(inspect.Config.Cmd, ['/bin/sh']);
  // The layer really is unpacked: busybox and its applet links are in the diff.
  const record = (await graph.getImage(result.id))!;
  const diff = graph.layers.diffPath(record.layers[0]!.chainId);
  assert.ok((await lstat(join(diff, 'bin', 'busybox'))).isFile());
  assert.ok((await lstat(join(diff, 'bin', 'sh'))).isSymbolicLink());
});

test('a second pull says Already exists per layer and Image is up to date', async () => {
  const messages: ProgressMessage[] = [];
  const result = await service.pull(fixtures.oci.reference, {}, (m) => messages.push(m));
  assert.not.ok(result.downloaded);
  assert.equal(statusSequence(messages), [
    'Pulling from busybox', 'Already exists', `Digest: ${fixtures.oci.digest}`, `Status: Image is up to date for ${fixtures.oci.reference}`,
  ]);
  // By digest too: Docker says "up to date" when the image is already here.
  const byDigest: ProgressMessage[] = [];
  await service.pull(`${plain.host}/busybox@${fixtures.oci.digest}`, {}, (m) => byDigest.push(m));
  assert.is(byDigest[byDigest.length - 1]!.status, `Status: Image is up to date for ${plain.host}/busybox@${fixtures.oci.digest}`);
});

test('Docker schema 2 and zstd variants of one config are one image with three tags', async () => {
  // skopeo converted the manifest only: same config, so the same image under a second tag.
  const v2s2 = await service.pull(fixtures.v2s2.reference, {});
  const ociId = (await service.inspect(fixtures.oci.reference)).Id;
  assert.is(v2s2.id, ociId);
  assert.ok((await service.inspect(v2s2.id)).RepoDigests.includes(`${plain.host}/busybox@${fixtures.v2s2.digest}`));

  const messages: ProgressMessage[] = [];
  const zstd = await service.pull(fixtures.zstd.reference, {}, (m) => messages.push(m));
  assert.is(zstd.id, ociId);
  assert.equal((await service.inspect(ociId)).RepoTags, [fixtures.oci.reference, fixtures.v2s2.reference, fixtures.zstd.reference]);
  assert.ok(messages.some((m) => m.status === 'Already exists'));
  assert.is(messages[messages.length - 1]!.status, `Status: Downloaded newer image for ${fixtures.zstd.reference}`);

  // In a fresh graph the zstd layer itself is fetched and unpacked.
  const fresh = await makeService('zstd');
  const first = await fresh.pull(fixtures.zstd.reference, {});
  const record = (await fresh.graph.getImage(first.id))!;
  assert.is(record.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  assert.ok((await lstat(join(fresh.graph.layers.diffPath(record.layers[0]!.chainId), 'bin', 'busybox'))).isFile());
  await assertCheckClean(fresh.graph);
  await assertCheckClean(graph);
});

test('an image sharing an unpacked layer through a different blob downloads nothing and still saves', async () => {
  const fake = await FakeRegistry.start();
  try {
    const fresh = await makeService('shared-layer');
    const layer = await buildTar([{ name: 'hello.txt', body: 'hello\n' }]);
    const gzipped = fake.addImage('app', 'gzip', { layers: [layer] });
    const plainTar = fake.addImage('app', 'plain', { layers: [layer], uncompressed: true, labels: { flavour: 'plain' } });
    assert.is.not(gzipped.configDigest, plainTar.configDigest);
    await fresh.pull(gzipped.reference, {});
    const messages: ProgressMessage[] = [];
    const second = await fresh.pull(plainTar.reference, {}, (m) => messages.push(m));
    assert.ok(messages.some((m) => m.status === 'Already exists'));
    assert.not.ok(fake.requests.some((r) => r.path.endsWith(plainTar.layerDescriptors[0]!.digest)), 'the shared layer was not downloaded again');
    // The layer rebuilds its tar from tar-split, so no blob is needed: the record names
    // the image's own layer blob (as its manifest does), stored or not.
    const record = (await fresh.graph.getImage(second.id))!;
    assert.is(record.layers[0]!.blobDigest, plainTar.layerDescriptors[0]!.digest);
    assert.ok(await fresh.graph.layers.canRebuildTar(record.layers[0]!.chainId));
    await assertCheckClean(fresh.graph);
    // The second image stays whole and saveable after the first is gone.
    await fresh.remove(gzipped.reference);
    await assertCheckClean(fresh.graph);
    const chunks: Buffer[] = [];
    await fresh.save([plainTar.reference], new Writable({ write(chunk, _enc, cb) { chunks.push(chunk); cb(); } }));
    assert.ok(Buffer.concat(chunks).includes(layer), 'the saved archive holds the exact layer tar');
  } finally {
    await fake.close();
  }
});

test('concurrent pulls of one image share downloads and both succeed', async () => {
  const fresh = await makeService('concurrent');
  const [a, b] = await Promise.all([fresh.pull(fixtures.layers.reference, {}), fresh.pull(fixtures.layers.reference, {})]);
  assert.is(a.id, b.id);
  assert.equal((await fresh.list()).map((i) => i.RepoTags), [[fixtures.layers.reference]]);
  await assertCheckClean(fresh.graph);
});

test('an index pulls amd64 by default, and the image a --platform asks for', async () => {
  const platformFile = async (id: string) => {
    const record = (await graph.getImage(id))!;
    const top = record.layers[record.layers.length - 1]!;
    return (await readFile(join(graph.layers.diffPath(top.chainId), 'etc', 'platform'), 'utf8')).trim();
  };
  const amd64 = await service.pull(fixtures.multi.reference, {});
  assert.is(await platformFile(amd64.id), 'linux/amd64');
  assert.is((await service.inspect(amd64.id)).Architecture, 'amd64');

  const armv7 = await service.pull(fixtures.multi.reference, { platform: 'linux/arm/v7' });
  assert.is(await platformFile(armv7.id), 'linux/arm/v7');
  const armInspect = await service.inspect(armv7.id);
  assert.is(armInspect.Architecture, 'arm');
  assert.is(armInspect.Variant, 'v7');

  const mipsle = await service.pull(fixtures.multi.reference, { platform: 'linux/mipsle' });
  assert.is(await platformFile(mipsle.id), 'linux/mipsle');
  assert.is((await service.inspect(fixtures.multi.reference)).Id, mipsle.id, 'the tag follows the last pull');
  assert.is((await graph.getImage(mipsle.id))!.manifestDigest, fixtures.multi.digest);
  await rejectsWith(service.pull(fixtures.multi.reference, { platform: 'linux/s390x' }), 'EUNSUPPORTED', /no matching manifest for linux\/s390x/);
});

test('three layers: whiteout and opaque dir are recorded, overlay markers written', async () => {
  const result = await service.pull(fixtures.layers.reference, {});
  const record = (await graph.getImage(result.id))!;
  assert.is(record.layers.length, 3);
  const [base, whiteout, opaque] = await Promise.all(record.layers.map((l) => graph.layers.get(l.chainId)));
  assert.equal(base!.whiteouts, []);
  assert.equal(whiteout!.whiteouts, ['data/file.txt']);
  assert.equal(opaque!.opaques, ['data/dir']);
  assert.is(whiteout!.parent, record.layers[0]!.chainId);
  const marker = await lstat(join(graph.layers.diffPath(record.layers[1]!.chainId), 'data', 'file.txt'));
  assert.ok(marker.isCharacterDevice(), 'overlay whiteout is a character device');
  assert.is(marker.rdev, 0);
  assert.equal(await filesUnder(join(graph.layers.diffPath(record.layers[2]!.chainId), 'data', 'dir')), ['new.txt']);
  assert.equal((await service.inspect(result.id)).RootFS.Layers, record.layers.map((l) => l.diffId));

  // With whiteoutFormat 'none' (copy driver) the same facts live only in the record.
  const plainService = await makeService('none', 'none');
  const other = await plainService.pull(fixtures.layers.reference, {});
  assert.is(other.id, result.id);
  const otherRecord = (await plainService.graph.getImage(other.id))!;
  const otherLayer = (await plainService.graph.layers.get(otherRecord.layers[1]!.chainId))!;
  assert.equal(otherLayer.whiteouts, ['data/file.txt']);
  assert.is(otherLayer.whiteoutFormat, 'none');
  assert.not.ok(await exists(join(plainService.graph.layers.diffPath(otherRecord.layers[1]!.chainId), 'data', 'file.txt')), 'no in-tree marker without overlay');
  await assertCheckClean(plainService.graph);
});

test('basic auth: credentials pull, a wrong password is EAUTH', async () => {
  const reference = `${basic.host}/busybox:oci`;
  await rejectsWith(service.pull(reference, { auth: { username: basic.username!, password: 'wrong' } }), 'EAUTH', /unauthorized/);
  await rejectsWith(service.pull(reference, {}), 'ENOIMAGE', /pull access denied/);
  const result = await service.pull(reference, { auth: { username: basic.username!, password: basic.password! } });
  assert.is(result.id, (await service.inspect(fixtures.oci.reference)).Id);
  assert.ok((await service.inspect(reference)).RepoTags.includes(reference));
});

test('token auth: credentials pull, a wrong password is EAUTH', async () => {
  const reference = `${token.host}/busybox:v2s2`;
  await rejectsWith(service.pull(reference, { auth: { username: token.username!, password: 'wrong' } }), 'EAUTH');
  const result = await service.pull(reference, { auth: { username: token.username!, password: token.password! } });
  assert.is(result.id, (await service.inspect(fixtures.v2s2.reference)).Id);
});

test('list, inspect and history show what docker shows', async () => {
  const images = await service.list();
  const oci = images.find((i) => i.RepoTags.includes(fixtures.oci.reference));
  assert.ok(oci, 'busybox:oci is listed');
  assert.ok(oci.RepoTags.includes(`${basic.host}/busybox:oci`));
  assert.ok(oci.RepoDigests.includes(`${plain.host}/busybox@${fixtures.oci.digest}`));
  assert.ok(oci.Size > 500_000, 'size counts the unpacked busybox');
  assert.match(oci.Id, /^sha256:[0-9a-f]{64}$/);

  const filtered = await service.list({ reference: `${plain.host}/busybox` });
  assert.ok(filtered.length >= 3, 'a repository filter with a host:port name matches its tags');
  assert.ok(filtered.every((i) => i.RepoTags.some((t: string) => t.startsWith(`${plain.host}/busybox:`))));
  assert.is((await service.list({ reference: fixtures.oci.reference })).length, 1);

  const history = await service.history(fixtures.layers.reference);
  assert.is(history[0].Id, (await service.inspect(fixtures.layers.reference)).Id);
  assert.equal(history[0].Tags, [fixtures.layers.reference]);
  assert.ok(history.filter((h) => h.Size > 0).length >= 2);
  assert.ok(history.slice(1).every((h) => h.Id === '<missing>'));
  await rejectsWith(service.inspect('nosuchimage:latest'), 'ENOIMAGE', /No such image/);
});

test('tag then rmi of the new tag only untags', async () => {
  const id = (await service.inspect(fixtures.oci.reference)).Id;
  await service.tag(fixtures.oci.reference, 'myrepo/busybox', 'mine');
  assert.ok((await service.inspect(id)).RepoTags.includes('myrepo/busybox:mine'));
  const removed = await service.remove('myrepo/busybox:mine');
  assert.equal(removed, [{ Untagged: 'myrepo/busybox:mine' }]);
  assert.not.ok((await service.inspect(id)).RepoTags.includes('myrepo/busybox:mine'));
  assert.ok(await graph.getImage(id));
});

test('rmi by ID of an image tagged in two repositories needs force', async () => {
  const id = (await service.inspect(fixtures.oci.reference)).Id;
  await rejectsWith(service.remove(id), 'ECONFLICT', /referenced in multiple repositories/);
  await rejectsWith(service.remove(id.slice('sha256:'.length, 'sha256:'.length + 12)), 'ECONFLICT');
  assert.ok(await graph.getImage(id), 'refused delete left the image');
});

test('rmi of the last tag deletes the image; GC frees its blobs and unshared layers only', async () => {
  const layersId = (await service.inspect(fixtures.layers.reference)).Id;
  const record = (await graph.getImage(layersId))!;
  const ociRecord = (await graph.getImage((await service.inspect(fixtures.oci.reference)).Id))!;
  const sharedWithOthers = new Set(ociRecord.layers.map((l) => l.chainId));
  const blobs = [layersId, ...record.layers.map((l) => l.blobDigest), record.manifestDigest!];

  const removed = await service.remove(fixtures.layers.reference);
  assert.equal(removed[0], { Untagged: fixtures.layers.reference });
  assert.ok(removed.some((r) => 'Untagged' in r && r.Untagged === `${plain.host}/busybox@${fixtures.layers.digest}`));
  assert.equal(removed[removed.length - 1], { Deleted: layersId });
  assert.is(await graph.getImage(layersId), undefined);
  const blobFiles = new Set(await filesUnder(graph.content.blobsDir));
  for (const blob of blobs) assert.not.ok(blobFiles.has(blob.slice('sha256:'.length)), `blob ${blob} was freed`);
  const layerDirs = new Set(await filesUnder(graph.layers.layersDir));
  for (const layer of record.layers) {
    const present = layerDirs.has(layer.chainId.slice('sha256:'.length));
    assert.is(present, sharedWithOthers.has(layer.chainId), `layer ${layer.chainId} kept only if shared`);
  }
  await assertCheckClean(graph);
});

test('rmi --force by ID untags every repository and deletes', async () => {
  const id = (await service.inspect(fixtures.oci.reference)).Id;
  const baseLayer = (await graph.getImage(id))!.layers[0]!.chainId;
  const removed = await service.remove(id, { force: true });
  const untagged = removed.filter((r) => 'Untagged' in r).map((r) => (r as { Untagged: string }).Untagged);
  for (const ref of [fixtures.oci.reference, fixtures.zstd.reference, `${basic.host}/busybox:oci`, `${token.host}/busybox:v2s2`]) {
    assert.ok(untagged.includes(ref), `${ref} untagged`);
  }
  assert.equal(removed[removed.length - 1], { Deleted: id });
  await rejectsWith(service.inspect(fixtures.oci.reference), 'ENOIMAGE');
  await rejectsWith(service.inspect(id), 'ENOIMAGE');
  // The busybox layer lives on: the multi-platform images are built on it.
  assert.ok(await graph.layers.has(baseLayer));
  assert.ok((await lstat(join(graph.layers.diffPath(baseLayer), 'bin', 'busybox'))).isFile());
  await assertCheckClean(graph);
});

test('prune removes dangling images, prune --all the rest', async () => {
  const before = await service.list();
  const dangling = before.filter((i) => i.RepoTags.length === 0);
  assert.ok(dangling.length >= 2, 'the amd64 and arm/v7 images lost the multi tag');
  const pruned = await service.prune();
  const deleted = (pruned.ImagesDeleted ?? []).filter((r) => 'Deleted' in r).map((r) => (r as { Deleted: string }).Deleted).sort();
  assert.equal(deleted, dangling.map((i) => i.Id).sort());
  assert.ok(pruned.SpaceReclaimed > 0);
  assert.ok((await service.list()).every((i) => i.RepoTags.length > 0));
  assert.equal(await service.prune(), { ImagesDeleted: null, SpaceReclaimed: 0 });

  const all = await service.prune({ all: true });
  assert.ok((all.ImagesDeleted ?? []).length > 0);
  assert.equal(await service.list(), []);
  assert.equal(await filesUnder(graph.layers.layersDir), []);
  assert.equal(await filesUnder(graph.content.blobsDir), []);
  await assertCheckClean(graph);
});

test.run();
