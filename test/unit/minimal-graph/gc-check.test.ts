import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, chainIds, type ImageRecord } from '../../../src/minimal-graph';

const sha = (s: string | Buffer) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/** Stores a config blob and unpacked layers for `layerNames`, returns the record (not yet put). */
async function prepareImage(g: Graph, name: string, layerNames: string[], opts: { skipLayer?: number } = {}): Promise<ImageRecord> {
  const diffIds = layerNames.map((l) => sha(`diff ${l}`));
  const chains = chainIds(diffIds);
  const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', config: { Cmd: ['/bin/sh'], Env: [`NAME=${name}`] }, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const id = await g.content.writeBlob(config);
  const layers = [];
  for (let i = 0; i < layerNames.length; i++) {
    const blob = Buffer.from(`compressed ${layerNames[i]}`);
    const blobDigest = await g.content.writeBlob(blob);
    if (i !== opts.skipLayer && !(await g.layers.has(chains[i]!))) {
      const dir = await g.layers.beginCreate();
      writeFileSync(join(dir, layerNames[i]!), layerNames[i]!);
      await g.layers.commitCreate(dir, { chainId: chains[i]!, diffId: diffIds[i]!, parent: chains[i - 1], size: 1000, whiteouts: [], opaques: [], whiteoutFormat: 'none' });
    }
    layers.push({ blobDigest, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', blobSize: blob.length, diffId: diffIds[i]!, chainId: chains[i]! });
  }
  return { id, layers, platform: { os: 'linux', architecture: 'arm64' }, size: 1000 * layerNames.length, addedAt: new Date().toISOString() };
}

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'berth-graph-'));
  try { await fn(root); } finally { rmSync(root, { recursive: true, force: true }); }
}

test('gc after deleting one image keeps layers another image shares and frees the rest', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const keep = await prepareImage(g, 'keep', ['base', 'keep-top']);
  const drop = await prepareImage(g, 'drop', ['base', 'drop-top']);
  await g.putImage(keep); await g.putImage(drop);
  await g.setTag('docker.io/library/keep:latest', keep.id);
  await g.setTag('docker.io/library/drop:latest', drop.id);
  assert.equal(await g.gc(), { blobsRemoved: 0, layersRemoved: 0, ingestRemoved: 0, bytesFreed: 0 }, 'nothing to collect');

  const { gc } = await g.deleteImage(drop.id);
  assert.is(gc.layersRemoved, 1);
  assert.is(gc.blobsRemoved, 2, 'config and the unshared layer blob');
  assert.ok(gc.bytesFreed >= 1000);
  assert.ok(await g.layers.has(keep.layers[0]!.chainId), 'shared base layer kept');
  assert.ok(await g.layers.has(keep.layers[1]!.chainId));
  assert.not.ok(await g.layers.has(drop.layers[1]!.chainId), 'unshared layer freed');
  assert.not.ok(existsSync(g.layers.dirOf(drop.layers[1]!.chainId)));
  assert.ok(await g.content.has(keep.layers[0]!.blobDigest), 'shared layer blob kept');
  assert.not.ok(await g.content.has(drop.id));
  assert.not.ok(await g.content.has(drop.layers[1]!.blobDigest));
  assert.is(g.resolveRef('docker.io/library/keep:latest'), keep.id);
  assert.equal((await g.readConfig(keep.id)).os, 'linux');
  assert.equal(readdirSync(join(root, 'tmp')), []);
}));

test('gc keeps the index blob an image was pulled as', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const rec = await prepareImage(g, 'multi', ['base']);
  const manifest = await g.content.writeBlob(Buffer.from('{"manifests":[]}'));
  await g.putImage({ ...rec, manifestDigest: manifest, manifestMediaType: 'application/vnd.oci.image.index.v1+json' });
  const stray = await g.content.writeBlob(Buffer.from('stray'));
  const res = await g.gc();
  assert.is(res.blobsRemoved, 1);
  assert.ok(await g.content.has(manifest));
  assert.not.ok(await g.content.has(stray));
}));

test('a lease protects a pull in progress; holders protect a container\'s layers and their parents', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const lease = g.createLease();
  const pending = await prepareImage(g, 'pending', ['p1', 'p2']);
  lease.add(pending.id, ...pending.layers.flatMap((l) => [l.blobDigest, l.chainId]));
  const held = await prepareImage(g, 'held', ['h1', 'h2']);
  g.holdLayers('container-abc', [held.layers[1]!.chainId]);

  let res = await g.gc();
  assert.is(res.layersRemoved, 0);
  assert.is(res.blobsRemoved, 3, 'the held image has no record: its blobs go, its layers stay');
  assert.ok(await g.layers.has(held.layers[0]!.chainId), 'parent of a held layer kept');
  assert.ok(await g.content.has(pending.id));
  await g.putImage(pending);
  lease.release();
  g.releaseLayers('container-abc');
  res = await g.gc();
  assert.is(res.layersRemoved, 2);
  assert.ok(await g.layers.has(pending.layers[1]!.chainId));
}));

test('gc spares fresh or protected downloads and removes stale or redundant ones', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const fresh = sha('fresh'), stale = sha('stale'), kept = sha('kept');
  for (const d of [fresh, stale, kept]) writeFileSync(g.content.ingestPath(d), 'partial');
  const old = Date.now() / 1000 - 2 * 3600;
  utimesSync(g.content.ingestPath(stale), old, old);
  utimesSync(g.content.ingestPath(kept), old, old);
  const done = await g.content.writeBlob(Buffer.from('done'));
  const rec = await prepareImage(g, 'x', ['base']);
  await g.putImage({ ...rec, manifestDigest: done });
  writeFileSync(g.content.ingestPath(done), 'do');

  let res = await g.gc({ keepIngest: new Set([kept]) });
  assert.is(res.ingestRemoved, 2, 'stale and redundant');
  assert.equal(readdirSync(join(root, 'ingest')).sort(), [`${fresh.slice(7)}.partial`, `${kept.slice(7)}.partial`].sort());
  res = await g.gc({ olderThanMs: 0 });
  assert.equal(readdirSync(join(root, 'ingest')), []);
}));

test('a blob corrupted on disk is found by check() and removed by repair, with what depended on it', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const a = await prepareImage(g, 'a', ['base']);
  const b = await prepareImage(g, 'b', ['base', 'b-top']);
  await g.putImage(a); await g.putImage(b);
  await g.setTag('docker.io/library/a:latest', a.id);
  await g.setTag('docker.io/library/b:latest', b.id);
  assert.equal(await g.check(), []);

  // Flip bytes in a's config and in b's top layer blob.
  for (const d of [a.id, b.layers[1]!.blobDigest]) {
    const path = g.content.path(d);
    const bytes = readFileSync(path);
    bytes[0] = bytes[0]! ^ 0xff;
    writeFileSync(path, bytes);
  }
  const found = await g.check();
  const corrupt = found.filter((p) => p.kind === 'blob-digest').map((p) => p.path).sort();
  assert.equal(corrupt, [g.content.path(a.id), g.content.path(b.layers[1]!.blobDigest)].sort());
  assert.ok(await g.content.has(a.id), 'check without repair removes nothing');

  const repaired = await g.check({ repair: true });
  const kinds = repaired.map((p) => `${p.kind}:${p.repaired ?? false}`).sort();
  assert.equal(kinds, ['blob-digest:true', 'blob-digest:true', 'blob-missing:false', 'image-config-missing:true', 'tag-dangling:true']);
  assert.not.ok(await g.content.has(a.id));
  assert.is(await g.getImage(a.id), undefined, 'an image without its config is removed');
  assert.is(g.resolveRef('docker.io/library/a:latest'), undefined);
  assert.ok(await g.getImage(b.id), 'b still runs from its unpacked layers');
  assert.is(g.resolveRef('docker.io/library/b:latest'), b.id);
  assert.ok(await g.layers.has(a.layers[0]!.chainId), 'valid layers are never deleted by repair');

  const after = await g.check({ repair: true });
  assert.equal(after.map((p) => p.kind), ['blob-missing'], 'only the lost compressed blob remains to report');
}));

test('check finds an image whose layer vanished and a tag to a missing image', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const rec = await prepareImage(g, 'v', ['base', 'top']);
  await g.putImage(rec);
  await g.setTag('docker.io/library/v:1', rec.id);
  rmSync(g.layers.dirOf(rec.layers[1]!.chainId), { recursive: true });
  const repos = JSON.parse(readFileSync(join(root, 'repositories.json'), 'utf8'));
  repos.tags['docker.io/library/ghost:1'] = sha('ghost');
  writeFileSync(join(root, 'repositories.json'), JSON.stringify(repos));
  const g2 = await Graph.open(root);
  const found = (await g2.check()).map((p) => p.kind).sort();
  assert.equal(found, ['layer-missing', 'tag-dangling']);
  await g2.check({ repair: true });
  assert.equal(await g2.check(), []);
  assert.is(g2.resolveRef('docker.io/library/v:1'), undefined);
}));

test.run();
