// src/runtime against the real helper and kernel (root): spec building from Docker-level
// config, create/attach/start, exit files, exec, signals, and a second Runtime instance
// standing in for a restarted daemon.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRuntime, type HelperRuntime } from '../../src/runtime';
import type { AttachStream, ContainerProcessConfig } from '../../src/runtime/types';
import { isBerthError } from '../../src/util/errors';
import { ensureHelper, isAlive, killBundle, makeBusyboxRootfs, sleep } from '../helpers/helper-bundle';

// /tmp, not os.tmpdir(): the exec root must stay short for the sockets.
const base = mkdtempSync('/tmp/berth-rt-');
const rootfs = join(base, 'rootfs');
const execRoot = join(base, 'run');
let rt: HelperRuntime;
let seq = 0;
const created: string[] = [];

test.before(() => {
  makeBusyboxRootfs(rootfs);
  rt = createRuntime({ execRoot, helperPath: ensureHelper() });
});

test.after.each(async () => {
  while (created.length) {
    const id = created.pop()!;
    killBundle(rt.bundleDir(id));
    await rt.remove(id).catch(() => {});
  }
});

test.after(() => {
  rmSync(base, { recursive: true, force: true });
});

function config(args: string[], extra: Partial<ContainerProcessConfig> = {}): ContainerProcessConfig {
  return { args, env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], hostname: 'rt', tty: false, openStdin: false, ...extra };
}

async function createContainer(args: string[], extra: Partial<ContainerProcessConfig> = {}, waitStart = true) {
  const id = `c${process.pid}x${++seq}`.padEnd(16, '0') + 'f'.repeat(48);
  created.push(id);
  const spec = await rt.buildSpec(id, rootfs, config(args, extra), { cgroupProcs: [], log: { path: 'container.log', maxBytes: 0, maxFiles: 1 }, waitStart });
  await rt.create(id, spec);
  return id;
}

function collect(s: NodeJS.ReadableStream): () => string {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  return () => Buffer.concat(chunks).toString();
}

async function waitForText(read: () => string, pattern: RegExp, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(read())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in ${JSON.stringify(read())}`);
    await sleep(10);
  }
}

/** Creates (wait_start), attaches, starts; resolves with the output once the stream closes. */
async function runAttached(args: string[], extra: Partial<ContainerProcessConfig> = {}) {
  const id = await createContainer(args, extra);
  const a = await rt.attach(id, { stdin: false });
  const out = collect(a.stdout);
  const err = collect(a.stderr);
  await rt.start(id);
  await a.closed;
  const exit = await rt.waitExit(id);
  return { id, stdout: out(), stderr: err(), exit };
}

test('echo hi: create, attach, start with wait_start', async () => {
  const r = await runAttached(['echo', 'hi']);
  assert.is(r.stdout, 'hi\n');
  assert.is(r.exit.code, 0);
  assert.ok((await rt.running(r.id))!.pid > 0);
  assert.equal(await rt.exited(r.id), r.exit);
});

test('exit code and stderr propagate', async () => {
  const r = await runAttached(['sh', '-c', 'echo oops >&2; exit 3']);
  assert.is(r.stderr, 'oops\n');
  assert.is(r.exit.code, 3);
  assert.is(r.exit.signal, 0);
});

test('a missing executable: 127 with the error text', async () => {
  const id = await createContainer(['nope'], {}, false);
  const exit = await rt.waitExit(id);
  assert.is(exit.code, 127);
  assert.is(exit.error, 'exec: "nope": executable file not found in $PATH');
});

test('a spec the helper refuses: BerthError with its message', async () => {
  try {
    await createContainer(['true'], { ulimits: [{ name: 'bogus', soft: 1, hard: 1 }] });
    assert.unreachable('create should fail');
  } catch (err) {
    assert.ok(isBerthError(err), String(err));
    assert.match((err as Error).message, /bogus/);
  }
});

test('waitExit works from another Runtime instance (daemon restart)', async () => {
  const id = await createContainer(['sh', '-c', 'sleep 0.5; exit 7'], {}, false);
  const restarted = createRuntime({ execRoot, helperPath: ensureHelper() });
  assert.ok((await restarted.list()).includes(id));
  assert.ok(await restarted.helperAlive(id));
  const exit = await restarted.waitExit(id);
  assert.is(exit.code, 7);
  await sleep(50);
  const deadline = Date.now() + 5000;
  while (await restarted.helperAlive(id) && Date.now() < deadline) await sleep(50);
  assert.not.ok(await restarted.helperAlive(id));
});

test("user nobody resolves from the image's passwd; HOME from it", async () => {
  const r = await runAttached(['sh', '-c', 'id -u; id -g; echo $HOME; grep CapEff /proc/self/status'], { user: 'nobody' });
  assert.is(r.stdout, '65534\n65534\n/home\nCapEff:\t0000000000000000\n');
  try {
    await createContainer(['true'], { user: 'ghost' });
    assert.unreachable('unknown user must fail');
  } catch (err) {
    assert.ok(isBerthError(err, 'EINVAL'));
    assert.is((err as Error).message, 'unable to find user ghost: no matching entries in passwd file');
  }
});

test('tty attach with stdin and resize', async () => {
  const id = await createContainer(['sh', '-c', 'read x; stty size; echo "x=$x"'], { tty: true, openStdin: true });
  const a: AttachStream = await rt.attach(id, { stdin: true });
  const out = collect(a.stdout);
  await rt.start(id);
  await rt.resize(id, 33, 101);
  a.stdin!.write('go\n');
  await a.closed;
  assert.match(out(), /33 101\r\n/);
  assert.match(out(), /x=go\r\n/);
  assert.is((await rt.waitExit(id)).code, 0);
});

test('stdin half-close ends the container input (no tty)', async () => {
  const id = await createContainer(['sh', '-c', 'cat; echo done'], { openStdin: true });
  const a = await rt.attach(id, { stdin: true });
  const out = collect(a.stdout);
  await rt.start(id);
  a.stdin!.write('abc\n');
  a.stdin!.end();
  await a.closed;
  assert.is(out(), 'abc\ndone\n');
});

test('exec into a running container: output, exit code, user', async () => {
  const cfg = config(['sleep', '100']);
  const id = await createContainer(cfg.args, {}, false);
  const exec = { args: ['sh', '-c', 'echo in-exec; id -u; echo $HOME; exit 5'], env: ['FOO=bar'], tty: false, attachStdin: false, user: 'daemon' };
  await rt.exec(id, 'e1', exec, { ...cfg, rootfs, cgroupProcs: [] });
  const a = await rt.execAttach(id, 'e1', { stdin: false });
  const out = collect(a.stdout);
  await rt.execStart(id, 'e1');
  await a.closed;
  assert.is(out(), 'in-exec\n1\n/usr/sbin\n');
  const exit = await rt.execWaitExit(id, 'e1');
  assert.is(exit.code, 5);
  assert.equal(await rt.execExited(id, 'e1'), exit);
  assert.is(await rt.execRunning(id, 'e1'), undefined);
  assert.is(await rt.exited(id), undefined, 'the container keeps running');
});

test('signal 15 through --init ends the container', async () => {
  const id = await createContainer(['sleep', '100'], { init: true }, false);
  await waitForText(() => (existsSync(join(rt.bundleDir(id), 'state')) ? 'y' : ''), /y/);
  await rt.signal(id, 15);
  const exit = await rt.waitExit(id);
  assert.is(exit.code, 143);
});

test('read-only rootfs, etc files and a tmpfs', async () => {
  const hosts = join(base, 'hosts');
  writeFileSync(hosts, '127.0.0.1 localhost rt\n');
  const r = await runAttached(['sh', '-c', 'touch /x 2>/dev/null; echo rc=$?; touch /run/y && echo tmpfs-ok; cat /etc/hosts; echo new >> /etc/hosts'], {
    readonlyRootfs: true, etcFiles: { hosts }, tmpfs: [{ target: '/run', options: 'size=1m' }],
  });
  assert.is(r.stdout, 'rc=1\ntmpfs-ok\n127.0.0.1 localhost rt\n');
  assert.is(readFileSync(hosts, 'utf8'), '127.0.0.1 localhost rt\nnew\n');
  assert.not.ok(existsSync(join(rootfs, 'x')));
});

test('remove() of a running container leaves no bundle and no process', async () => {
  const id = await createContainer(['sleep', '100'], {}, false);
  await waitForText(() => (existsSync(join(rt.bundleDir(id), 'state')) ? 'y' : ''), /y/);
  const helper = await rt.helperPid(id);
  const init = (await rt.running(id))!.pid;
  assert.ok(helper && isAlive(helper) && isAlive(init));
  await rt.remove(id);
  assert.not.ok(existsSync(rt.bundleDir(id)));
  const deadline = Date.now() + 3000;
  while ((isAlive(helper!) || isAlive(init)) && Date.now() < deadline) await sleep(20);
  assert.not.ok(isAlive(helper!), 'helper gone');
  assert.not.ok(isAlive(init), 'container gone');
  assert.not.ok((await rt.list()).includes(id));

  // Also before `start`: the cloned init waits for the release and must go too.
  const waiting = await createContainer(['sleep', '100']);
  const waitingHelper = (await rt.helperPid(waiting))!;
  await rt.remove(waiting);
  while (isAlive(waitingHelper) && Date.now() < deadline + 3000) await sleep(20);
  assert.not.ok(isAlive(waitingHelper));
  assert.not.ok(existsSync(rt.bundleDir(waiting)));
});

test.run();
