import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '../../../src/minimal-graph';
import { isBerthError } from '../../../src/util/errors';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function withGraph(fn: (g: Graph, root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'berth-graph-'));
  try { await fn(await Graph.open(root), root); } finally { rmSync(root, { recursive: true, force: true }); }
}

test('open creates the layout', () => withGraph(async (_g, root) => {
  assert.equal(readdirSync(root).sort(), ['blobs', 'images', 'ingest', 'layers', 'tmp']);
  assert.equal(readdirSync(join(root, 'blobs')), ['sha256']);
}));

test('writeBlob stores verified bytes once and reads them back', () => withGraph(async (g, root) => {
  const data = Buffer.from('{"hello":"world"}');
  const d = await g.content.writeBlob(data, sha(data));
  assert.is(d, sha(data));
  assert.is(await g.content.writeBlob(data), d, 'second write is a no-op');
  assert.ok(await g.content.has(d));
  assert.is(await g.content.size(d), data.length);
  assert.equal(await g.content.readBlob(d), data);
  assert.equal(await g.content.list(), [d]);
  assert.equal(readdirSync(join(root, 'blobs', 'sha256')), [d.slice(7)]);
  assert.is(await g.content.size(sha('absent')), undefined);
}));

test('writeBlob rejects bytes that do not match and leaves nothing behind', () => withGraph(async (g, root) => {
  const expected = sha('what the manifest promised');
  try {
    await g.content.writeBlob(Buffer.from('what the registry sent'), expected);
    assert.unreachable('accepted mismatching bytes');
  } catch (err) {
    assert.ok(isBerthError(err, 'EDIGEST'), String(err));
    assert.match((err as Error).message, expected);
    assert.match((err as Error).message, sha('what the registry sent'));
  }
  assert.equal(readdirSync(join(root, 'blobs', 'sha256')), []);
}));

test('commitIngest of a tampered download: EDIGEST, nothing in blobs/ or ingest/', () => withGraph(async (g, root) => {
  const expected = sha('layer bytes');
  writeFileSync(g.content.ingestPath(expected), 'layer bytez');
  assert.is(await g.content.ingestSize(expected), 11);
  try {
    await g.content.commitIngest(expected);
    assert.unreachable('accepted mismatching download');
  } catch (err) {
    assert.ok(isBerthError(err, 'EDIGEST'), String(err));
  }
  assert.equal(readdirSync(join(root, 'blobs', 'sha256')), []);
  assert.equal(readdirSync(join(root, 'ingest')), []);
  assert.is(await g.content.ingestSize(expected), 0);
}));

test('commitIngest moves a good download into blobs/; a size mismatch is refused', () => withGraph(async (g, root) => {
  const body = Buffer.alloc(300_000, 7);
  const d = sha(body);
  writeFileSync(g.content.ingestPath(d), body.subarray(0, 1000));
  assert.is(await g.content.ingestSize(d), 1000, 'resumable size');
  writeFileSync(g.content.ingestPath(d), body);
  await g.content.commitIngest(d, { expectedSize: body.length });
  assert.ok(await g.content.has(d));
  assert.equal(readFileSync(g.content.path(d)), body);
  assert.equal(readdirSync(join(root, 'ingest')), []);

  const other = Buffer.from('short');
  writeFileSync(g.content.ingestPath(sha(other)), other);
  try { await g.content.commitIngest(sha(other), { verified: true, expectedSize: 99 }); assert.unreachable(); }
  catch (err) { assert.ok(isBerthError(err, 'EDIGEST')); }
  assert.not.ok(await g.content.has(sha(other)));
}));

test('two commits of the same download at once both succeed', () => withGraph(async (g) => {
  const body = Buffer.alloc(200_000, 3);
  const d = sha(body);
  writeFileSync(g.content.ingestPath(d), body);
  await Promise.all([g.content.commitIngest(d), g.content.commitIngest(d), g.content.writeBlob(body, d)]);
  assert.equal(await g.content.readBlob(d), body);
  assert.equal(await g.content.list(), [d]);
}));

test('missing blobs and bad digests give coded errors', () => withGraph(async (g) => {
  try { await g.content.readBlob(sha('nothing')); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'ENOTFOUND')); }
  try { g.content.path('sha256:../../x'); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'EINVAL')); }
  try { await g.content.commitIngest(sha('never downloaded')); assert.unreachable(); } catch (err) { assert.ok(isBerthError(err, 'ENOTFOUND')); }
}));

test.run();
