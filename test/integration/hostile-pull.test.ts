// Pulls from a registry that lies: wrong bytes, lying configs, cut connections, huge
// manifests, layer bombs and tars that try to write outside the layer. Every failure
// must name its problem, write no image or tag, leave the graph consistent, touch
// nothing outside the data root, and leave the service able to pull the next image.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '../../src/minimal-graph';
import { RegistryClient } from '../../src/image/registry';
import { ImageService } from '../../src/image/service';
import { isBerthError, type ErrorCode } from '../../src/util/errors';
import { FakeRegistry, OCI_MANIFEST, sha256 } from '../helpers/fake-registry';
import { buildTar, type EntryInput } from '../helpers/tar';

const MAX_LAYER_SIZE = 1024 * 1024;

let fake: FakeRegistry;
let registry: RegistryClient;
let workDir: string;
let dataRoot: string;
let canary: string;
let canaryBefore: string[];
let service: ImageService;
let goodPulls = 0;

/** Everything under workDir except the data root: names, types, sizes, link counts, content hashes. */
async function snapshotOutside(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      if (path === dataRoot) continue;
      const st = await lstat(path);
      let detail = `${st.mode.toString(8)} nlink=${st.nlink} mtime=${st.mtimeMs}`;
      if (st.isFile()) detail += ` ${createHash('sha256').update(await readFile(path)).digest('hex')}`;
      if (st.isSymbolicLink()) detail += ` -> ${await readlink(path)}`;
      out.push(`${path} ${detail}`);
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk(workDir);
  return out;
}

async function graphState(): Promise<{ images: string[]; tags: unknown }> {
  return { images: (await service.graph.listImages()).map((i) => i.id), tags: service.graph.repositories.snapshot() };
}

/** A new image with its own content each time, so the pull really downloads and unpacks. */
async function pullGoodImage(): Promise<void> {
  goodPulls++;
  const layer = await buildTar([{ name: 'etc/good', body: `good image ${goodPulls}\n` }]);
  const image = fake.addImage('good', `v${goodPulls}`, { layers: [layer] });
  const result = await service.pull(image.reference, {});
  assert.is(result.id, image.configDigest);
  const record = (await service.graph.getImage(result.id))!;
  assert.is(await readFile(join(service.graph.layers.diffPath(record.layers[0]!.chainId), 'etc', 'good'), 'utf8'), `good image ${goodPulls}\n`);
}

async function assertAftermath(): Promise<void> {
  assert.equal(await service.graph.check(), [], 'graph.check() is clean');
  assert.equal(await snapshotOutside(), canaryBefore, 'nothing outside the data root changed');
  await pullGoodImage();
}

/** The pull fails with `code` and a message matching `message`, and leaves no image or tag behind. */
async function pullRejects(reference: string, code: ErrorCode, message: RegExp): Promise<void> {
  const before = await graphState();
  try {
    await service.pull(reference, {});
    assert.unreachable(`pull of ${reference} should fail with ${code}`);
  } catch (err) {
    assert.ok(isBerthError(err, code), `expected ${code}, got ${String((err as Error)?.stack ?? err)}`);
    assert.match((err as Error).message, message);
    if (process.env.BERTH_SHOW_ERRORS) console.log(`${code}: ${(err as Error).message}`);
  }
  assert.equal(await graphState(), before, 'no image record or tag was written');
  await assertAftermath();
}

async function layerImage(tag: string, entries: EntryInput[]): Promise<string> {
  return fake.addImage('hostile', tag, { layers: [await buildTar(entries)] }).reference;
}

test.before(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'berth-hostile-'));
  dataRoot = join(workDir, 'data');
  canary = join(workDir, 'canary');
  mkdirSync(join(canary, 'sub'), { recursive: true });
  writeFileSync(join(canary, 'secret'), 'do not touch\n');
  writeFileSync(join(canary, 'sub', 'file'), 'nested\n');
  canaryBefore = await snapshotOutside();
  fake = await FakeRegistry.start();
  registry = new RegistryClient({ userAgent: 'berth-test' });
  service = new ImageService({
    graph: await Graph.open(dataRoot), registry, whiteoutFormat: 'overlay', storageDriverName: 'overlay',
    maxLayerSize: MAX_LAYER_SIZE, platform: { os: 'linux', architecture: 'amd64' },
  });
});

test.after(async () => {
  registry?.close();
  await fake?.close();
  rmSync(workDir, { recursive: true, force: true });
});

test('a good image pulls from the fake registry', async () => {
  await pullGoodImage();
  assert.equal(await service.graph.check(), []);
});

test('a layer blob whose bytes do not match its digest is EDIGEST', async () => {
  const image = fake.addImage('hostile', 'bad-blob', { layers: [await buildTar([{ name: 'a', body: 'real' }])] });
  const layer = image.layerDescriptors[0]!;
  // Same length, other bytes: only the hash can tell.
  const forged = Buffer.alloc(layer.size, 0x41);
  fake.substituteBlob(layer.digest, forged);
  await pullRejects(image.reference, 'EDIGEST', new RegExp(`failed verification: expected ${layer.digest}`));
  assert.equal(await readdir(service.graph.content.ingestDir), [], 'the bad download is not kept for resuming');
});

test('a config blob whose bytes do not match its digest is EDIGEST', async () => {
  const image = fake.addImage('hostile', 'bad-config', { layers: [await buildTar([{ name: 'a', body: 'config lies' }])] });
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
  fake.substituteBlob(image.configDigest, Buffer.from(config));
  await pullRejects(image.reference, 'EDIGEST', new RegExp(image.configDigest));
});

test('a layer whose content does not match the config diff_id is EDIGEST', async () => {
  const real = await buildTar([{ name: 'a', body: 'one' }]);
  const claimed = sha256(await buildTar([{ name: 'a', body: 'two' }]));
  const image = fake.addImage('hostile', 'bad-diffid', { layers: [real], diffIds: [claimed] });
  await pullRejects(image.reference, 'EDIGEST', new RegExp(`diff_id mismatch: expected ${claimed}, got ${sha256(real)}`));
  assert.equal(await readdir(service.graph.layers.tmpDir), [], 'the half-applied layer was removed');
});

test('a config listing fewer diff_ids than layers is EINVAL', async () => {
  const image = fake.addImage('hostile', 'few-diffids', { layers: [await buildTar([{ name: 'a', body: 'x' }])], diffIds: [] });
  await pullRejects(image.reference, 'EINVAL', /lists 0 diff_ids for 1 layers/);
});

test('a blob cut off mid-transfer fails the pull; the retry resumes with Range and completes', async () => {
  const layer = await buildTar([{ name: 'big.bin', body: randomBytes(300_000) }]);
  const image = fake.addImage('hostile', 'truncated', { layers: [layer] });
  const blob = image.layerDescriptors[0]!;
  fake.faultBlob(blob.digest, { truncateAt: 100_000, times: 1 });
  await pullRejects(image.reference, 'EREGISTRY', new RegExp(`${fake.host}`));
  const partial = await lstat(service.graph.content.ingestPath(blob.digest));
  assert.ok(partial.size > 0 && partial.size < blob.size, 'the partial download was kept');

  const result = await service.pull(image.reference, {});
  assert.is(result.id, image.configDigest);
  const ranges = fake.requests.filter((r) => r.path.endsWith(blob.digest)).map((r) => r.range);
  assert.equal(ranges, [undefined, `bytes=${partial.size}-`]);
  const record = (await service.graph.getImage(result.id))!;
  assert.is((await lstat(join(service.graph.layers.diffPath(record.layers[0]!.chainId), 'big.bin'))).size, 300_000);
  assert.equal(await service.graph.check(), []);
});

test('a manifest over 4 MiB is ETOOLARGE', async () => {
  const huge = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, padding: 'x'.repeat(4 * 1024 * 1024 + 10) }));
  fake.addManifest('hostile', 'huge', huge, OCI_MANIFEST);
  await pullRejects(`${fake.host}/hostile:huge`, 'ETOOLARGE', /manifest .* over the 4194304-byte limit|exceeds the 4194304-byte limit/);
});

test('an unknown manifest media type is EUNSUPPORTED', async () => {
  fake.addManifest('hostile', 'alien', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.alien+json' })), 'application/vnd.example.alien+json');
  await pullRejects(`${fake.host}/hostile:alien`, 'EUNSUPPORTED', /unsupported manifest media type application\/vnd\.example\.alien\+json/);
});

test('a layer that expands past maxLayerSize is ETOOLARGE', async () => {
  const bomb = fake.addImage('hostile', 'bomb', { layers: [await buildTar([{ name: 'zeros', body: Buffer.alloc(5 * 1000 * 1000) }])] });
  assert.ok(bomb.layerDescriptors[0]!.size < 50_000, 'the compressed layer is small');
  await pullRejects(bomb.reference, 'ETOOLARGE', new RegExp(`larger than the limit of ${MAX_LAYER_SIZE} bytes`));
});

test('a ../ path in a layer is EUNSAFE', async () => {
  await pullRejects(await layerImage('dotdot', [{ name: 'ok.txt', body: 'fine' }, { name: '../../canary/pwned', body: 'escaped' }]), 'EUNSAFE', /"\.\.\/\.\.\/canary\/pwned" escapes the layer root/);
  await pullRejects(await layerImage('dotdot-deep', [{ name: 'a/b/../../../pwned', body: 'escaped' }]), 'EUNSAFE', /escapes the layer root/);
});

test('absolute paths land inside the layer', async () => {
  const reference = await layerImage('absolute', [{ name: `${canary}/secret`, body: 'overwritten?' }, { name: '/etc/abs.txt', body: 'inside' }]);
  const result = await service.pull(reference, {});
  const diff = service.graph.layers.diffPath((await service.graph.getImage(result.id))!.layers[0]!.chainId);
  assert.is(await readFile(join(diff, canary, 'secret'), 'utf8'), 'overwritten?');
  assert.is(await readFile(join(diff, 'etc', 'abs.txt'), 'utf8'), 'inside');
  await assertAftermath();
});

test('a symlink to the outside followed by a file written through it lands inside', async () => {
  const reference = await layerImage('symlink', [
    { name: 'escape', type: 'symlink', linkname: canary },
    { name: 'escape/secret', body: 'through absolute link' },
    { name: 'up', type: 'symlink', linkname: '../../../../../../../../..' },
    { name: `up${canary}/sub/file`, body: 'through relative link' },
  ]);
  const result = await service.pull(reference, {});
  const diff = service.graph.layers.diffPath((await service.graph.getImage(result.id))!.layers[0]!.chainId);
  assert.is(await readlink(join(diff, 'escape')), canary, 'the link itself is kept as written');
  assert.is(await readFile(join(diff, canary, 'secret'), 'utf8'), 'through absolute link');
  assert.is(await readFile(join(diff, canary, 'sub', 'file'), 'utf8'), 'through relative link');
  await assertAftermath();
});

test('hardlinks to outside paths are refused', async () => {
  await pullRejects(await layerImage('hardlink-dotdot', [{ name: 'hl', type: 'link', linkname: '../../canary/secret' }]), 'EUNSAFE', /outside the layer root/);
  // An absolute or symlinked target resolves inside the layer, where it does not exist.
  await pullRejects(await layerImage('hardlink-abs', [{ name: 'hl', type: 'link', linkname: `${canary}/secret` }]), 'EINVAL', /hardlink "hl" points at .*secret.*which does not exist/);
  await pullRejects(await layerImage('hardlink-symlink', [
    { name: 'escape', type: 'symlink', linkname: canary },
    { name: 'hl', type: 'link', linkname: 'escape/secret' },
  ]), 'EINVAL', /which does not exist/);
});

test('whiteouts pointing outside are refused or stay inside', async () => {
  await pullRejects(await layerImage('whiteout-dotdot', [{ name: '../canary/.wh.secret', body: '' }]), 'EUNSAFE', /escapes the layer root/);
  await pullRejects(await layerImage('whiteout-dots', [{ name: 'dir/.wh..', body: '' }]), 'EUNSAFE', /does not name a file/);
  const reference = await layerImage('whiteout-symlink', [
    { name: 'escape', type: 'symlink', linkname: canary },
    { name: 'escape/.wh.secret', body: '' },
    { name: 'escape/sub/.wh..wh..opq', body: '' },
  ]);
  const result = await service.pull(reference, {});
  const layer = (await service.graph.layers.get((await service.graph.getImage(result.id))!.layers[0]!.chainId))!;
  assert.equal(layer.whiteouts, [`${canary.slice(1)}/secret`]);
  assert.equal(layer.opaques, [`${canary.slice(1)}/sub`]);
  assert.ok((await lstat(join(service.graph.layers.diffPath(layer.chainId), canary, 'secret'))).isCharacterDevice());
  await assertAftermath();
});

test('after all of it the graph is consistent and only good images are recorded', async () => {
  assert.equal(await service.graph.check(), []);
  const tags = (await service.list()).flatMap((i) => i.RepoTags as string[]);
  assert.ok(tags.every((t) => /\/(good|hostile):(v\d+|truncated|absolute|symlink|whiteout-symlink)$/.test(t)), tags.join(', '));
});

test.run();
