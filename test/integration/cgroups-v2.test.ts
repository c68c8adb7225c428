// cgroup v2 on a real kernel. This host runs hybrid cgroups, so the file boots one microVM
// (cgroup v2 only, root) and runs itself there: first the v2 manager against the kernel's
// cgroupfs, then the engine end to end. Needs qemu-system-x86 (CI installs it) and the
// host's dist/ (npm run build); without qemu it prints a skip line and passes.
import { suite, test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCgroupManager, detectCgroups, nodeCgroupOps, type CgroupOps, type ContainerCgroup } from '../../src/cgroups';
import type { ContainerEngine } from '../../src/engine';
import type { CreateRequest } from '../../src/engine/types';
import { cgroupsLeft, IMAGE, logText, makeEngineEnv, type EngineEnv } from '../helpers/engine-env';
import { findQemu, inMicroVm, REPO_ROOT, runInMicroVm, uvuCommand } from '../helpers/microvm';

const MIB = 1024 * 1024;
const CGROUP_ROOT = '/sys/fs/cgroup';

if (inMicroVm()) {
  guestSuites();
} else if (!findQemu()) {
  test('cgroups v2 in a microVM (skipped: qemu-system-x86_64 not installed)', () => {
    console.log('skipped: cgroups v2 suite needs qemu-system-x86_64 (Debian package qemu-system-x86)');
  });
  test.run();
} else {
  test('cgroups v2: manager and engine on a cgroup-v2-only kernel (one microVM)', async () => {
    // The guest cannot build anything: it runs the host's build output.
    for (const file of ['dist/berth-helper', 'dist/default-image.tar']) {
      assert.ok(existsSync(join(REPO_ROOT, file)), `${file} is missing: run npm run build first`);
    }
    const result = await runInMicroVm({
      command: uvuCommand('test/integration', 'cgroups-v2\\.test\\.ts$'),
      timeoutMs: 150_000,
    });
    // The guest's own uvu report says what ran and names any failure.
    console.log(`  microVM: boot ${result.bootMs} ms, guest suites ${result.commandMs} ms\n${result.output.trimEnd()}`);
    assert.is(result.code, 0, 'guest suites failed (their output is above)');
  });
  test.run();
}

function guestSuites(): void {
  const read = (path: string): string => readFileSync(path, 'utf8').trim();
  const words = (path: string): string[] => read(path).split(/\s+/).filter(Boolean);
  const keyed = (path: string): Record<string, number> =>
    Object.fromEntries(read(path).split('\n').map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)]));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  async function until(check: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }

  function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
    return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Removes a test parent and anything left below it, killing leftovers first. */
  function removeTree(dir: string): void {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
    try { writeFileSync(join(dir, 'cgroup.kill'), '1'); } catch { /* best effort */ }
    for (let i = 0; i < 50; i++) {
      try { rmdirSync(dir); return; } catch { /* still draining */ }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }

  // --- the manager against the kernel -------------------------------------------------

  const mgr = suite('cgroups v2 manager');
  const base = `berth-v2-${process.pid}`;
  // Two levels: controllers must be enabled in every ancestor's subtree_control.
  const parent = `${base}/containers`;
  const parentDir = join(CGROUP_ROOT, parent);
  const writes: string[] = [];
  const ops: CgroupOps = {
    ...nodeCgroupOps,
    async writeFile(path, value) {
      writes.push(`${path.slice(CGROUP_ROOT.length + 1)} ${value}`);
      await nodeCgroupOps.writeFile(path, value);
    },
  };
  const manager = createCgroupManager(detectCgroups(), { parent, ops });
  const children: ChildProcess[] = [];

  mgr.after(() => {
    for (const c of children) c.kill('SIGKILL');
    removeTree(join(CGROUP_ROOT, base));
  });

  mgr('detectCgroups: unified, version 2, the controllers berth uses', () => {
    const setup = detectCgroups();
    assert.is(setup.mode, 'unified');
    assert.is(setup.version, 2);
    assert.is(setup.v2Mount, CGROUP_ROOT);
    for (const c of ['memory', 'pids', 'cpu', 'cpuset', 'io']) assert.ok(setup.v2Controllers.includes(c), `${c} in ${setup.v2Controllers.join(' ')}`);
    assert.equal(manager.supports(['memory', 'memorySwap', 'pidsLimit', 'nanoCpus', 'cpuShares', 'cpusetCpus', 'blkioWeight']).unsupported, []);
  });

  let group: ContainerCgroup;
  const dir = () => join(parentDir, 'c1');

  mgr('create: limits written and read back from the kernel', async () => {
    group = await manager.create('c1', {
      memory: 32 * MIB, memorySwap: 48 * MIB, pidsLimit: 10, nanoCpus: 0.5e9, cpuShares: 512,
      cpusetCpus: '0', cpusetMems: '0', blkioWeight: 500,
    });
    for (const level of [CGROUP_ROOT, join(CGROUP_ROOT, base), parentDir]) {
      const enabled = words(join(level, 'cgroup.subtree_control'));
      for (const c of ['memory', 'pids', 'cpu', 'cpuset', 'io']) assert.ok(enabled.includes(c), `${c} enabled in ${level}: ${enabled.join(' ')}`);
    }
    assert.is(read(join(dir(), 'memory.max')), String(32 * MIB));
    // Docker's --memory-swap is memory plus swap; v2's file holds the swap alone.
    assert.is(read(join(dir(), 'memory.swap.max')), String(16 * MIB));
    assert.is(read(join(dir(), 'pids.max')), '10');
    assert.is(read(join(dir(), 'cpu.max')), '50000 100000');
    assert.is(read(join(dir(), 'cpu.weight')), '20', 'shares 512 as runc maps them');
    assert.is(read(join(dir(), 'cpuset.cpus')), '0');
    assert.is(read(join(dir(), 'cpuset.mems')), '0');
    const bfq = join(dir(), 'io.bfq.weight');
    if (existsSync(bfq)) assert.match(read(bfq), /\b500$/);
    else assert.is(read(join(dir(), 'io.weight')), 'default 4950', 'blkio 500 as runc maps it');
  });

  mgr('create with only a memory limit gives as much swap as memory (Docker\'s default)', async () => {
    const g = await manager.create('c2', { memory: 32 * MIB });
    assert.is(read(join(parentDir, 'c2', 'memory.swap.max')), String(32 * MIB));
    await g.apply({ memorySwap: -1, memory: 32 * MIB });
    assert.is(read(join(parentDir, 'c2', 'memory.swap.max')), 'max');
    await g.remove();
    assert.not.ok(existsSync(join(parentDir, 'c2')));
  });

  let sleeper: ChildProcess;
  mgr('a real process moved in via procsFiles() shows in stats; the parent holds none', async () => {
    sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
    children.push(sleeper);
    const [procs] = group.procsFiles();
    await nodeCgroupOps.writeFile(procs!, String(sleeper.pid));
    assert.equal(await group.pids(), [sleeper.pid]);
    assert.match(read(`/proc/${sleeper.pid}/cgroup`), new RegExp(`^0::/${parent}/c1$`));
    assert.is(read(join(parentDir, 'cgroup.procs')), '', 'the parent must stay empty for subtree_control');
    const stats = await group.stats();
    assert.ok(stats.memory.usage > 0, `memory usage ${stats.memory.usage}`);
    assert.is(stats.memory.limit, 32 * MIB);
    assert.is(stats.pids.current, 1);
    assert.is(stats.pids.limit, 10);
    assert.is(stats.cpu.onlineCpus, 1, 'cpuset 0');
    assert.ok(stats.cpu.usageNanos >= 0);
  });

  mgr('freeze/thaw through cgroup.freeze; cgroup.events says frozen 1 then 0', async () => {
    await group.freeze();
    assert.is(keyed(join(dir(), 'cgroup.events')).frozen, 1);
    assert.is(read(join(dir(), 'cgroup.freeze')), '1');
    await group.thaw();
    assert.is(keyed(join(dir(), 'cgroup.events')).frozen, 0);
  });

  mgr('pids() and signals reach processes in child groups the container made', async () => {
    const inner = join(dir(), 'inner');
    mkdirSync(inner);
    const nested = spawn('sleep', ['300'], { stdio: 'ignore' });
    children.push(nested);
    writeFileSync(join(inner, 'cgroup.procs'), String(nested.pid));
    assert.equal(await group.pids(), [sleeper.pid!, nested.pid!].sort((a, b) => a - b));
    await group.killAll('SIGTERM');
    assert.equal(await exited(nested), { code: null, signal: 'SIGTERM' });
    assert.equal(await exited(sleeper), { code: null, signal: 'SIGTERM' });
    await until(() => read(join(inner, 'cgroup.procs')) === '', 5000, 'the child group to empty');
    rmdirSync(inner);
  });

  mgr('killAll uses cgroup.kill, which takes a frozen group down too', async () => {
    sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
    children.push(sleeper);
    await nodeCgroupOps.writeFile(group.procsFiles()[0]!, String(sleeper.pid));
    await group.freeze();
    writes.length = 0;
    await group.killAll();
    assert.ok(writes.includes(`${parent}/c1/cgroup.kill 1`), writes.join('\n'));
    assert.equal(await exited(sleeper), { code: null, signal: 'SIGKILL' });
    await until(() => read(join(dir(), 'cgroup.procs')) === '', 5000, 'the group to empty');
  });

  mgr('a 64 MiB allocation under 32 MiB without swap is OOM-killed; oomKilled() sees it', async () => {
    const g = await manager.create('oom', { memory: 32 * MIB, memorySwap: 32 * MIB });
    assert.is(read(join(parentDir, 'oom', 'memory.swap.max')), '0');
    assert.not.ok(await g.oomKilled());
    // The shell moves itself in before allocating, so the allocation is charged there.
    const child = spawn('sh', ['-c', 'echo $$ > "$1" && a=$(head -c 67108864 /dev/zero | tr "\\0" x) && echo survived', 'sh', g.procsFiles()[0]!], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (d) => { out += d; });
    const result = await exited(child);
    assert.is.not(result.code, 0, `exit ${JSON.stringify(result)}`);
    assert.is(out, '');
    assert.ok(keyed(join(parentDir, 'oom', 'memory.events')).oom_kill! > 0);
    assert.ok(await g.oomKilled());
    await g.remove({ killLeftovers: true });
  });

  mgr('remove() leaves nothing; open() then says ENOTFOUND', async () => {
    await group.remove();
    assert.not.ok(existsSync(dir()));
    assert.equal(readdirSync(parentDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name), []);
    assert.equal(await manager.listOwned(), []);
    try { await manager.open('c1'); assert.unreachable('open after remove'); } catch (err) {
      assert.is((err as { code?: string }).code, 'ENOTFOUND');
    }
  });

  mgr('a parent holding processes is refused with the reason, and left as it was', async () => {
    const busy = `${base}/busy`;
    const busyDir = join(CGROUP_ROOT, busy);
    mkdirSync(busyDir);
    const squatter = spawn('sleep', ['300'], { stdio: 'ignore' });
    children.push(squatter);
    writeFileSync(join(busyDir, 'cgroup.procs'), String(squatter.pid));
    const busyManager = createCgroupManager(detectCgroups(), { parent: busy });
    // Even without limits: enabling cpu/cpuset/pids there would make the new group
    // "domain invalid", so the helper could not move the container into it.
    for (const limits of [{ memory: 32 * MIB }, {}]) {
      try {
        await busyManager.create('m', limits);
        assert.unreachable(`create ${JSON.stringify(limits)} under a parent with processes`);
      } catch (err) {
        assert.is((err as { code?: string }).code, 'ECONFLICT', String(err));
        assert.match((err as Error).message, `${busyDir}: it holds processes (pids ${squatter.pid})`);
      }
    }
    assert.is(read(join(busyDir, 'cgroup.subtree_control')), '', 'nothing enabled there');
    assert.is(read(join(busyDir, 'cgroup.type')), 'domain');
    assert.not.ok(existsSync(join(busyDir, 'm')));
    // Once the parent is empty, the same request succeeds.
    writeFileSync(join(CGROUP_ROOT, 'cgroup.procs'), String(squatter.pid));
    squatter.kill('SIGKILL');
    const m = await busyManager.create('m', { memory: 32 * MIB, pidsLimit: 5 });
    assert.is(read(join(busyDir, 'm', 'memory.max')), String(32 * MIB));
    assert.is(read(join(busyDir, 'm', 'pids.max')), '5');
    await m.remove();
  });

  mgr.run();

  // --- the engine end to end ---------------------------------------------------------

  const eng = suite('engine on cgroup v2');
  let env: EngineEnv;
  let engine: ContainerEngine;

  eng.before(async () => {
    env = await makeEngineEnv('b2-');
    engine = await env.open();
  });
  eng.after(async () => { await env?.cleanup(); });

  async function run(cmd: string[], extra: Partial<CreateRequest> = {}): Promise<{ id: string; code: number }> {
    const { Id } = await engine.create({ Image: IMAGE, Cmd: cmd, ...extra });
    const wait = engine.wait(Id, 'next-exit');
    await wait.ready;
    await engine.start(Id);
    return { id: Id, code: (await wait.result).StatusCode };
  }

  eng('the container has its own cgroup namespace: /proc/self/cgroup is 0::/', async () => {
    const { id, code } = await run(['cat', '/proc/self/cgroup']);
    assert.is(code, 0);
    assert.is(await logText(engine, id), '0::/\n');
    await engine.remove(id);
  });

  eng('Memory 32 MiB, MemorySwap 32 MiB: a 64 MiB allocation ends with OOMKilled', async () => {
    const { id, code } = await run(['sh', '-c', 'a=$(head -c 67108864 /dev/zero | tr "\\0" x); echo survived'], { HostConfig: { Memory: 32 * MIB, MemorySwap: 32 * MIB } });
    const st = (await engine.inspect(id)).State as Record<string, unknown>;
    assert.is(st.OOMKilled, true, JSON.stringify(st));
    assert.is.not(code, 0);
    assert.is(await logText(engine, id), '');
    await engine.remove(id);
  });

  eng('PidsLimit 10 stops a fork bomb', async () => {
    const bomb = 'for i in $(seq 50); do sleep 10 & done; wait';
    const { Id } = await engine.create({ Image: IMAGE, Cmd: ['sh', '-c', `sh -c '${bomb}'; echo bomb-ended; sleep 100`], HostConfig: { PidsLimit: 10 } });
    await engine.start(Id);
    const cg = join(CGROUP_ROOT, env.cgroupParent, Id);
    assert.is(read(join(cg, 'pids.max')), '10');
    await until(() => existsSync(join(cg, 'pids.events')) && keyed(join(cg, 'pids.events')).max! > 0, 15_000, 'pids.events max > 0');
    assert.ok(Number(read(join(cg, 'pids.current'))) <= 10);
    await engine.remove(Id, { force: true });
  });

  eng('NanoCpus 0.5e9 is cpu.max "50000 100000"; update, pause and stats on v2; remove leaves no cgroup', async () => {
    const { Id } = await engine.create({ Image: IMAGE, Cmd: ['sleep', '60'], HostConfig: { NanoCpus: 0.5e9, Memory: 64 * MIB } });
    await engine.start(Id);
    const cg = join(CGROUP_ROOT, env.cgroupParent, Id);
    assert.is(read(join(cg, 'cpu.max')), '50000 100000');
    assert.is(read(join(cg, 'memory.swap.max')), String(64 * MIB), 'as much swap as memory');
    const stats = await engine.stats(Id);
    assert.ok((stats.memory_stats as { usage: number }).usage > 0);
    assert.ok((stats.pids_stats as { current: number }).current >= 1);
    // docker update --cpus .25 --memory 48m: the default swap follows the memory.
    await engine.update(Id, { NanoCpus: 0.25e9, Memory: 48 * MIB });
    assert.is(read(join(cg, 'cpu.max')), '25000 100000');
    assert.is(read(join(cg, 'memory.max')), String(48 * MIB));
    assert.is(read(join(cg, 'memory.swap.max')), String(48 * MIB));
    await engine.pause(Id);
    assert.is(keyed(join(cg, 'cgroup.events')).frozen, 1);
    await engine.unpause(Id);
    assert.is(keyed(join(cg, 'cgroup.events')).frozen, 0);
    await engine.remove(Id, { force: true });
    assert.not.ok(existsSync(cg));
    assert.equal(cgroupsLeft(env.cgroupParent), []);
  });

  eng.run();
}
