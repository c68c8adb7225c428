// The container engine against the real kernel (root): busybox containers through create,
// start, logs, limits, stop/kill, pause, restart policies, volumes and live restore.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isBerthError } from '../../src/util/errors';
import type { ContainerEngine } from '../../src/engine';
import type { CreateRequest } from '../../src/engine/types';
import { IMAGE, logText, makeEngineEnv, type EngineEnv } from '../helpers/engine-env';

let env: EngineEnv;
let engine: ContainerEngine;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  env = await makeEngineEnv();
  engine = await env.open({ restartBackoff: { initialMs: 50, maxMs: 400, resetAfterMs: 10_000 } });
});

test.after(async () => {
  await env?.cleanup();
});

/** create + start, then the exit code once it has exited. */
async function run(cmd: string[], extra: Partial<CreateRequest> = {}, name?: string): Promise<{ id: string; code: number }> {
  const { Id } = await engine.create({ Image: IMAGE, Cmd: cmd, ...extra }, name);
  const wait = engine.wait(Id, 'next-exit');
  await wait.ready;
  await engine.start(Id);
  const result = await withTimeout(wait.result, 20_000, `container ${cmd.join(' ')}`);
  return { id: Id, code: result.StatusCode };
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, j) => { timer = setTimeout(() => j(new Error(`timed out: ${what}`)), ms); });
  try { return await Promise.race([p, t]); } finally { clearTimeout(timer); }
}

async function until(check: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const state = async (id: string) => (await engine.inspect(id)).State as Record<string, unknown>;

async function rejects(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  try { await p; } catch (err) {
    assert.ok(isBerthError(err), String(err));
    assert.is((err as { code: string }).code, code, (err as Error).message);
    if (message) assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('echo hi: logs, exit code 0, state exited, inspect and ps shapes', async () => {
  const { id, code } = await run(['echo', 'hi'], {}, 'hello');
  assert.is(code, 0);
  assert.is(await logText(engine, id), 'hi\n');
  const doc = await engine.inspect('hello');
  const st = doc.State as Record<string, unknown>;
  assert.is(st.Status, 'exited');
  assert.is(st.Running, false);
  assert.is(st.ExitCode, 0);
  assert.is(doc.Name, '/hello');
  assert.is(doc.Path, 'echo');
  assert.equal(doc.Args, ['hi']);
  assert.is(doc.Platform, 'linux');
  assert.ok(existsSync(doc.LogPath as string));
  const config = doc.Config as Record<string, unknown>;
  assert.is(config.Hostname, id.slice(0, 12));
  assert.equal(config.Cmd, ['echo', 'hi']);
  const rows = await engine.list({ all: true, filters: { name: ['hello'] } });
  assert.is(rows.length, 1);
  assert.equal(rows[0]!.Names, ['/hello']);
  assert.match(rows[0]!.Status as string, /^Exited \(0\) (Less than a second|\d+ seconds?) ago$/);
  assert.is((await engine.list({})).some((r) => r.Id === id), false, 'ps without -a hides exited containers');
  // Lookup by unique prefix; a missing name is Docker's 404 text.
  assert.is((await engine.inspect(id.slice(0, 10))).Id, id);
  await rejects(engine.inspect('nope-nope'), 'ENOCONTAINER', /^No such container: nope-nope$/);
  await rejects(engine.create({ Image: IMAGE, Cmd: ['true'] }, 'hello'), 'ECONFLICT', /The container name "\/hello" is already in use by container/);
  await rejects(engine.create({ Image: 'nonexistent:latest' }), 'ENOIMAGE', /No such image/);
  await engine.remove(id);
});

test('sh -c "exit 3" -> ExitCode 3; a missing command -> 127 and an error', async () => {
  const { id, code } = await run(['sh', '-c', 'exit 3']);
  assert.is(code, 3);
  assert.is((await state(id)).ExitCode, 3);
  const { Id } = await engine.create({ Image: IMAGE, Cmd: ['no-such-command'] });
  await rejects(engine.start(Id), 'EINVAL', /executable file not found/);
  const st = await state(Id);
  assert.is(st.ExitCode, 127);
  assert.match(st.Error as string, /not found/);
  await engine.remove(id);
  await engine.remove(Id);
});

test('hostname is the 12-char id; env merge (PATH, HOSTNAME, user overrides image)', async () => {
  const { id } = await run(['sh', '-c', 'hostname; env'], { Env: ['PATH=/bin:/sbin', 'FOO=bar'] });
  const out = await logText(engine, id);
  const lines = out.split('\n');
  assert.is(lines[0], id.slice(0, 12));
  assert.ok(lines.includes('PATH=/bin:/sbin'), out);
  assert.ok(lines.includes('FOO=bar'), out);
  assert.ok(lines.includes(`HOSTNAME=${id.slice(0, 12)}`), out);
  assert.not.ok(lines.includes('TERM=xterm'));
  const config = (await engine.inspect(id)).Config as { Env: string[]; Labels: Record<string, string> };
  assert.equal(config.Env, ['PATH=/bin:/sbin', 'FOO=bar']);
  assert.is(config.Labels['io.berth.default-image'], 'true', 'image labels are kept');
  await engine.remove(id);
});

test('memory limit 32 MiB: a 64 MiB allocation is OOM-killed', async () => {
  const mib = 1024 * 1024;
  const { id, code } = await run(['sh', '-c', 'a=$(head -c 67108864 /dev/zero | tr "\\0" x); echo survived'], { HostConfig: { Memory: 32 * mib, MemorySwap: 32 * mib } });
  const st = await state(id);
  assert.is(st.OOMKilled, true, JSON.stringify(st));
  assert.is.not(code, 0);
  assert.is(await logText(engine, id), '');
  const hc = (await engine.inspect(id)).HostConfig as Record<string, unknown>;
  assert.is(hc.Memory, 32 * mib);
  await engine.remove(id);
});

test('PidsLimit 10 stops a fork bomb; the container can still be stopped', async () => {
  // The bomb runs in a child shell: ash gives up on the first failed fork, pid 1 stays.
  const bomb = 'for i in $(seq 50); do sleep 10 & done; wait';
  const { Id } = await engine.create({ Image: IMAGE, Cmd: ['sh', '-c', `sh -c '${bomb}'; echo bomb-ended; sleep 100`], HostConfig: { PidsLimit: 10 } });
  await engine.start(Id);
  await sleep(1000);
  const top = await engine.top(Id);
  assert.equal(top.Titles, ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
  assert.ok(top.Processes.length <= 10, `processes: ${top.Processes.length}`);
  assert.ok(top.Processes.length >= 2);
  const stderr = await logText(engine, Id, 'stderr');
  assert.match(stderr, /fork|resource/i);
  assert.is(await logText(engine, Id), 'bomb-ended\n');
  const started = Date.now();
  await engine.stop(Id, { timeout: 2 });
  assert.ok(Date.now() - started < 8000);
  assert.is((await state(Id)).Running, false);
  await engine.remove(Id);
});

test('NanoCpus 0.5e9 -> cfs quota 50000; stats have Docker\'s shape', async () => {
  const { Id } = await engine.create({ Image: IMAGE, Cmd: ['sleep', '30'], HostConfig: { NanoCpus: 0.5e9 } });
  await engine.start(Id);
  const cpuDirs = ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct'].map((d) => join(d, env.cgroupParent, Id)).filter(existsSync);
  if (cpuDirs.length) assert.is(readFileSync(join(cpuDirs[0]!, 'cpu.cfs_quota_us'), 'utf8').trim(), '50000');
  else assert.match(readFileSync(join('/sys/fs/cgroup', env.cgroupParent, Id, 'cpu.max'), 'utf8'), /^50000 /);
  const stats = await engine.stats(Id);
  assert.ok((stats.cpu_stats as { online_cpus: number }).online_cpus > 0);
  assert.ok((stats.memory_stats as { usage: number }).usage > 0);
  assert.is(stats.id, Id);
  assert.equal(stats.networks, {});
  const update = await engine.update(Id, { NanoCpus: 0.25e9 });
  assert.equal(update.Warnings, []);
  if (cpuDirs.length) assert.is(readFileSync(join(cpuDirs[0]!, 'cpu.cfs_quota_us'), 'utf8').trim(), '25000');
  await engine.remove(Id, { force: true });
});

test('stop: SIGTERM ignored -> SIGKILL after the timeout; 304 when stopped', async () => {
  const { Id } = await engine.create({ Image: IMAGE, Cmd: ['sh', '-c', "trap '' TERM; while true; do sleep 1; done"] });
  await engine.start(Id);
  await sleep(300);
  const started = Date.now();
  await engine.stop(Id, { timeout: 2 });
  const took = Date.now() - started;
  assert.ok(took >= 1900 && took < 6000, `stop took ${took} ms`);
  assert.is((await state(Id)).ExitCode, 137);
  await rejects(engine.stop(Id), 'ENOTMODIFIED');
  // A plain sleep honours SIGTERM... as pid 1 without a handler it does not: Docker's rule too.
  const quick = await engine.create({ Image: IMAGE, Cmd: ['sh', '-c', 'trap "exit 0" TERM; sleep 100 & wait'] });
  await engine.start(quick.Id);
  await sleep(300);
  const t0 = Date.now();
  await engine.stop(quick.Id, { timeout: 10 });
  assert.ok(Date.now() - t0 < 3000, 'a TERM-honouring container stops before the timeout');
  assert.is((await state(quick.Id)).ExitCode, 0);
  await engine.remove(Id);
  await engine.remove(quick.Id);
});

test('kill by name and number; pause and unpause; rename', async () => {
  const { Id } = await engine.create({ Image: IMAGE, Cmd: ['sleep', '100'] }, 'pauser');
  await engine.start(Id);
  await engine.pause('pauser');
  let st = await state(Id);
  assert.is(st.Status, 'paused');
  assert.is(st.Paused, true);
  const row = (await engine.list({ filters: { status: ['paused'] } })).find((r) => r.Id === Id)!;
  assert.match(row.Status as string, /^Up .* \(Paused\)$/);
  assert.is(engine.counts().paused, 1);
  await rejects(engine.pause(Id), 'ECONFLICT');
  await engine.unpause(Id);
  assert.is((await state(Id)).Status, 'running');
  await engine.rename('pauser', 'renamed');
  assert.is((await engine.inspect('renamed')).Name, '/renamed');
  await rejects(engine.inspect('pauser'), 'ENOCONTAINER');
  await rejects(engine.remove(Id), 'ECONFLICT', /stop the container before removing or force remove/);
  await engine.kill('renamed', 'SIGKILL');
  await until(async () => (await state(Id)).Running === false, 5000, 'kill');
  st = await state(Id);
  assert.is(st.ExitCode, 137);
  await rejects(engine.kill(Id, '9'), 'ECONFLICT');
  await engine.remove(Id);
});

test('restart policy always brings a container back; on-failure:2 stops after 2 retries', async () => {
  const always = await engine.create({ Image: IMAGE, Cmd: ['sh', '-c', 'echo run; exit 1'], HostConfig: { RestartPolicy: { Name: 'always' } } });
  await engine.start(always.Id);
  await until(async () => ((await engine.inspect(always.Id)).RestartCount as number) >= 3, 15_000, 'always restarts');
  await engine.stop(always.Id).catch((err) => { if (!isBerthError(err, 'ENOTMODIFIED')) throw err; });
  await sleep(500);
  const count = (await engine.inspect(always.Id)).RestartCount as number;
  await sleep(800);
  assert.is((await engine.inspect(always.Id)).RestartCount, count, 'a stopped container stays down');
  assert.is((await state(always.Id)).Running, false);
  assert.ok((await logText(engine, always.Id)).split('\n').filter((l) => l === 'run').length >= 3);

  const onFailure = await engine.create({ Image: IMAGE, Cmd: ['sh', '-c', 'exit 2'], HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } } });
  await engine.start(onFailure.Id);
  await until(async () => (await state(onFailure.Id)).Status === 'exited' && (await engine.inspect(onFailure.Id)).RestartCount === 2, 15_000, 'on-failure retries');
  await sleep(1000);
  assert.is((await engine.inspect(onFailure.Id)).RestartCount, 2);
  assert.is((await state(onFailure.Id)).ExitCode, 2);

  await rejects(engine.create({ Image: IMAGE, HostConfig: { AutoRemove: true, RestartPolicy: { Name: 'always' } } }), 'EINVAL', /AutoRemove/);
  await rejects(engine.create({ Image: IMAGE, HostConfig: { RestartPolicy: { Name: 'always', MaximumRetryCount: 3 } } }), 'EINVAL');
  await engine.remove(always.Id, { force: true });
  await engine.remove(onFailure.Id, { force: true });
});

test('wait: not-running at once, next-exit, removed; AutoRemove; remove force', async () => {
  const created = await engine.create({ Image: IMAGE, Cmd: ['true'] });
  const notRunning = engine.wait(created.Id, 'not-running');
  assert.equal(await notRunning.result, { StatusCode: 0, Error: null });

  const auto = await engine.create({ Image: IMAGE, Cmd: ['sh', '-c', 'exit 5'], HostConfig: { AutoRemove: true } });
  const removed = engine.wait(auto.Id, 'removed');
  await removed.ready;
  await engine.start(auto.Id);
  assert.equal(await withTimeout(removed.result, 10_000, 'removed'), { StatusCode: 5, Error: null });
  await rejects(engine.inspect(auto.Id), 'ENOCONTAINER');

  const long = await engine.create({ Image: IMAGE, Cmd: ['sleep', '100'] });
  await engine.start(long.Id);
  const gone = engine.wait(long.Id, 'removed');
  await engine.remove(long.Id, { force: true });
  assert.is((await withTimeout(gone.result, 10_000, 'forced removal')).StatusCode, 137);
  assert.not.ok(existsSync(join(env.dataRoot, 'containers', long.Id)));
  await engine.remove(created.Id);
});

test('log drivers: local keeps output in RAM, none refuses to read', async () => {
  const local = await run(['sh', '-c', 'echo one; echo two >&2'], { HostConfig: { LogConfig: { Type: 'local' } } });
  assert.is(await logText(engine, local.id, 'both'), 'one\ntwo\n');
  assert.is((await engine.inspect(local.id)).LogPath, '');
  const none = await run(['echo', 'x'], { HostConfig: { LogConfig: { Type: 'none' } } });
  await rejects(logText(engine, none.id), 'EUNSUPPORTED');
  await engine.remove(local.id);
  await engine.remove(none.id);
});

test('attach before start (the docker run flow) sees the output', async () => {
  const { Id } = await engine.create({ Image: IMAGE, Cmd: ['sh', '-c', 'echo out; echo err >&2'], AttachStdout: true, AttachStderr: true });
  const attach = await engine.attach(Id, { stdin: false });
  let out = '', err = '';
  attach.stdout.on('data', (d) => { out += d; });
  attach.stderr.on('data', (d) => { err += d; });
  const wait = engine.wait(Id, 'next-exit');
  await engine.start(Id);
  await withTimeout(attach.closed, 10_000, 'attach closed');
  assert.is((await wait.result).StatusCode, 0);
  await until(() => out === 'out\n' && err === 'err\n', 2000, `attach output (got ${JSON.stringify([out, err])})`);
  await engine.remove(Id);
});

test('exec: output and exit code', async () => {
  const { Id } = await engine.create({ Image: IMAGE, Cmd: ['sleep', '100'] });
  await engine.start(Id);
  const exec = await engine.execCreate(Id, { Cmd: ['sh', '-c', 'echo in-exec; exit 4'], AttachStdout: true, AttachStderr: true });
  const stream = await engine.execStart(exec.Id, { detach: false, stdin: false });
  let out = '';
  stream!.stdout.on('data', (d) => { out += d; });
  await withTimeout(stream!.closed, 10_000, 'exec stream');
  await until(async () => (await engine.execInspect(exec.Id)).Running === false, 5000, 'exec exit');
  assert.is((await engine.execInspect(exec.Id)).ExitCode, 4);
  assert.is(out, 'in-exec\n');

  // A monitor that execs every minute must not fill the RAM-backed exec root: an ended
  // exec's files go (its exit code stays inspectable from memory).
  const execDir = join(env.runtime.bundleDir(Id), 'e');
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) {
    const { Id: execId } = await engine.execCreate(Id, { Cmd: ['true'] });
    await engine.execStart(execId, { detach: true, stdin: false });
    ids.push(execId);
  }
  await until(async () => (await Promise.all(ids.map((x) => engine.execInspect(x)))).every((x) => x.Running === false && x.ExitCode === 0), 10_000, 'execs to end');
  await until(() => !existsSync(execDir) || readdirSync(execDir).length === 0, 5000, `exec files to go: ${existsSync(execDir) ? readdirSync(execDir).join(' ') : ''}`);
  await engine.remove(Id, { force: true });
});

test('bind mount: a file written inside is visible on the host; named volume seeded from the image', async () => {
  const hostDir = join(env.root, 'bind-src');
  mkdirSync(hostDir);
  const { id, code } = await run(['sh', '-c', 'echo from-container > /data/file; ls /sbin/ifconfig'], { HostConfig: { Binds: [`${hostDir}:/data`, 'seedvol:/sbin'] } });
  assert.is(code, 0, await logText(engine, id, 'both'));
  assert.is(readFileSync(join(hostDir, 'file'), 'utf8'), 'from-container\n');
  const volumeData = join(env.dataRoot, 'volumes', 'seedvol', '_data');
  assert.ok(readdirSync(volumeData).includes('ifconfig'), 'the volume got the image content at its path');
  const mounts = (await engine.inspect(id)).Mounts as Array<Record<string, unknown>>;
  assert.equal(mounts.map((m) => m.Type).sort(), ['bind', 'volume']);
  await engine.remove(id, { volumes: true });
  assert.ok(existsSync(volumeData), 'named volumes survive rm -v');
});

test('anonymous volumes from VOLUME-like Config.Volumes go with rm -v', async () => {
  const { id } = await run(['sh', '-c', 'echo x > /scratch/f'], { Volumes: { '/scratch': {} } });
  const mount = ((await engine.inspect(id)).Mounts as Array<{ Name: string; Source: string }>)[0]!;
  assert.ok(existsSync(join(mount.Source, 'f')));
  await engine.remove(id, { volumes: true });
  assert.not.ok(existsSync(join(env.dataRoot, 'volumes', mount.Name)));
});

test('volume rm racing a create: the container being created counts as a user; a removal under way fails the create', async () => {
  // A second engine whose storage driver parks create() until released: the window in
  // which a volume rm or prune used to see the volume as unused.
  const env2 = await makeEngineEnv('berth-vrace-');
  try {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const parked = new Proxy(env2.storage, {
      get(target, prop) {
        if (prop === 'create') return async (...args: Parameters<typeof target.create>) => { await gate; return target.create(...args); };
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const e2 = await env2.open({ storage: parked });
    const creating = e2.create({ Image: IMAGE, Cmd: ['true'], Volumes: { '/scratch': {} }, HostConfig: { Binds: ['racevol:/data'] } });
    await until(() => (e2.volumeUsers().get('racevol')?.length ?? 0) > 0, 5000, 'the create to claim its volumes');
    assert.is(e2.volumeUsers().size, 2, 'the named and the anonymous volume are both in use');
    let removed = false;
    await rejects(e2.removeVolumeIfUnused('racevol', async () => { removed = true; }), 'ECONFLICT', /remove racevol: volume is in use - \[[0-9a-f]{64}\]/);
    assert.not.ok(removed);
    release();
    const { Id } = await creating;
    assert.equal(e2.volumeUsers().get('racevol'), [Id]);

    let finishRemoval!: () => void;
    const removal = e2.removeVolumeIfUnused('othervol', () => new Promise<void>((r) => { finishRemoval = r; }));
    await rejects(e2.create({ Image: IMAGE, Cmd: ['true'], HostConfig: { Binds: ['othervol:/data'] } }), 'ECONFLICT', /volume othervol is being removed/);
    finishRemoval();
    await removal;
    await e2.remove(Id, { volumes: true });
    assert.is(e2.volumeUsers().size, 0);
  } finally {
    await env2.cleanup();
  }
});

test('live restore: a running container survives an engine restart and is stopped by the new one', async () => {
  const { Id } = await engine.create({ Image: IMAGE, Cmd: ['sleep', '100'] }, 'survivor');
  await engine.start(Id);
  const pid = (await state(Id)).Pid as number;
  const ended = await engine.create({ Image: IMAGE, Cmd: ['sh', '-c', 'sleep 1; exit 7'] }, 'exits-while-down');
  await engine.start(ended.Id);
  await engine.close();

  await sleep(1800); // "the daemon is down" while the second container exits
  engine = await env.open({ restartBackoff: { initialMs: 50, maxMs: 400, resetAfterMs: 10_000 } });
  const st = await state('survivor');
  assert.is(st.Running, true);
  assert.is(st.Pid, pid);
  assert.ok((await engine.list({})).some((r) => r.Id === Id));
  const down = await state('exits-while-down');
  assert.is(down.Status, 'exited');
  assert.is(down.ExitCode, 7);
  const started = Date.now();
  await engine.stop('survivor', { timeout: 1 });
  assert.ok(Date.now() - started < 5000);
  const after = await state('survivor');
  assert.is(after.Running, false);
  assert.ok([137, 143].includes(after.ExitCode as number), `exit ${after.ExitCode}`);
  await engine.remove(Id);
  await engine.remove(ended.Id);
});

test.run();
