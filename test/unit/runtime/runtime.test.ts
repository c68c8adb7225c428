// The runtime's file handling without a helper: paths, list, exit files, liveness.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime } from '../../../src/runtime';
import { isBerthError } from '../../../src/util/errors';

let dir = '';
test.before.each(() => { dir = mkdtempSync(join(tmpdir(), 'berth-rtu-')); });
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

const ID = 'abcdef0123456789'.repeat(4);
const rt = () => createRuntime({ execRoot: join(dir, 'run'), helperPath: '/nonexistent/berth-helper', cgroupNamespace: false, lastCap: 40 });

test('bundle dirs are short; an exec root too long for sockets is refused', () => {
  assert.is(rt().bundleDir(ID), join(dir, 'run', 'c', 'abcdef012345'));
  try {
    createRuntime({ execRoot: '/' + 'x'.repeat(80), cgroupNamespace: false, lastCap: 40 });
    assert.unreachable();
  } catch (err) {
    assert.ok(isBerthError(err, 'EINVAL'));
    assert.match((err as Error).message, /too long/);
  }
  assert.throws(() => rt().bundleDir('../etc'), /invalid container id/);
});

test('list() gives full ids from the bundle id file', async () => {
  const r = rt();
  assert.equal(await r.list(), []);
  mkdirSync(r.bundleDir(ID), { recursive: true });
  writeFileSync(join(r.bundleDir(ID), 'id'), ID + '\n');
  mkdirSync(r.bundleDir('short'), { recursive: true });
  assert.equal(await r.list(), [ID, 'short']);
});

test('a missing helper binary is a clear error', async () => {
  const r = rt();
  try {
    await r.create(ID, { rootfs: '/', args: ['x'], env: [], namespaces: ['mnt'], mounts: [], masked: [], readonly: [], caps: [], noNewPrivs: true, tty: false, stdin: false, cgroupProcs: [], init: false, waitStart: false });
    assert.unreachable();
  } catch (err) {
    assert.ok(isBerthError(err, 'EINTERNAL'));
    assert.match((err as Error).message, /berth-helper not found/);
  }
});

test('waitExit resolves when the exit file is renamed into place', async () => {
  const r = rt();
  const bundle = r.bundleDir(ID);
  mkdirSync(bundle, { recursive: true });
  // Our own pid in helper.pid: alive, but not a berth-helper, so not mistaken for one.
  writeFileSync(join(bundle, 'helper.pid'), `${process.pid}\n`);
  assert.not.ok(await r.helperAlive(ID));
  const waiting = r.waitExit(ID);
  setTimeout(() => {
    writeFileSync(join(bundle, '.exit.tmp'), 'code 2\nsignal 0\nfinished T\n');
    renameSync(join(bundle, '.exit.tmp'), join(bundle, 'exit'));
  }, 30);
  const started = Date.now();
  const exit = await waiting;
  assert.equal(exit, { code: 2, signal: 0, finished: 'T' });
  assert.ok(Date.now() - started < 900, 'fs.watch, not the poll');
});

test('waitExit: a dead helper without an exit file yields 255; abort and missing bundles reject', async () => {
  const r = rt();
  mkdirSync(r.bundleDir(ID), { recursive: true });
  const exit = await r.waitExit(ID);
  assert.is(exit.code, 255);
  assert.match(exit.error!, /without writing an exit status/);

  const ac = new AbortController();
  mkdirSync(r.bundleDir('other'), { recursive: true });
  writeFileSync(join(r.bundleDir('other'), 'helper.pid'), `${process.pid}\n`);
  const p = r.waitExit('other', ac.signal).catch((e) => e);
  ac.abort(new Error('stop'));
  assert.is(String(await p), 'Error: stop');
  try {
    await r.waitExit('missing');
    assert.unreachable();
  } catch (err) {
    assert.ok(isBerthError(err, 'ENOCONTAINER'));
  }
});

test('remove() of a bundle without a helper deletes it', async () => {
  const r = rt();
  mkdirSync(join(r.bundleDir(ID), 'e'), { recursive: true });
  writeFileSync(join(r.bundleDir(ID), 'helper.pid'), '999999999\n');
  await r.remove(ID);
  assert.equal(await r.list(), []);
});

test.run();
