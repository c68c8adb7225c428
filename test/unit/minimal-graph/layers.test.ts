import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, type LayerRecord } from '../../../src/minimal-graph';
import { isBerthError } from '../../../src/util/errors';

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

function layerRecord(name: string): LayerRecord {
  const diffId = sha(name);
  return { chainId: diffId, diffId, size: 5, whiteouts: [], opaques: [], whiteoutFormat: 'none' };
}

async function extract(g: Graph, content: string): Promise<string> {
  const dir = await g.layers.beginCreate();
  mkdirSync(join(dir, 'etc'));
  writeFileSync(join(dir, 'etc', 'motd'), content);
  return dir;
}

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'berth-graph-'));
  try { await fn(root); } finally { rmSync(root, { recursive: true, force: true }); }
}

test('a committed layer is complete, readable and listed; the temp dir is gone', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const rec = layerRecord('base');
  const dir = await extract(g, 'hello');
  assert.not.ok(await g.layers.has(rec.chainId));
  await g.layers.commitCreate(dir, rec);
  assert.ok(await g.layers.has(rec.chainId));
  assert.equal(await g.layers.get(rec.chainId), rec);
  assert.is(readFileSync(join(g.layers.diffPath(rec.chainId), 'etc', 'motd'), 'utf8'), 'hello');
  assert.equal(await g.layers.list(), [rec.chainId]);
  assert.equal(readdirSync(join(root, 'tmp')), []);
}));

test('two extractions of the same layer at once: one wins, nothing is left over', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const rec = layerRecord('same');
  const [a, b] = [await extract(g, 'first'), await extract(g, 'second')];
  await Promise.all([g.layers.commitCreate(a, rec), g.layers.commitCreate(b, rec)]);
  assert.ok(['first', 'second'].includes(readFileSync(join(g.layers.diffPath(rec.chainId), 'etc', 'motd'), 'utf8')));
  assert.equal(readdirSync(join(root, 'tmp')), []);
  assert.equal(readdirSync(g.layers.dirOf(rec.chainId)).sort(), ['diff', 'layer.json']);
}));

test('abortCreate and commitCreate refuse paths outside tmp/', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const outside = join(root, 'images');
  for (const call of [() => g.layers.abortCreate(outside), () => g.layers.commitCreate(outside, layerRecord('x')), () => g.layers.abortCreate(join(root, 'tmp', '..'))]) {
    try { await call(); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'EINVAL'), String(err)); }
  }
  assert.ok(existsSync(outside));
}));

test('removing a layer deletes layer.json first and leaves nothing', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const rec = layerRecord('gone');
  await g.layers.commitCreate(await extract(g, 'x'), rec);
  assert.ok(await g.layers.remove(rec.chainId));
  assert.not.ok(await g.layers.has(rec.chainId));
  assert.equal(readdirSync(join(root, 'layers')), []);
  assert.equal(readdirSync(join(root, 'tmp')), []);
}));

/** What a power cut in the middle of a pull leaves on disk. */
function simulateCrash(root: string, ageSeconds = 0): { halfLayer: string; tempFile: string; scratch: string } {
  const halfLayer = join(root, 'layers', sha('half').slice(7));
  mkdirSync(join(halfLayer, 'diff', 'bin'), { recursive: true });
  writeFileSync(join(halfLayer, 'diff', 'bin', 'sh'), 'partial');
  const tempFile = join(root, 'images', `.tmp-${sha('img').slice(7)}.json.abc123`);
  writeFileSync(tempFile, '{"id":');
  const scratch = join(root, 'tmp', 'layer-XYZ');
  mkdirSync(join(scratch, 'usr'), { recursive: true });
  if (ageSeconds) {
    const t = Date.now() / 1000 - ageSeconds;
    utimesSync(tempFile, t, t);
  }
  return { halfLayer, tempFile, scratch };
}

test('open() cleans what a crash left behind, and keeps complete layers', () => withRoot(async (root) => {
  const first = await Graph.open(root);
  const keep = layerRecord('complete');
  await first.layers.commitCreate(await extract(first, 'kept'), keep);
  const { halfLayer, tempFile, scratch } = simulateCrash(root);
  writeFileSync(join(first.layers.dirOf(keep.chainId), '.tmp-layer.json.dead'), '{');

  const g = await Graph.open(root);
  assert.not.ok(existsSync(halfLayer), 'incomplete layer removed');
  assert.not.ok(existsSync(tempFile), 'temp file removed');
  assert.not.ok(existsSync(scratch), 'tmp/ emptied');
  assert.ok(await g.layers.has(keep.chainId), 'complete layer kept');
  assert.equal(readdirSync(g.layers.dirOf(keep.chainId)).sort(), ['diff', 'layer.json']);
  const kinds = g.startupRepairs.map((p) => p.kind).sort();
  assert.equal(kinds, ['layer-incomplete', 'temp-leftover', 'temp-leftover', 'temp-leftover']);
  assert.ok(g.startupRepairs.every((p) => p.repaired));
  assert.equal(await g.check(), [], 'clean after open');
}));

test('check() reports crash debris and repair removes it (but not a running extraction)', () => withRoot(async (root) => {
  const g = await Graph.open(root);
  const running = await g.layers.beginCreate();
  const { halfLayer, tempFile, scratch } = simulateCrash(root, 3600);

  const found = await g.check();
  const byPath = new Map(found.map((p) => [p.path, p]));
  assert.is(byPath.get(halfLayer)?.kind, 'layer-incomplete');
  assert.is(byPath.get(tempFile)?.kind, 'temp-leftover');
  assert.is(byPath.get(scratch)?.kind, 'temp-leftover');
  assert.not.ok(byPath.has(running), 'an extraction in progress is not debris');
  assert.ok(found.every((p) => !p.repaired));
  assert.ok(existsSync(halfLayer), 'check without repair changes nothing');

  const repaired = await g.check({ repair: true });
  assert.is(repaired.length, 3);
  assert.ok(repaired.every((p) => p.repaired));
  assert.not.ok(existsSync(halfLayer) || existsSync(tempFile) || existsSync(scratch));
  assert.ok(existsSync(running));
  assert.equal(await g.check(), []);
  await g.layers.abortCreate(running);
  assert.equal(readdirSync(join(root, 'tmp')), []);
}));

test.run();
