// Bridge networking through the real daemon and the berth CLI: containers reach each other
// by IP and (on a user network) by name, published ports answer on 127.0.0.1 and from a
// separate netns playing a LAN host, user networks are isolated, --network none has only
// lo, run/rm cycles leave nothing behind, and kill -9 + restart keeps running containers'
// networking while dropping what containers that died meanwhile held. Needs root, ip, nft
// and a prior `npm run build`. BERTH_NET_CYCLES sets the number of run/rm cycles.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makeTempDir, removeTestNetworking, startDaemon, testNetworkOf, REPO_ROOT, type TestDaemon, type RunResult } from '../helpers/daemon';

const IMAGE = 'localhost/busybox';
const CYCLES = Number(process.env.BERTH_NET_CYCLES || 30);
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar')) && (existsSync('/usr/sbin/nft') || existsSync('/sbin/nft'));
/** httpd with a page, so a GET answers 200 with a known body. */
const HTTPD = ['sh', '-c', 'mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www'];
/**
 * Inside containers: busybox wget under `timeout` (its own -T crashes in busybox 1.35),
 * started from a shell so that wget is not PID 1, which would ignore timeout's SIGTERM.
 */
const wget = (url: string) => ['sh', '-c', `timeout 5 wget -q -O - ${url}; exit $?`];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let daemon: TestDaemon | undefined;
let lanNs: string | undefined;
let lanVeth: string | undefined;

async function ok(d: TestDaemon, args: string[], code = 0): Promise<RunResult> {
  const r = await d.cli(args, { timeoutMs: 60_000 });
  assert.is(r.code, code, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Host tools without stdin (the shared `run` helper writes to stdin, which a quick `ip` may have closed). */
async function sh(cmd: string, args: string[]): Promise<RunResult> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function leases(d: TestDaemon): { sandboxes: Record<string, unknown>; endpoints: Array<{ ip: string; hostVeth: string }> } {
  return JSON.parse(readFileSync(join(d.dataRoot, 'network', 'leases.json'), 'utf8'));
}

/** From the host (or a netns of it): curl, since busybox 1.35's `wget -T` crashes. */
async function httpGet(url: string, netns?: string): Promise<RunResult> {
  const args = ['-sS', '-m', '5', url];
  return netns ? sh('ip', ['netns', 'exec', netns, 'curl', ...args]) : sh('curl', args);
}

test.before(async () => {
  if (!canRun) return;
  daemon = await startDaemon();
  await ok(daemon, ['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
});

test.after(async () => {
  if (lanNs) await sh('ip', ['netns', 'del', lanNs]);
  if (lanVeth) await sh('ip', ['link', 'del', lanVeth]);
  if (daemon) {
    const all = (await daemon.cli(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (all.length) await daemon.cli(['rm', '-f', ...all]);
    await daemon.cli(['network', 'prune', '-f']);
    await daemon.stop();
  }
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('a container reaches another by IP on the default bridge, with its name and address in /etc/hosts', async () => {
  const d = daemon!;
  await ok(d, ['run', '-d', '--name', 'web', IMAGE, ...HTTPD]);
  const ip = (await ok(d, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'web'])).stdout.trim();
  assert.match(ip, /^10\.\d+\.\d+\.\d+$/);
  const got = await ok(d, ['run', '--rm', IMAGE, ...wget(`http://${ip}/`)]);
  assert.match(got.stdout, /^hello-from-/);
  const hosts = (await ok(d, ['exec', 'web', 'cat', '/etc/hosts'])).stdout;
  assert.match(hosts, new RegExp(`^${ip.replace(/\./g, '\\.')}\\t\\w+ web\\t# berth$`, 'm'));
  const resolv = (await ok(d, ['exec', 'web', 'cat', '/etc/resolv.conf'])).stdout;
  assert.not.match(resolv, /nameserver 127\./);
  const route = (await ok(d, ['exec', 'web', 'ip', 'route'])).stdout;
  assert.match(route, /^default via /m);
});

t('-p 18080:80 answers on 127.0.0.1 and from another netns acting as a LAN host; ps and port show it', async () => {
  const d = daemon!;
  await ok(d, ['run', '-d', '--name', 'pub', '-p', '18080:80', IMAGE, ...HTTPD]);
  await until('httpd to answer on 127.0.0.1:18080', async () => (await httpGet('http://127.0.0.1:18080/')).code === 0);
  assert.match((await httpGet('http://127.0.0.1:18080/')).stdout, /^hello-from-/);
  assert.match((await ok(d, ['ps', '--filter', 'name=pub'])).stdout, /0\.0\.0\.0:18080->80\/tcp/);
  assert.is((await ok(d, ['port', 'pub', '80'])).stdout, '0.0.0.0:18080\n');

  // A LAN host: its own netns, a veth to the host, a /30 of its own.
  const tag = randomBytes(3).toString('hex');
  lanNs = `berth-test-lan-${tag}`;
  lanVeth = `vl${tag}`;
  const third = parseInt(tag.slice(0, 2), 16);
  const hostIp = `10.251.${third}.1`;
  await sh('ip', ['netns', 'add', lanNs]);
  for (const cmd of [
    ['link', 'add', lanVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lanNs],
    ['addr', 'add', `${hostIp}/30`, 'dev', lanVeth],
    ['link', 'set', lanVeth, 'up'],
  ]) assert.is((await sh('ip', cmd)).code, 0, cmd.join(' '));
  for (const cmd of [['link', 'set', 'lo', 'up'], ['addr', 'add', `10.251.${third}.2/30`, 'dev', 'eth0'], ['link', 'set', 'eth0', 'up']]) {
    assert.is((await sh('ip', ['-n', lanNs, ...cmd])).code, 0, cmd.join(' '));
  }
  const fromLan = await httpGet(`http://${hostIp}:18080/`, lanNs);
  assert.is(fromLan.code, 0, fromLan.stderr);
  assert.match(fromLan.stdout, /^hello-from-/);
  // Not published: the LAN cannot open connections into the bridge.
  const ctrIp = (await ok(d, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'pub'])).stdout.trim();
  await sh('ip', ['-n', lanNs, 'route', 'add', ctrIp, 'via', hostIp]);
  assert.ok((await httpGet(`http://${ctrIp}/`, lanNs)).code !== 0, 'unpublished access from the LAN must fail');
  const taken = await d.cli(['run', '-d', '-p', '18080:80', IMAGE, 'sleep', '5']);
  assert.ok(taken.code !== 0 && /already allocated/.test(taken.stderr), taken.stderr);
});

t('user networks: name resolution inside, isolation between', async () => {
  const d = daemon!;
  await ok(d, ['network', 'create', 'front']);
  await ok(d, ['network', 'create', 'back']);
  assert.match((await ok(d, ['network', 'ls', '--format', '{{.Name}}'])).stdout, /^back\nbridge\nfront\nhost\nnone\n$/);
  await ok(d, ['run', '-d', '--name', 'api', '--network', 'front', IMAGE, ...HTTPD]);
  const byName = await ok(d, ['run', '--rm', '--network', 'front', IMAGE, ...wget('http://api/')]);
  assert.match(byName.stdout, /^hello-from-/);
  const apiIp = (await ok(d, ['inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'api'])).stdout.trim();
  const cross = await d.cli(['run', '--rm', '--network', 'back', IMAGE, ...wget(`http://${apiIp}/`)]);
  assert.ok(cross.code !== 0, `a container on another network reached ${apiIp}: ${cross.stdout}`);
  const crossDefault = await d.cli(['run', '--rm', IMAGE, ...wget(`http://${apiIp}/`)]);
  assert.ok(crossDefault.code !== 0, 'the default bridge must not reach a user network');
  const inspect = JSON.parse((await ok(d, ['network', 'inspect', 'front'])).stdout) as Array<{ Containers: Record<string, { Name: string }> }>;
  assert.equal(Object.values(inspect[0]!.Containers).map((c) => c.Name), ['api']);

  // connect: a running container on back gets an interface on front and resolves api.
  await ok(d, ['run', '-d', '--name', 'joiner', '--network', 'back', IMAGE, 'sleep', '60']);
  await ok(d, ['network', 'connect', 'front', 'joiner']);
  assert.match((await ok(d, ['exec', 'joiner', ...wget('http://api/')])).stdout, /^hello-from-/);
  await ok(d, ['network', 'disconnect', 'front', 'joiner']);
  assert.not.match((await ok(d, ['exec', 'api', 'cat', '/etc/hosts'])).stdout, /joiner/);
  const busy = await d.cli(['network', 'rm', 'front']);
  assert.ok(busy.code !== 0 && /active endpoints/.test(busy.stderr), busy.stderr);
  await ok(d, ['rm', '-f', 'api', 'joiner']);
  const users = JSON.parse((await ok(d, ['network', 'inspect', 'front', 'back'])).stdout) as Array<{ Containers: object }>;
  assert.equal(users.map((n) => Object.keys(n.Containers).length), [0, 0], 'endpoints left on user networks');
  await ok(d, ['network', 'rm', 'front', 'back']);
});

t('--network none has only lo; host shares the host; container: joins another', async () => {
  const d = daemon!;
  assert.is((await ok(d, ['run', '--rm', '--network', 'none', IMAGE, 'ls', '/sys/class/net'])).stdout, 'lo\n');
  const seen = (await ok(d, ['run', '--rm', '--network', 'host', IMAGE, 'ls', '/sys/class/net'])).stdout.split('\n');
  assert.ok(seen.includes(testNetworkOf(d.dataRoot).bridge), `host networking shows the host's links: ${seen.join(' ')}`);
  await ok(d, ['run', '-d', '--name', 'owner', IMAGE, ...HTTPD]);
  const shared = await ok(d, ['run', '--rm', '--network', 'container:owner', IMAGE, ...wget('http://127.0.0.1/')]);
  assert.match(shared.stdout, /^hello-from-/);
  await ok(d, ['rm', '-f', 'owner']);
});

t(`${CYCLES} run --rm cycles with a published port leave no veth, address, lease, netns or rule behind`, async () => {
  const d = daemon!;
  await ok(d, ['rm', '-f', 'web', 'pub']);
  const { bridge, owner } = testNetworkOf(d.dataRoot);
  const started = Date.now();
  for (let i = 0; i < CYCLES; i++) await ok(d, ['run', '--rm', '-p', '80', IMAGE, 'true']);
  const perRun = (Date.now() - started) / CYCLES;
  assert.equal(readdirSync(`/sys/class/net/${bridge}/brif`), [], 'veths left on the bridge');
  const left = leases(d);
  assert.equal(left.endpoints, []);
  assert.equal(left.sandboxes, {});
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${owner}-`)) : [];
  assert.equal(netns, []);
  const nat = (await sh('nft', ['list', 'table', 'ip', `${owner}-nat`])).stdout;
  assert.not.match(nat, /dnat to/);
  const addrs = (await sh('ip', ['-o', '-4', 'addr', 'show', 'dev', bridge])).stdout.trim().split('\n');
  assert.is(addrs.length, 1, 'only the gateway address on the bridge');
  console.log(`  ${CYCLES} cycles, ${perRun.toFixed(0)} ms per run --rm`);
});

test('kill -9 + restart keeps running containers networked and drops what dead ones held', async () => {
  if (!canRun) return;
  const roots = makeTempDir('berth-net-restore-');
  const dataRoot = join(roots, 'data');
  const execRoot = join(roots, 'exec');
  const { bridge, owner } = testNetworkOf(dataRoot);
  let d: TestDaemon | undefined = await startDaemon({ dataRoot, execRoot });
  try {
    await ok(d, ['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
    await ok(d, ['run', '-d', '--name', 'stays', '-p', '18081:80', IMAGE, ...HTTPD]);
    await ok(d, ['run', '-d', '--name', 'dies', '-p', '18082:80', IMAGE, 'sh', '-c', 'sleep 2']);
    const staysIp = (await ok(d, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'stays'])).stdout.trim();
    await until('stays to answer', async () => (await httpGet('http://127.0.0.1:18081/')).code === 0);
    await d.kill();
    d = undefined;
    await sleep(3000); // `dies` exits while no daemon runs
    assert.is((await httpGet('http://127.0.0.1:18081/')).code, 0, 'published port works without a daemon');

    d = await startDaemon({ dataRoot, execRoot });
    assert.is((await ok(d, ['inspect', '-f', '{{.State.Status}}', 'dies'])).stdout.trim(), 'exited');
    assert.match((await httpGet('http://127.0.0.1:18081/')).stdout, /^hello-from-/);
    assert.match((await ok(d, ['run', '--rm', IMAGE, ...wget(`http://${staysIp}/`)])).stdout, /^hello-from-/);
    const nat = (await sh('nft', ['list', 'table', 'ip', `${owner}-nat`])).stdout;
    assert.match(nat, /tcp dport 18081 dnat to/);
    assert.not.match(nat, /18082/);
    assert.is(readdirSync(`/sys/class/net/${bridge}/brif`).length, 1, 'only the veth of `stays`');
    assert.equal(leases(d).endpoints.map((e) => e.ip), [staysIp]);
    await ok(d, ['rm', '-f', 'stays', 'dies']);
    assert.equal(leases(d).endpoints, []);
  } finally {
    await d?.cli(['rm', '-f', 'stays', 'dies']).catch(() => {});
    await d?.stop();
    removeTestNetworking(dataRoot, bridge, owner);
    rmSync(roots, { recursive: true, force: true });
  }
});

test.run();
