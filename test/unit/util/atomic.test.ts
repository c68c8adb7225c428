import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic, readJsonIfExists } from '../../../src/util/atomic';

test('atomic write replaces content and leaves no temp file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-atomic-'));
  try {
    const target = join(dir, 'state.json');
    writeFileSync(target, 'old');
    await writeJsonAtomic(target, { a: 1 });
    assert.equal(JSON.parse(readFileSync(target, 'utf8')), { a: 1 });
    assert.equal(readdirSync(dir), ['state.json']);
    assert.equal(await readJsonIfExists(join(dir, 'missing.json')), undefined);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('a failed write leaves the old content and no temp file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-atomic-'));
  try {
    const target = join(dir, 'sub', 'x');
    await assert.not.throws(async () => {});
    let failed = false;
    try { await writeFileAtomic(target, 'data'); } catch { failed = true; }
    assert.ok(failed, 'writing into a missing directory must fail');
    assert.equal(readdirSync(dir), []);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
