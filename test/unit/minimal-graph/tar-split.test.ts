// The graph's side of tar-split: a layer's record says when its tar can be rebuilt, and
// only then does gc's rule let the compressed layer blob go; check rebuilds such layers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, TarSplitWriter, chainIds, type ImageRecord } from '../../../src/minimal-graph';

const sha = (s: string | Buffer) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'berth-graph-ts-'));
  try { await fn(root); } finally { rmSync(root, { recursive: true, force: true }); }
}

/**
 * One image with one layer holding file `a`, a tar-split that rebuilds "HEAD" + content +
 * "TAIL", and a stored blob. `diffContent` is what the diff_id was taken over.
 */
async function layeredImage(g: Graph, name: string, opts: { diffContent?: string; verify?: boolean } = {}): Promise<ImageRecord> {
  const content = `content of ${name}`;
  const diffId = sha(`HEAD${opts.diffContent ?? content}TAIL`);
  const [chainId] = chainIds([diffId]);
  const id = await g.content.writeBlob(Buffer.from(JSON.stringify({ os: 'linux', architecture: 'arm64', rootfs: { type: 'layers', diff_ids: [diffId] }, name })));
  const blob = Buffer.from(`compressed ${name}`);
  const blobDigest = await g.content.writeBlob(blob);
  if (!(await g.layers.has(chainId!))) {
    const dir = await g.layers.beginCreate();
    writeFileSync(join(dir, 'a'), content);
    const writer = new TarSplitWriter();
    writer.raw(Buffer.from('HEAD'));
    writer.file('a', Buffer.byteLength(content));
    writer.raw(Buffer.from('TAIL'));
    const { record } = await writer.finish();
    await g.layers.commitCreate(dir, { chainId: chainId!, diffId, size: content.length, whiteouts: [], opaques: [], whiteoutFormat: 'none' }, { tarSplit: record });
    if (opts.verify !== false) await g.layers.verifyTarSplit(chainId!);
  }
  const record: ImageRecord = {
    id, layers: [{ blobDigest, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', blobSize: blob.length, diffId, chainId: chainId! }],
    platform: { os: 'linux', architecture: 'arm64' }, size: content.length, addedAt: new Date().toISOString(),
  };
  await g.putImage(record);
  return record;
}

async function rebuilt(g: Graph, chainId: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of g.layers.reassemble(chainId)) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

test('a verified tar-split is recorded in layer.json; gc then drops the layer blob, keeps config and layer; check is clean', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const img = await layeredImage(g, 'one');
  const layer = img.layers[0]!;
  const record = await g.layers.get(layer.chainId);
  assert.equal(record?.tarSplit, { tarSize: 'HEADcontent of oneTAIL'.length });
  assert.ok(await g.layers.canRebuildTar(layer.chainId));
  assert.ok(await g.content.has(layer.blobDigest), 'nothing removed before gc runs');

  const gc = await g.gc();
  assert.is(gc.blobsRemoved, 1);
  assert.not.ok(await g.content.has(layer.blobDigest), 'layer blob gone');
  assert.ok(await g.content.has(img.id), 'config kept');
  assert.ok(await g.layers.has(layer.chainId), 'layer kept');
  assert.is(await rebuilt(g, layer.chainId), 'HEADcontent of oneTAIL');
  assert.equal(await g.check(), [], 'a record naming a dropped layer blob is not a problem');
}));

test('keepLayerBlobs, a lease, or an unverified tar-split keep the blob', () => withRoot(async (root) => {
  const kept = await Graph.open(join(root, 'kept'), { keepLayerBlobs: true });
  const a = await layeredImage(kept, 'a');
  assert.is((await kept.gc()).blobsRemoved, 0);
  assert.is((await kept.dropLayerBlobs([a.layers[0]!.blobDigest])).blobsRemoved, 0);
  assert.ok(await kept.content.has(a.layers[0]!.blobDigest), 'keep-layer-blobs keeps it');

  const g = await Graph.open(join(root, 'default'));
  const b = await layeredImage(g, 'b');
  const lease = g.createLease([b.layers[0]!.blobDigest]);
  assert.is((await g.dropLayerBlobs([b.layers[0]!.blobDigest])).blobsRemoved, 0, 'leased (a pull in flight)');
  lease.release();
  assert.is((await g.dropLayerBlobs([b.layers[0]!.blobDigest])).blobsRemoved, 1, 'released: dropped');

  // A power cut between commit and verification: tar-split on disk, layer.json silent.
  const c = await layeredImage(g, 'c', { verify: false });
  assert.ok(existsSync(g.layers.tarSplitPath(c.layers[0]!.chainId)));
  assert.not.ok(await g.layers.canRebuildTar(c.layers[0]!.chainId));
  await g.gc();
  assert.ok(await g.content.has(c.layers[0]!.blobDigest), 'an unverified tar-split does not replace the blob');
}));

test('the same blob named by an image whose layer cannot rebuild its tar stays', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const img = await layeredImage(g, 'shared');
  // A second image: same blob digest, another chain (another parent), layer without tar-split.
  const diffId = img.layers[0]!.diffId;
  const chains = chainIds([sha('base'), diffId]);
  for (const [i, chainId] of chains.entries()) {
    const dir = await g.layers.beginCreate();
    await g.layers.commitCreate(dir, { chainId: chainId!, diffId: i === 0 ? sha('base') : diffId, ...(i ? { parent: chains[0] } : {}), size: 0, whiteouts: [], opaques: [], whiteoutFormat: 'none' });
  }
  const baseBlob = await g.content.writeBlob(Buffer.from('base blob'));
  const id = await g.content.writeBlob(Buffer.from('{"other":true}'));
  await g.putImage({
    id, platform: { os: 'linux', architecture: 'arm64' }, size: 0, addedAt: new Date().toISOString(),
    layers: [
      { blobDigest: baseBlob, mediaType: 'x', blobSize: 9, diffId: sha('base'), chainId: chains[0]! },
      { ...img.layers[0]!, chainId: chains[1]! },
    ],
  });
  await g.gc();
  assert.ok(await g.content.has(img.layers[0]!.blobDigest), 'still the only source of the second image\'s layer tar');
}));

test('verification that fails drops the tar-split and keeps the blob', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const img = await layeredImage(g, 'bad', { diffContent: 'something else' });
  const chainId = img.layers[0]!.chainId;
  assert.not.ok((await g.layers.get(chainId))?.tarSplit);
  assert.not.ok(existsSync(g.layers.tarSplitPath(chainId)), 'tar-split removed');
  await g.gc();
  assert.ok(await g.content.has(img.layers[0]!.blobDigest), 'blob kept');
  assert.equal(await g.check(), []);
}));

test('check rebuilds tar-split layers and names one whose files were changed', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const img = await layeredImage(g, 'victim');
  await g.gc();
  const chainId = img.layers[0]!.chainId;
  writeFileSync(join(g.layers.diffPath(chainId), 'a'), 'content of XXXXXX');
  const problems = await g.check();
  assert.is(problems.length, 1, JSON.stringify(problems));
  assert.is(problems[0]!.kind, 'layer-corrupt');
  assert.match(problems[0]!.detail, chainId);
  assert.is(problems[0]!.repaired, undefined, 'never repaired: the files may still run containers');
  assert.equal(await g.check({ verifyBlobs: false }), [], 'the start-up check does not hash layers');
  rmSync(join(g.layers.diffPath(chainId), 'a'));
  assert.match((await g.check())[0]!.detail, /cannot be read/);
}));

test.run();
