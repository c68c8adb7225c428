// The native helper against the real kernel: needs root, namespaces and pivot_root.
// Each test writes a bundle, runs `berth-helper run`, and checks files, logs and the
// ctl socket protocol (native/helper/README.md).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  AttachClient, ctl, dockerDefaults, ensureHelper, hostMountsContaining, isAlive, killBundle, makeBundle,
  makeBusyboxRootfs, makeTempDir, MS, readJsonLog, runHelper, serializeExecSpec, sleep, waitForExit, waitForFile,
  writeSpec, type HelperSpec,
} from '../helpers/helper-bundle';

let rootfsDir = '';
let rootfs = '';
const cleanups: Array<() => void> = [];

test.before(() => {
  ensureHelper();
  rootfsDir = makeTempDir('berth-helper-rootfs-');
  rootfs = join(rootfsDir, 'rootfs');
  makeBusyboxRootfs(rootfs);
});

test.after.each(() => {
  while (cleanups.length) cleanups.pop()!();
});

test.after(() => {
  rmSync(rootfsDir, { recursive: true, force: true });
});

/** A bundle with Docker's defaults and a json log; removed after the test. */
function bundleFor(args: string[], extra: Partial<HelperSpec> = {}) {
  const b = makeBundle();
  cleanups.push(b.cleanup);
  const spec: HelperSpec = { ...dockerDefaults(), rootfs, args, log: { path: 'container.log', maxBytes: 0, maxFiles: 1 }, ...extra };
  writeSpec(b.bundle, spec);
  return { ...b, sock: join(b.bundle, 'ctl.sock'), logPath: join(b.bundle, 'container.log') };
}

async function runToExit(args: string[], extra: Partial<HelperSpec> = {}) {
  const b = bundleFor(args, extra);
  const started = await runHelper(b.bundle);
  assert.is(started.code, 0, started.stderr);
  const exit = await waitForExit(b.bundle);
  const stdout = readJsonLog(b.logPath).filter((l) => l.stream === 'stdout').map((l) => l.log).join('');
  const stderr = readJsonLog(b.logPath).filter((l) => l.stream === 'stderr').map((l) => l.log).join('');
  return { ...b, exit, stdout, stderr };
}

test('echo hi: json-file log lines and an attach client both see it', async () => {
  const b = bundleFor(['sh', '-c', 'echo hi; echo oops >&2'], { waitStart: true });
  const started = await runHelper(b.bundle);
  assert.is(started.code, 0, started.stderr);
  assert.match(await ctl(b.sock, 'state'), /^ok pid \d+ status created$/);
  const client = await AttachClient.open(b.sock);
  assert.is(await ctl(b.sock, 'start'), 'ok');
  await client.closed;
  assert.is(client.text('stdout'), 'hi\n');
  assert.is(client.text('stderr'), 'oops\n');
  const exit = await waitForExit(b.bundle);
  assert.is(exit.code, 0);
  const lines = readJsonLog(b.logPath);
  assert.equal(lines.map((l) => [l.log, l.stream]).sort(), [['hi\n', 'stdout'], ['oops\n', 'stderr']]);
  for (const l of lines) assert.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
});

test('exit code 3 from sh -c "exit 3"', async () => {
  const r = await runToExit(['sh', '-c', 'exit 3']);
  assert.is(r.exit.code, 3);
  assert.is(r.exit.signal, 0);
  assert.is(r.exit.error, undefined);
});

test('hostname comes from the spec (uts namespace)', async () => {
  const r = await runToExit(['hostname'], { hostname: 'box42' });
  assert.is(r.stdout, 'box42\n');
});

test('the command is PID 1 of its own pid namespace and host processes are invisible', async () => {
  const r = await runToExit(['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; ls /proc | grep -c "^[0-9]"']);
  const [cmdline, count] = r.stdout.split('\n');
  assert.is(cmdline.trim(), 'sh -c tr "\\0" " " < /proc/1/cmdline; echo; ls /proc | grep -c "^[0-9]"');
  assert.ok(Number(count) > 0 && Number(count) <= 4, `pids seen: ${count}`);
});

test("Docker's default capabilities: CapEff 00000000a80425fb", async () => {
  const r = await runToExit(['grep', 'CapEff', '/proc/self/status']);
  assert.is(r.stdout, 'CapEff:\t00000000a80425fb\n');
});

test('masked and read-only paths; no CAP_SYS_ADMIN for mounts', async () => {
  const r = await runToExit(['sh', '-c',
    'wc -c < /proc/timer_list; echo 1 > /proc/sys/kernel/domainname && echo wrote; mkdir -p /tmp/m; mount -t tmpfs x /tmp/m && echo mounted; grep NoNewPrivs /proc/self/status']);
  const lines = r.stdout.split('\n');
  assert.is(lines[0].trim(), '0');
  assert.not.ok(r.stdout.includes('wrote'), r.stdout);
  assert.not.ok(r.stdout.includes('mounted'), r.stdout);
  assert.ok(r.stdout.includes('NoNewPrivs:\t1'), r.stdout);
  assert.match(r.stderr, /Read-only file system/);
  assert.match(r.stderr, /mount:.*(denied|not permitted)/i);
});

test('devices, /dev symlinks and a bind-mounted file (resolv.conf), read-only', async () => {
  const dir = makeTempDir('berth-helper-files-');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 192.0.2.53\n');
  const defaults = dockerDefaults();
  const r = await runToExit(['sh', '-c',
    'cat /etc/resolv.conf; ls /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/ptmx /dev/fd/ /dev/stdout >/dev/null && echo devices; echo x > /etc/resolv.conf || echo ro'], {
    mounts: [...defaults.mounts!, { source: join(dir, 'resolv.conf'), target: '/etc/resolv.conf', fstype: 'none', flags: MS.BIND | MS.RDONLY }],
  });
  assert.is(r.stdout, 'nameserver 192.0.2.53\ndevices\nro\n', r.stderr);
});

test('a missing executable: status 127 and the error text in exit', async () => {
  const r = await runToExit(['nope']);
  assert.is(r.exit.code, 127);
  assert.is(r.exit.error, 'exec: "nope": executable file not found in $PATH');
  const abs = await runToExit(['/bin/nope']);
  assert.is(abs.exit.code, 127);
  assert.is(abs.exit.error, 'exec: "/bin/nope": stat /bin/nope: no such file or directory');
});

test('a tty container echoes typed input back through attach; resize works', async () => {
  const b = bundleFor(['sh', '-c', 'stty size; read line; echo "got:$line"'], { tty: true, stdin: true, waitStart: true });
  assert.is((await runHelper(b.bundle)).code, 0);
  const client = await AttachClient.open(b.sock, true);
  assert.is(await ctl(b.sock, 'start'), 'ok');
  assert.is(await ctl(b.sock, 'resize 30 100'), 'ok');
  client.write('hello\n');
  await client.waitFor(/got:hello/);
  await client.closed;
  const out = client.text();
  assert.ok(out.includes('hello\r\n'), JSON.stringify(out)); // the terminal's echo
  assert.ok(out.includes('got:hello\r\n'), JSON.stringify(out));
  assert.is(client.stderr.length, 0);
  assert.is((await waitForExit(b.bundle)).code, 0);
});

test('stdin through attach; client half-close closes the container stdin', async () => {
  const b = bundleFor(['sh', '-c', 'cat; echo done'], { stdin: true });
  assert.is((await runHelper(b.bundle)).code, 0);
  const client = await AttachClient.open(b.sock, true);
  client.write('abc\n');
  client.end();
  await client.closed;
  assert.is(client.text(), 'abc\ndone\n');
  assert.is((await waitForExit(b.bundle)).code, 0);
});

test('the helper survives its spawner being SIGKILLed; the container keeps logging', async () => {
  const b = bundleFor(['sh', '-c', 'while true; do echo tick; sleep 0.1; done'], { init: true });
  // The spawner (and its whole process group) dies hard, as a crashing daemon would.
  const spawner = spawn('sh', ['-c', `"${ensureHelper()}" run "${b.bundle}"; sleep 60`], { detached: true, stdio: 'ignore' });
  await waitForFile(join(b.bundle, 'state'));
  process.kill(-spawner.pid!, 'SIGKILL');
  await sleep(200);
  const before = readJsonLog(b.logPath).length;
  await sleep(500);
  const after = readJsonLog(b.logPath).length;
  assert.ok(after > before, `log lines ${before} -> ${after}`);
  const helperPid = Number(readFileSync(join(b.bundle, 'helper.pid'), 'utf8'));
  assert.ok(isAlive(helperPid));
  assert.is(await ctl(b.sock, 'signal 9'), 'ok');
  const exit = await waitForExit(b.bundle);
  assert.is(exit.code, 137);
  assert.is(exit.signal, 9);
});

test('signal 15 stops a sleep 100 (init forwards it)', async () => {
  const b = bundleFor(['sleep', '100'], { init: true });
  assert.is((await runHelper(b.bundle)).code, 0);
  const state = await ctl(b.sock, 'state');
  assert.match(state, /^ok pid \d+ status running$/);
  const t0 = Date.now();
  assert.is(await ctl(b.sock, 'signal 15'), 'ok');
  const exit = await waitForExit(b.bundle, 5000);
  assert.ok(Date.now() - t0 < 3000);
  assert.is(exit.code, 143);
});

test('after exit: the exit file is complete, no temp files, ctl.sock and helper.pid are gone, helper exited', async () => {
  const b = bundleFor(['sh', '-c', 'sleep 0.2; exit 7']);
  assert.is((await runHelper(b.bundle)).code, 0);
  const helperPid = Number(readFileSync(join(b.bundle, 'helper.pid'), 'utf8'));
  const state = readFileSync(join(b.bundle, 'state'), 'utf8');
  assert.match(state, /^pid \d+\nstarted \d{4}-\d\d-\d\dT[\d:.]+Z\n$/);
  // Poll fast: whenever `exit` is visible it must already be whole.
  let text = '';
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (existsSync(join(b.bundle, 'exit'))) { text = readFileSync(join(b.bundle, 'exit'), 'utf8'); break; }
    await sleep(1);
  }
  assert.match(text, /^code 7\nsignal 0\nfinished \d{4}-\d\d-\d\dT[\d:.]+Z\n$/);
  for (let i = 0; i < 100 && isAlive(helperPid); i++) await sleep(20);
  assert.not.ok(isAlive(helperPid), 'helper still running');
  assert.equal(readdirSync(b.bundle).sort(), ['container.log', 'exit', 'spec', 'state']);
});

test('no mounts are left on the host after the container exits', async () => {
  const r = await runToExit(['sh', '-c', 'echo ok'], { tty: true });
  assert.is(r.exit.code, 0);
  assert.equal(hostMountsContaining(rootfsDir), []);
  assert.equal(hostMountsContaining(r.dir), []);
});

test('log: control characters, quotes and invalid UTF-8 are valid JSON; long lines split; rotation', async () => {
  const r = await runToExit(['sh', '-c', `printf 'a"b\\\\c\\001\\033[0m\\377\\303\\251\\n'`]);
  assert.is(r.stdout, 'a"b\\c\u0001\u001b[0m\ufffd\u00e9\n');

  const b = bundleFor(['sh', '-c', 'i=0; while [ $i -lt 200 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done'],
    { log: { path: 'rot.log', maxBytes: 2000, maxFiles: 3 } });
  assert.is((await runHelper(b.bundle)).code, 0);
  await waitForExit(b.bundle);
  const files = readdirSync(b.bundle).filter((f) => f.startsWith('rot.log')).sort();
  assert.equal(files, ['rot.log', 'rot.log.1', 'rot.log.2']);
  for (const f of files) assert.ok(readFileSync(join(b.bundle, f)).length <= 2000, f);
  const last = readJsonLog(join(b.bundle, 'rot.log')).map((l) => l.log);
  assert.ok(last[last.length - 1].startsWith('line-199-'));

  const big = await runToExit(['sh', '-c', 'head -c 40000 /dev/zero | tr "\\0" x; echo']);
  const records = readJsonLog(big.logPath);
  assert.ok(records.length >= 3, `${records.length} records`);
  assert.is(records.map((l) => l.log).join(''), 'x'.repeat(40000) + '\n');
});

test('a bad spec fails the launcher with a message and leaves an exit file', async () => {
  const b = makeBundle();
  cleanups.push(b.cleanup);
  writeFileSync(join(b.bundle, 'spec'), 'berth-helper-spec 1\nrootfs\t/x\narg\tsh\nfrobnicate\t1\n');
  const r = await runHelper(b.bundle);
  assert.is(r.code, 1);
  assert.match(r.stderr, /unknown key frobnicate/);
  const exit = await waitForExit(b.bundle);
  assert.is(exit.code, 125);
  assert.match(exit.error!, /unknown key frobnicate/);
});

test('exec runs a process in the running container (namespaces, stdio, exit)', async () => {
  const b = bundleFor(['sleep', '100'], { init: true, hostname: 'host-a' });
  assert.is((await runHelper(b.bundle)).code, 0);
  writeFileSync(join(b.bundle, 'exec1.spec'), serializeExecSpec({
    args: ['sh', '-c', 'hostname; tr "\\0" " " < /proc/1/cmdline; echo; grep CapEff /proc/self/status; cat; exit 4'],
    env: ['PATH=/bin'], caps: ['CHOWN'], stdin: true, ctl: 'exec1.sock', exit: 'exec1.exit', waitStart: true,
  }));
  const r = await runHelper(b.bundle, ['exec', b.bundle, join(b.bundle, 'exec1.spec')]);
  assert.is(r.code, 0, r.stderr);
  const client = await AttachClient.open(join(b.bundle, 'exec1.sock'), true);
  assert.is(await ctl(join(b.bundle, 'exec1.sock'), 'start'), 'ok');
  client.write('from-stdin\n');
  client.end();
  await client.closed;
  const exit = await waitForExit(b.bundle, 5000, 'exec1.exit');
  assert.is(exit.code, 4);
  const lines = client.text().split('\n');
  assert.is(lines[0], 'host-a');
  assert.match(lines[1], /berth-helper run /); // the init is PID 1
  assert.is(lines[2], 'CapEff:\t0000000000000001');
  assert.is(lines[3], 'from-stdin');
  // The container itself is untouched.
  assert.match(await ctl(b.sock, 'state'), /status running/);
  await ctl(b.sock, 'signal 9');
  await waitForExit(b.bundle);
});

test('exec with a tty from the container devpts', async () => {
  const b = bundleFor(['sleep', '100']);
  assert.is((await runHelper(b.bundle)).code, 0);
  writeFileSync(join(b.bundle, 'exec3.spec'), serializeExecSpec({
    args: ['sh', '-c', 'tty; read x; echo "x=$x"'], tty: true, stdin: true, ctl: 'exec3.sock', exit: 'exec3.exit', waitStart: true,
  }));
  assert.is((await runHelper(b.bundle, ['exec', b.bundle, join(b.bundle, 'exec3.spec')])).code, 0);
  const client = await AttachClient.open(join(b.bundle, 'exec3.sock'), true);
  assert.is(await ctl(join(b.bundle, 'exec3.sock'), 'start'), 'ok');
  await client.waitFor(/\/dev\/pts\/\d+\r\n/); // type only once the terminal's echo cannot interleave
  client.write('42\n');
  await client.closed;
  assert.match(client.text(), /^\/dev\/pts\/\d+\r\n42\r\nx=42\r\n$/);
  assert.is((await waitForExit(b.bundle, 5000, 'exec3.exit')).code, 0);
});

test('exec of a missing command reports 127 with the error text', async () => {
  const b = bundleFor(['sleep', '100']);
  assert.is((await runHelper(b.bundle)).code, 0);
  writeFileSync(join(b.bundle, 'exec2.spec'), serializeExecSpec({ args: ['nope'], ctl: 'exec2.sock', exit: 'exec2.exit' }));
  const r = await runHelper(b.bundle, ['exec', b.bundle, join(b.bundle, 'exec2.spec')]);
  assert.is(r.code, 0, r.stderr);
  const exit = await waitForExit(b.bundle, 5000, 'exec2.exit');
  assert.is(exit.code, 127);
  assert.is(exit.error, 'exec: "nope": executable file not found in $PATH');
  killBundle(b.bundle);
});

test('user, groups, cwd and rlimits from the spec; a non-root user has no effective caps', async () => {
  const r = await runToExit(['sh', '-c', 'id; pwd; ulimit -n; ulimit -Hn; grep CapEff /proc/self/status'], {
    uid: 65534, gid: 65534, groups: [5], cwd: '/tmp', rlimits: [['nofile', 1024, 2048]],
  });
  const lines = r.stdout.split('\n');
  assert.match(lines[0], /^uid=65534\(nobody\) gid=65534\(nogroup\) groups=5\(tty\)$/);
  assert.equal(lines.slice(1, 5), ['/tmp', '1024', '2048', 'CapEff:\t0000000000000000']);
});

test('cgroup_procs: the container starts inside the given cgroup', async () => {
  const pids = '/sys/fs/cgroup/pids';
  if (!existsSync(join(pids, 'cgroup.procs'))) { console.log('  (no v1 pids controller here: skipped)'); return; }
  const group = join(pids, `berth-helper-test-${process.pid}`);
  mkdirSync(group);
  cleanups.push(() => { try { rmdirSync(group); } catch { /* busy or gone */ } });
  const r = await runToExit(['cat', '/proc/self/cgroup'], { cgroupProcs: [join(group, 'cgroup.procs')] });
  assert.match(r.stdout, new RegExp(`:pids:/berth-helper-test-${process.pid}\\n`));
  // With a cgroup namespace, created after joining, the container sees its cgroup as the root.
  const ns = await runToExit(['cat', '/proc/self/cgroup'], {
    cgroupProcs: [join(group, 'cgroup.procs')], namespaces: [...dockerDefaults().namespaces!, 'cgroup'],
  });
  assert.match(ns.stdout, /:pids:\/\n/);
});

test('netns joins an existing network namespace; a new one gets loopback up', async () => {
  const fresh = await runToExit(['cat', '/sys/class/net/lo/flags']);
  assert.is(fresh.stdout, '0x9\n'); // IFF_UP | IFF_LOOPBACK
  const name = `berth-helper-test-${process.pid}`;
  execFileSync('ip', ['netns', 'add', name]);
  cleanups.push(() => execFileSync('ip', ['netns', 'del', name]));
  const defaults = dockerDefaults();
  const r = await runToExit(['readlink', '/proc/self/ns/net'], {
    namespaces: defaults.namespaces!.filter((n) => n !== 'net'), netns: `/run/netns/${name}`,
  });
  assert.is(r.stdout, `net:[${statSync(`/run/netns/${name}`).ino}]\n`);
});

test('a client that stops reading is dropped; the container is never held back', async () => {
  const b = bundleFor(['sh', '-c', 'head -c 20000000 /dev/zero; echo done'], { waitStart: true, log: undefined });
  assert.is((await runHelper(b.bundle)).code, 0);
  const slow = await AttachClient.open(b.sock);
  slow.pause();
  assert.is(await ctl(b.sock, 'start'), 'ok');
  const exit = await waitForExit(b.bundle, 15000);
  assert.is(exit.code, 0);
  slow.resume(); // it was cut off: what it reads now ends early
  await slow.closed;
  assert.ok(slow.stdout.reduce((n, c) => n + c.length, 0) < 20000000);
});

test.run();
