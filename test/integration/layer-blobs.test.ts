// Layer blobs after a pull or load: like Docker, berth keeps the unpacked layer plus a
// small tar-split record and drops the compressed blob, unless told to keep it. What a
// user notices: the data root shrinks, yet `save | load` round-trips to the same image,
// `system check` stays clean and still catches a changed file, and a second pull of a
// present image downloads nothing.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { Graph } from '../../src/minimal-graph';
import { RegistryClient } from '../../src/image/registry';
import { ImageService } from '../../src/image/service';
import type { ProgressMessage } from '../../src/image/progress';
import { loadDaemonConfig } from '../../src/daemon/config';
import { isBerthError } from '../../src/util/errors';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { pushFixtures, type FixtureSet } from '../helpers/fixture-images';
import { FakeRegistry } from '../helpers/fake-registry';
import { buildTar } from '../helpers/tar';

const AMD64 = { os: 'linux', architecture: 'amd64' };
const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

let plain: RunningRegistry;
let fixtures: FixtureSet;
let registry: RegistryClient;
let workDir: string;
/** A larger image (a host directory of many files, PAX tar as Docker writes) in the same registry. */
let bigRef: string;
let serviceCount = 0;

async function makeService(opts: { keepLayerBlobs?: boolean } = {}): Promise<ImageService> {
  const graph = await Graph.open(join(workDir, `root-${++serviceCount}`), opts);
  return new ImageService({ graph, registry, whiteoutFormat: 'overlay', storageDriverName: 'overlay', platform: AMD64, maxLayerSize: 256 * 1024 * 1024 });
}

/** Bytes the data root takes on disk (allocated blocks, as `du` counts). */
async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const seen = new Set<string>();
  const walk = async (path: string): Promise<void> => {
    const st = await lstat(path);
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) { seen.add(key); total += st.blocks * 512; }
    if (st.isDirectory()) for (const name of await readdir(path)) await walk(join(path, name));
  };
  await walk(dir);
  return total;
}

async function firstRegularFile(dir: string): Promise<string | undefined> {
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const st = await lstat(path);
    if (st.isFile() && st.size > 0) return path;
    if (st.isDirectory()) { const found = await firstRegularFile(path); if (found) return found; }
  }
  return undefined;
}

/** Pushes a one-layer OCI image over the distribution API (monolithic uploads). */
async function pushImage(host: string, repo: string, tag: string, layerTar: Buffer): Promise<string> {
  const layer = gzipSync(layerTar);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] }, history: [{ created_by: 'test: host files' }] }));
  const upload = async (blob: Buffer) => {
    const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.is(start.status, 202);
    const location = new URL(start.headers.get('location')!, `http://${host}`);
    location.searchParams.set('digest', sha256(blob));
    const put = await fetch(location, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } });
    assert.is(put.status, 201, await put.text());
  };
  await upload(layer);
  await upload(config);
  const manifest = JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  });
  const put = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  assert.is(put.status, 201, await put.text());
  return `${host}/${repo}:${tag}`;
}

test.before(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'berth-layer-blobs-'));
  try {
    plain = await startRegistry();
    fixtures = await pushFixtures(plain.host);
    // Docker writes layers as PAX tars; a real tree of many small files.
    const big = execFileSync('tar', ['--format=posix', '--sort=name', '-C', '/usr/share', '-cf', '-', 'perl'], { maxBuffer: 512 << 20 });
    bigRef = await pushImage(plain.host, 'bigger', 'perl', big);
  } catch (err) {
    await plain?.stop();
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  }
  registry = new RegistryClient({ userAgent: 'berth-test' });
});

test.after(async () => {
  registry?.close();
  await plain?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

test('a pull keeps the unpacked layer and a verified tar-split, not the compressed blob; a second pull downloads nothing', async () => {
  const service = await makeService();
  const { graph } = service;
  const pulled = await service.pull(fixtures.layers.reference, {});
  // The pull returns first; verification and the blob drop follow in the background.
  await graph.layerBlobsSettled();
  const image = (await graph.getImage(pulled.id))!;
  assert.is(image.layers.length, 3);
  for (const layer of image.layers) {
    assert.not.ok(await graph.content.has(layer.blobDigest), `blob ${layer.blobDigest} removed`);
    assert.ok(await graph.layers.has(layer.chainId), 'layer kept');
    assert.ok(existsSync(graph.layers.tarSplitPath(layer.chainId)), 'tar-split kept');
    assert.ok((await graph.layers.get(layer.chainId))!.tarSplit, 'tar-split verified');
  }
  assert.ok(await graph.content.has(pulled.id), 'config kept');
  assert.equal(await graph.check(), [], 'check is clean');

  const listed = (await service.list()).find((i) => i.Id === pulled.id)!;
  const inspect = await service.inspect(fixtures.layers.reference);
  assert.ok(listed.Size > 0 && listed.Size === inspect.Size, 'SIZE from the unpacked layers');
  assert.is(inspect.RootFS.Layers.length, 3);
  const history = await service.history(fixtures.layers.reference);
  assert.ok(history.some((row) => row.Size > 0), 'history sizes still known');

  const messages: ProgressMessage[] = [];
  const again = await service.pull(fixtures.layers.reference, {}, (m) => messages.push(m));
  assert.is(again.downloaded, false, 'image is up to date');
  assert.not.ok(messages.some((m) => m.status === 'Downloading' || m.status === 'Pulling fs layer'), JSON.stringify(messages));
  assert.is(messages.filter((m) => m.status === 'Already exists').length, 3);
  assert.equal(await readdir(graph.content.ingestDir), [], 'nothing fetched into ingest/');

  // Another tag of the same layers (the v2s2 manifest of the oci image) reuses the layer too.
  await service.pull(fixtures.oci.reference, {});
  const v2 = await service.pull(fixtures.v2s2.reference, {}, (m) => messages.push(m));
  assert.is(v2.id, (await graph.getImage(v2.id))!.id);
  assert.equal(await graph.check(), []);
});

test('save | load into a second data root round-trips (same ID, same layer tars); the loaded blobs go too', async () => {
  const source = await makeService();
  await source.pull(fixtures.layers.reference, {});
  await source.pull(fixtures.oci.reference, {});
  const file = join(workDir, 'roundtrip.tar');
  await source.save([fixtures.layers.reference, fixtures.oci.reference], createWriteStream(file));
  const target = await makeService();
  const loaded = await target.load(createReadStream(file));
  await target.graph.layerBlobsSettled();
  assert.equal(loaded, [fixtures.layers.reference, fixtures.oci.reference]);
  for (const ref of loaded) {
    const before = await source.inspect(ref);
    const after = await target.inspect(ref);
    assert.is(after.Id, before.Id, `${ref} keeps its ID`);
    assert.equal(after.RootFS, before.RootFS);
    const image = (await target.graph.getImage(after.Id))!;
    for (const layer of image.layers) assert.not.ok(await target.graph.content.has(layer.blobDigest), 'loaded layer blob removed too');
  }
  assert.equal(await target.graph.check(), []);
  // The second root saves byte-identical layer tars: the diff_ids check inside save, and
  // skopeo (below in save-load tests) reads them; here the whole archives must match.
  const again = join(workDir, 'roundtrip-2.tar');
  await target.save([fixtures.layers.reference, fixtures.oci.reference], createWriteStream(again));
  assert.is(sha256(execFileSync('cat', [again], { maxBuffer: 256 << 20 })), sha256(execFileSync('cat', [file], { maxBuffer: 256 << 20 })), 'identical archives');
});

test('system check names a layer whose file was changed on disk, and save refuses it', async () => {
  const service = await makeService();
  const pulled = await service.pull(fixtures.oci.reference, {});
  await service.graph.layerBlobsSettled();
  const layer = (await service.graph.getImage(pulled.id))!.layers[0]!;
  const diff = service.graph.layers.diffPath(layer.chainId);
  const victim = await firstRegularFile(diff);
  assert.ok(victim, 'the layer has a regular file');
  writeFileSync(victim!, 'tampered\n');
  const problems = await service.graph.check();
  assert.is(problems.length, 1, JSON.stringify(problems));
  assert.is(problems[0]!.kind, 'layer-corrupt');
  assert.match(problems[0]!.detail, layer.chainId);
  const err = await service.save([fixtures.oci.reference], createWriteStream(join(workDir, 'tampered.tar'))).then(() => undefined, (e: unknown) => e);
  assert.ok(isBerthError(err, 'ECORRUPT'), String(err));
});

test('a layer whose tar cannot be rebuilt from its files (a path written twice) keeps its blob, and still saves', async () => {
  const fake = await FakeRegistry.start();
  try {
    const layer = await buildTar([{ name: 'etc/motd', body: 'first\n' }, { name: 'etc/motd', body: 'the later entry wins\n' }]);
    const image = fake.addImage('dup', 'latest', { layers: [layer] });
    const service = await makeService();
    const pulled = await service.pull(image.reference, {});
    await service.graph.layerBlobsSettled();
    const record = (await service.graph.getImage(pulled.id))!.layers[0]!;
    assert.ok(await service.graph.content.has(record.blobDigest), 'blob kept');
    assert.not.ok(existsSync(service.graph.layers.tarSplitPath(record.chainId)), 'unusable tar-split dropped');
    assert.equal(await service.graph.check(), []);
    const chunks: Buffer[] = [];
    await service.save([image.reference], new Writable({ write(chunk, _enc, cb) { chunks.push(chunk); cb(); } }));
    assert.ok(Buffer.concat(chunks).includes(layer), 'saved from the blob: the exact layer tar');
  } finally {
    await fake.close();
  }
});

test('keep-layer-blobs keeps the compressed blobs (and is a daemon flag, daemon.json key and UCI option)', async () => {
  const service = await makeService({ keepLayerBlobs: true });
  const pulled = await service.pull(fixtures.layers.reference, {});
  await service.graph.layerBlobsSettled();
  for (const layer of (await service.graph.getImage(pulled.id))!.layers) {
    assert.ok(await service.graph.content.has(layer.blobDigest), 'blob kept');
  }
  assert.equal(await service.graph.gc(), { blobsRemoved: 0, layersRemoved: 0, ingestRemoved: 0, bytesFreed: 0 });
  assert.equal(await service.graph.check(), []);

  const files: Record<string, string> = {
    '/etc/daemon.json': JSON.stringify({ 'keep-layer-blobs': true }),
    '/etc/config/berth': "config daemon 'daemon'\n\toption keep_layer_blobs '1'\n",
    '/etc/config/berth-off': "config daemon 'daemon'\n\toption keep_layer_blobs '0'\n",
  };
  const read = (p: string) => { if (files[p] === undefined) throw new Error(`ENOENT ${p}`); return files[p]!; };
  const keep = (argv: string[]) => { const c = loadDaemonConfig(argv, read); return c.kind === 'run' && c.config.keepLayerBlobs; };
  assert.is(keep(['--uci', '/etc/config/berth-off']), false, 'default: blobs go');
  assert.is(keep(['--uci', '/etc/config/berth-off', '--keep-layer-blobs']), true);
  assert.is(keep(['--uci', '/etc/config/berth-off', '--config', '/etc/daemon.json']), true);
  assert.is(keep(['--uci', '/etc/config/berth']), true);
});

test('data root size before/after for the busybox fixture and a bigger image', async () => {
  for (const [name, ref] of [['busybox', fixtures.oci.reference], ['bigger (/usr/share/perl)', bigRef]] as const) {
    const kept = await makeService({ keepLayerBlobs: true });
    const dropped = await makeService();
    await kept.pull(ref, {});
    await dropped.pull(ref, {});
    await Promise.all([kept.graph.layerBlobsSettled(), dropped.graph.layerBlobsSettled()]);
    const before = await diskUsage(kept.graph.root);
    const after = await diskUsage(dropped.graph.root);
    const tarSplit = (await dropped.graph.listImages())[0]!.layers.map((l) => dropped.graph.layers.tarSplitPath(l.chainId));
    let tarSplitBytes = 0;
    for (const path of tarSplit) tarSplitBytes += (await lstat(path)).size;
    console.log(`data root for ${name}: ${before} bytes with blobs, ${after} bytes without (${(100 * (before - after) / after).toFixed(1)}% more with blobs; tar-split ${tarSplitBytes} bytes)`);
    assert.ok(after < before, 'smaller without blobs');
    assert.equal(await dropped.graph.check(), []);
    // The bigger image also round-trips through save and load.
    if (ref === bigRef) {
      const file = join(workDir, 'big.tar');
      await dropped.save([ref], createWriteStream(file));
      const target = await makeService();
      await target.load(createReadStream(file));
      assert.is((await target.inspect(ref)).Id, (await dropped.inspect(ref)).Id);
    }
  }
});

test.run();
