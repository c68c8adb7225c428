// Bridge networking through the real daemon and the berth CLI, once per firewall backend
// (nftables, then iptables; the daemon gets --firewall-backend): containers reach each other
// by IP and (on a user network) by name, published ports answer on 127.0.0.1 and from a
// separate netns playing a LAN host, user networks are isolated, --network none has only
// lo, run/rm cycles leave nothing behind, kill -9 + restart keeps running containers'
// networking while dropping what containers that died meanwhile held, and a pre-existing
// fw4-like nft table is byte-for-byte unchanged after the session. Needs root, ip, nft
// (iptables for its suite) and a prior `npm run build`. BERTH_NET_CYCLES sets the number
// of run/rm cycles per backend (default 100: 28 s with nftables, 32 s with iptables on an
// idle 2-core VM, 60-75 s at load average 6; the whole file takes about 2 min idle);
// BERTH_NET_BACKENDS picks the suites (default nftables,iptables; iptables-legacy runs the
// iptables backend with the legacy flavour, through iptables* links on the daemon's PATH).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makeTempDir, removeTestNetworking, startDaemon, testNetworkOf, REPO_ROOT, type TestDaemon, type RunResult, until } from '../helpers/daemon';
import { iptablesChains } from '../../src/net-bridge/iptables';

type Backend = 'nftables' | 'iptables' | 'iptables-legacy';
const IMAGE = 'localhost/busybox';
const CYCLES = Number(process.env.BERTH_NET_CYCLES || 100);
const BACKENDS = (process.env.BERTH_NET_BACKENDS || 'nftables,iptables').split(',').filter(Boolean) as Backend[];
const has = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar')) && has('nft');
/** httpd with a page, so a GET answers 200 with a known body. */
const HTTPD = ['sh', '-c', 'mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www'];
/**
 * Inside containers: busybox wget under `timeout` (its own -T crashes in busybox 1.35),
 * started from a shell so that wget is not PID 1, which would ignore timeout's SIGTERM.
 */
const wget = (url: string) => ['sh', '-c', `timeout 5 wget -q -O - ${url}; exit $?`];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ok(d: TestDaemon, args: string[], code = 0): Promise<RunResult> {
  const r = await d.cli(args, { timeoutMs: 60_000 });
  assert.is(r.code, code, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Host tools without stdin (the shared `run` helper writes to stdin, which a quick `ip` may have closed). */
async function sh(cmd: string, args: string[], input?: string): Promise<RunResult> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], ...(input === undefined ? {} : { input }) });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function leases(d: TestDaemon): { sandboxes: Record<string, unknown>; endpoints: Array<{ ip: string; hostVeth: string }> } {
  return JSON.parse(readFileSync(join(d.dataRoot, 'network', 'leases.json'), 'utf8'));
}

/** From the host (or a netns of it): curl, since busybox 1.35's `wget -T` crashes. */
async function httpGet(url: string, netns?: string): Promise<RunResult> {
  const args = ['-sS', '-m', '5', url];
  return netns ? sh('ip', ['netns', 'exec', netns, 'curl', ...args]) : sh('curl', args);
}

/** The published-port (DNAT) rules the daemon's backend holds now, one per line. */
async function dnatRules(backend: Backend, owner: string): Promise<string> {
  const r = backend === 'nftables'
    ? await sh('nft', ['list', 'table', 'ip', `${owner}-nat`])
    : await sh(backend, ['-w', '-t', 'nat', '-S', iptablesChains(owner).dnat]);
  return r.stdout.split('\n').filter((l) => /dnat to|-j DNAT/.test(l)).join('\n');
}

/** The nft tables that exist now, as "family name". */
async function nftTables(): Promise<string[]> {
  return (await sh('nft', ['list', 'tables'])).stdout.split('\n').filter(Boolean).map((l) => l.replace(/^table /, ''));
}

function scenarios(backend: Backend): void {
  const test = suite(`network (${backend})`);
  const args = ['--firewall-backend', backend === 'nftables' ? 'nftables' : 'iptables'];
  const ipt = backend === 'iptables-legacy' ? 'iptables-legacy' : 'iptables';
  const usable = canRun && (backend === 'nftables' || has(ipt));
  /** The legacy flavour: the daemon finds `iptables` and `iptables-restore` as links to the legacy tools. */
  let env: NodeJS.ProcessEnv | undefined;
  const tag = randomBytes(3).toString('hex');
  /** What fw4 looks like from far away: its own inet table with hooked chains and rules. */
  const fw4Table = `fw4test${tag}`;
  let fw4Before = '';
  let daemon: TestDaemon | undefined;
  let lanNs: string | undefined;
  let lanVeth: string | undefined;

  test.before(async () => {
    if (!usable) return;
    const fw4 = `table inet ${fw4Table} {
  chain input { type filter hook input priority filter; policy accept; ct state established,related accept; iifname "lo" accept; }
  chain forward { type filter hook forward priority filter; policy accept; ct state invalid drop; }
  chain srcnat { type nat hook postrouting priority srcnat; policy accept; }
  chain custom { tcp dport 22 counter accept; }
}
`;
    const r = await sh('nft', ['-f', '-'], fw4);
    assert.is(r.code, 0, r.stderr);
    fw4Before = (await sh('nft', ['list', 'table', 'inet', fw4Table])).stdout;
    if (backend === 'iptables-legacy') {
      const bin = makeTempDir('berth-legacy-bin-');
      for (const tool of ['iptables', 'iptables-restore', 'iptables-save']) symlinkSync(join('/usr/sbin', tool.replace('iptables', 'iptables-legacy')), join(bin, tool));
      env = { PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
    }
    daemon = await startDaemon({ args, ...(env ? { env } : {}) });
    await ok(daemon, ['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
  });

  test.after(async () => {
    if (usable) await sh('nft', ['delete', 'table', 'inet', fw4Table]);
    if (env) rmSync(env.PATH!.split(':')[0]!, { recursive: true, force: true });
    if (lanNs) await sh('ip', ['netns', 'del', lanNs]);
    if (lanVeth) await sh('ip', ['link', 'del', lanVeth]);
    if (daemon) {
      try {
        const all = (await daemon.cli(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
        if (all.length) await daemon.cli(['rm', '-f', ...all]);
        await daemon.cli(['network', 'prune', '-f']);
      } finally {
        await daemon.stop();
      }
    }
  });

  const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (usable) await fn(); });

  t('the daemon uses the backend it was given and touches only its own firewall objects', async () => {
    const { owner } = testNetworkOf(daemon!.dataRoot);
    const tables = await nftTables();
    const mine = [`inet ${owner}`, `ip ${owner}-nat`];
    if (backend === 'nftables') {
      for (const table of mine) assert.ok(tables.includes(table), `${table} missing: ${tables.join(', ')}`);
    } else {
      for (const table of mine) assert.not.ok(tables.includes(table), `${table} made by the iptables backend`);
      const c = iptablesChains(owner);
      assert.is((await sh(ipt, ['-w', '-C', 'FORWARD', '-j', c.forward])).code, 0, 'jump from FORWARD');
      for (const chain of [c.pre, c.out, c.post]) {
        const builtin = chain === c.pre ? 'PREROUTING' : chain === c.out ? 'OUTPUT' : 'POSTROUTING';
        assert.is((await sh(ipt, ['-w', '-t', 'nat', '-C', builtin, '-j', chain])).code, 0, `jump from ${builtin}`);
      }
    }
  });

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
    assert.is(await dnatRules(backend, owner), '', 'DNAT rules left behind');
    const addrs = (await sh('ip', ['-o', '-4', 'addr', 'show', 'dev', bridge])).stdout.trim().split('\n');
    assert.is(addrs.length, 1, 'only the gateway address on the bridge');
    console.log(`  ${backend}: ${CYCLES} cycles in ${((Date.now() - started) / 1000).toFixed(1)} s, ${perRun.toFixed(0)} ms per run --rm`);
  });

  t('kill -9 + restart keeps running containers networked and drops what dead ones held', async () => {
    const roots = makeTempDir('berth-net-restore-');
    const dataRoot = join(roots, 'data');
    const execRoot = join(roots, 'exec');
    const { bridge, owner } = testNetworkOf(dataRoot);
    let d: TestDaemon | undefined = await startDaemon({ dataRoot, execRoot, args, ...(env ? { env } : {}) });
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

      d = await startDaemon({ dataRoot, execRoot, args, ...(env ? { env } : {}) });
      assert.is((await ok(d, ['inspect', '-f', '{{.State.Status}}', 'dies'])).stdout.trim(), 'exited');
      assert.match((await httpGet('http://127.0.0.1:18081/')).stdout, /^hello-from-/);
      assert.match((await ok(d, ['run', '--rm', IMAGE, ...wget(`http://${staysIp}/`)])).stdout, /^hello-from-/);
      const nat = await dnatRules(backend, owner);
      assert.match(nat, /dport 18081 (dnat to|-j DNAT)/);
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

  t('after the session the fw4-like table is byte-for-byte unchanged', async () => {
    assert.is((await sh('nft', ['list', 'table', 'inet', fw4Table])).stdout, fw4Before);
  });

  test.run();
}

for (const backend of BACKENDS) scenarios(backend);
