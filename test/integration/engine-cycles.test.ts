// Leak check: many sequential create/start/rm cycles must leave no mounts under the data
// root, no cgroups under the test's parent, no helper processes, no container dirs and
// no bundles. Prints how long the cycles took.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerEngine } from '../../src/engine';
import { cgroupsLeft, helperProcesses, IMAGE, makeEngineEnv, mountsUnder, type EngineEnv } from '../helpers/engine-env';

const CYCLES = Number(process.env.BERTH_ENGINE_CYCLES || 200);

let env: EngineEnv;
let engine: ContainerEngine;

test.before(async () => {
  env = await makeEngineEnv('berth-cyc-');
  engine = await env.open();
});

test.after(async () => {
  await env?.cleanup();
});

const listDir = (dir: string) => { try { return readdirSync(dir); } catch { return []; } };

test(`${CYCLES} create/start/rm cycles leave nothing behind`, async () => {
  const started = Date.now();
  for (let i = 0; i < CYCLES; i++) {
    const { Id } = await engine.create({ Image: IMAGE, Cmd: ['true'] });
    const wait = engine.wait(Id, 'next-exit');
    await engine.start(Id);
    const result = await wait.result;
    assert.is(result.StatusCode, 0, `cycle ${i}`);
    await engine.remove(Id);
  }
  const seconds = (Date.now() - started) / 1000;
  console.log(`\n  ${CYCLES} cycles in ${seconds.toFixed(1)} s (${((seconds * 1000) / CYCLES).toFixed(0)} ms each)`);
  assert.equal(mountsUnder(env.dataRoot), []);
  assert.equal(cgroupsLeft(env.cgroupParent), []);
  assert.equal(helperProcesses(env.execRoot), []);
  assert.equal(listDir(join(env.dataRoot, 'containers')), []);
  assert.equal(listDir(join(env.execRoot, 'c')), []);
  assert.equal(listDir(join(env.dataRoot, 'volumes')), []);
  // The overlay driver keeps shared dirs ('l' for layer links, 'empty'); no per-container ones.
  assert.equal(listDir(join(env.dataRoot, 'storage', env.storage.name)).filter((n) => /^[0-9a-f]{64}$/.test(n)), []);
  assert.is(engine.counts().total, 0);
});

test.run();
