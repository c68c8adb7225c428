import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, chainIds, type Digest, type ImageRecord } from '../../../src/minimal-graph';
import { isBerthError } from '../../../src/util/errors';

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

test('putImage records a complete image; getImage, listImages and readConfig return it', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const rec = await prepareImage(g, 'alpine', ['base', 'app']);
  await g.putImage(rec);
  assert.equal(await g.getImage(rec.id), rec);
  assert.equal((await g.listImages()).map((i) => i.id), [rec.id]);
  const config = await g.readConfig(rec.id);
  assert.equal(config.config.Env, ['NAME=alpine']);
  config.config.Env.push('MUTATED=1');
  assert.equal((await g.readConfig(rec.id)).config.Env, ['NAME=alpine'], 'cached config is not shared with callers');
  assert.ok(existsSync(join(root, 'images', `${rec.id.slice(7)}.json`)));
  const reopened = await Graph.open(root);
  assert.equal(await reopened.getImage(rec.id), rec, 'survives reopen');
}));

test('putImage refuses an image whose layer or config is missing, and writes nothing', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const rec = await prepareImage(g, 'broken', ['base', 'never-extracted'], { skipLayer: 1 });
  try { await g.putImage(rec); assert.unreachable('accepted a partial image'); }
  catch (err) { assert.ok(isBerthError(err, 'ECORRUPT'), String(err)); assert.match((err as Error).message, rec.layers[1]!.chainId); }
  assert.equal(readdirSync(join(root, 'images')), []);
  assert.is(await g.getImage(rec.id), undefined);

  const noConfig = { ...(await prepareImage(g, 'x', ['base'])), id: sha('config that was never stored') };
  try { await g.putImage(noConfig); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'ECORRUPT')); }

  const wrongChain = await prepareImage(g, 'y', ['base', 'top']);
  wrongChain.layers[1] = { ...wrongChain.layers[1]!, chainId: wrongChain.layers[1]!.diffId };
  try { await g.putImage(wrongChain); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'EINVAL')); }
  assert.equal(readdirSync(join(root, 'images')), []);
}));

test('findImageById: full ID, bare hex, unique prefix; ambiguous prefix is an error', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const recs: ImageRecord[] = [];
  for (let i = 0; i < 40; i++) { const r = await prepareImage(g, `img${i}`, ['base']); await g.putImage(r); recs.push(r); }
  const first = recs[0]!;
  const hex = first.id.slice(7);
  assert.is((await g.findImageById(first.id))?.id, first.id);
  assert.is((await g.findImageById(hex))?.id, first.id);
  assert.is((await g.findImageById(hex.slice(0, 12)))?.id, first.id);
  assert.is((await g.findImageById(`sha256:${hex.slice(0, 12)}`))?.id, first.id);
  assert.is(await g.findImageById('busybox'), undefined);
  assert.is(await g.findImageById(sha('no such image')), undefined);
  // 40 images over 16 first hex digits: some first digit is shared.
  const counts = new Map<string, number>();
  for (const r of recs) counts.set(r.id[7]!, (counts.get(r.id[7]!) ?? 0) + 1);
  const shared = [...counts].find(([, n]) => n > 1)![0];
  try { await g.findImageById(shared); assert.unreachable(); }
  catch (err) { assert.ok(isBerthError(err, 'EINVAL')); assert.match((err as Error).message, 'multiple IDs found with provided prefix'); }
}));

test('tags and digest refs resolve, survive reopen, and refuse unknown images', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const rec = await prepareImage(g, 'busybox', ['base']);
  await g.putImage(rec);
  const tag = 'docker.io/library/busybox:latest';
  const byDigest = `docker.io/library/busybox@${sha('manifest')}`;
  await g.setTag(tag, rec.id);
  await g.setTag('docker.io/library/busybox:1.36', rec.id);
  await g.addDigestRef(byDigest, rec.id);
  try { await g.setTag('docker.io/library/ghost:latest', sha('ghost')); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'ENOIMAGE')); }

  const again = await Graph.open(root);
  assert.is(again.resolveRef(tag), rec.id);
  assert.is(again.resolveRef(byDigest), rec.id);
  assert.is(again.getTag(tag), rec.id);
  assert.is(again.resolveRef('docker.io/library/busybox'), undefined, 'no reference parsing here');
  assert.equal(again.tagsOf(rec.id), ['docker.io/library/busybox:1.36', tag]);
  assert.equal(again.digestRefsOf(rec.id), [byDigest]);
  assert.ok(await again.removeTag(tag));
  assert.not.ok(await again.removeTag(tag));
  assert.ok(await again.removeDigestRef(byDigest));
  assert.equal(JSON.parse(readFileSync(join(root, 'repositories.json'), 'utf8')), { tags: { 'docker.io/library/busybox:1.36': rec.id }, digests: {} });
  assert.is(again.resolveRef('__proto__'), undefined);
}));

test('50 concurrent setTag calls lose nothing', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const a = await prepareImage(g, 'a', ['base']);
  const b = await prepareImage(g, 'b', ['base']);
  await g.putImage(a); await g.putImage(b);
  const refs = Array.from({ length: 50 }, (_, i) => `registry.lan:5000/app/n${i}:v${i}`);
  await Promise.all(refs.map((ref, i) => g.setTag(ref, i % 2 ? a.id : b.id)));
  const onDisk = JSON.parse(readFileSync(join(root, 'repositories.json'), 'utf8'));
  assert.is(Object.keys(onDisk.tags).length, 50);
  const reopened = await Graph.open(root);
  refs.forEach((ref, i) => assert.is(reopened.getTag(ref), i % 2 ? a.id : b.id));
  assert.is(reopened.tagsOf(a.id).length, 25);
  assert.equal(readdirSync(root).filter((n) => n.startsWith('.tmp-')), []);
}));

test('a corrupt repositories.json does not stop open(); it is moved aside and reported', () => withRoot(async (root) => {
  await Graph.open(root);
  writeFileSync(join(root, 'repositories.json'), '{"tags": {"x": ');
  const g = await Graph.open(root);
  assert.is(g.getTag('x'), undefined);
  assert.ok(readdirSync(root).some((n) => n.startsWith('repositories.json.corrupt-')));
  const problems = await g.check();
  assert.ok(problems.some((p) => p.kind === 'record-unreadable' && p.path.includes('repositories.json.corrupt-')));
}));

test('deleteImage untags everywhere and drops the record', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const rec = await prepareImage(g, 'gone', ['base']);
  await g.putImage(rec);
  await g.setTag('docker.io/library/gone:1', rec.id);
  await g.addDigestRef(`docker.io/library/gone@${sha('m')}`, rec.id);
  g.holdLayers('container-1', rec.layers.map((l) => l.chainId));
  try { await g.deleteImage(rec.id); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'ECONFLICT')); }
  const res = await g.deleteImage(rec.id, { force: true });
  assert.equal(res.untagged.sort(), ['docker.io/library/gone:1', `docker.io/library/gone@${sha('m')}`].sort());
  assert.equal(res.deleted, [rec.id]);
  assert.is(await g.getImage(rec.id), undefined);
  assert.is(g.resolveRef('docker.io/library/gone:1'), undefined);
  assert.ok(await g.layers.has(rec.layers[0]!.chainId), 'layer held by a container survives');
  try { await g.deleteImage(rec.id); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'ENOIMAGE')); }
}));

test('layerRefCounts derives counts from images and holders', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const one = await prepareImage(g, 'one', ['base', 'one']);
  const two = await prepareImage(g, 'two', ['base', 'two']);
  await g.putImage(one); await g.putImage(two);
  const base: Digest = one.layers[0]!.chainId;
  g.setExternalHolds(new Map([['c1', one.layers.map((l) => l.chainId)]]));
  let counts = g.layerRefCounts();
  assert.is(counts.get(base), 3);
  assert.is(counts.get(one.layers[1]!.chainId), 2);
  assert.is(counts.get(two.layers[1]!.chainId), 1);
  g.releaseLayers('c1');
  counts = g.layerRefCounts();
  assert.is(counts.get(base), 2);
}));

test.run();
