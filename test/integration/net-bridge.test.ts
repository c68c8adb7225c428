// net-bridge against the real kernel, without a daemon: IPAM leases persist and are never
// handed out twice across restarts, bridge/veth/netns setup and teardown, the nft tables'
// contents, the iptables fallback's chains, and a pre-existing fw4-like table that stays
// byte-for-byte the same. Needs root, ip and nft; every bridge, netns and table it makes is
// removed in test.after, even after a failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BridgeNetworking, IptablesFirewall, NftablesFirewall, ownerOf, renderNftScript, allocate, parseCidr } from '../../src/net-bridge';
import { removeTestNetworking } from '../helpers/daemon';

const canRun = process.getuid?.() === 0 && spawnSync('nft', ['--version']).status === 0 && spawnSync('ip', ['-V']).status === 0;
const tag = randomBytes(4).toString('hex');
const bridge = `bi${tag}`;
const owner = ownerOf(bridge);
const fw4Table = `fw4test${tag}`;
const bip = `10.${200 + (parseInt(tag.slice(0, 2), 16) % 40)}.${parseInt(tag.slice(2, 4), 16)}.1/24`;
let root = '';

const sh = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
};
const newId = () => randomBytes(32).toString('hex');

function open(firewall = new NftablesFirewall(owner)): BridgeNetworking {
  return new BridgeNetworking({ dataRoot: join(root, 'data'), bridge, bip, firewall });
}

function hostsFile(name: string): string {
  const path = join(root, `${name}.hosts`);
  writeFileSync(path, '127.0.0.1\tlocalhost\n127.0.1.1\tctr\n');
  return path;
}

test.before(() => {
  if (!canRun) return;
  root = mkdtempSync(join(tmpdir(), 'berth-net-'));
  // What fw4 looks like from far away: its own inet table with hooked chains and rules.
  const fw4 = `table inet ${fw4Table} {
  chain input { type filter hook input priority filter; policy accept; ct state established,related accept; iifname "lo" accept; }
  chain forward { type filter hook forward priority filter; policy accept; ct state invalid drop; }
  chain srcnat { type nat hook postrouting priority srcnat; policy accept; }
  chain custom { tcp dport 22 counter accept; }
}
`;
  const r = spawnSync('nft', ['-f', '-'], { input: fw4, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
});

test.after(() => {
  if (!canRun) return;
  removeTestNetworking(join(root, 'data'), bridge, owner);
  sh('nft', ['delete', 'table', 'inet', fw4Table]);
  rmSync(root, { recursive: true, force: true });
});

const t = (name: string, fn: () => Promise<void> | void): void => test(name, async () => { if (canRun) await fn(); });

t('allocation skips taken addresses, the gateway and the last one handed out', () => {
  const s = parseCidr('10.9.0.0/29');
  assert.is(allocate(s, new Set(['10.9.0.1'])), '10.9.0.2');
  assert.is(allocate(s, new Set(['10.9.0.1']), '10.9.0.2'), '10.9.0.3');
  assert.is(allocate(s, new Set(['10.9.0.1', '10.9.0.2']), '10.9.0.6'), '10.9.0.3');
  assert.throws(() => allocate(s, new Set(['10.9.0.1', '10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6'])), /no available/);
});

t('the nft script touches only berth tables', () => {
  const script = renderNftScript(owner, {
    networks: [{ bridge, subnet: '10.1.0.0/24', internal: false }, { bridge: 'br-x', subnet: '10.2.0.0/24', internal: false }],
    ports: [{ proto: 'tcp', hostIp: '', hostPort: 18080, containerPort: 80, bridge, containerIp: '10.1.0.2' }],
  });
  const tables = [...script.matchAll(/^(?:delete )?table (\S+) (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
  assert.equal([...new Set(tables)], [`inet ${owner}`, `ip ${owner}-nat`]);
  assert.match(script, 'tcp dport 18080 dnat to 10.1.0.2:80');
  assert.match(script, `iifname "${bridge}" oifname "br-x" drop`);
  assert.not.match(script, /flush ruleset/);
});

t('bridge, netns, veth and leases: set up, persisted across a restart, torn down; fw4 table unchanged', async () => {
  const fw4Before = sh('nft', ['list', 'table', 'inet', fw4Table]).stdout;
  let net = open();
  await net.init();
  assert.ok(existsSync(`/sys/class/net/${bridge}`));
  assert.match(sh('ip', ['-4', '-o', 'addr', 'show', 'dev', bridge]).stdout, bip);
  assert.ok(sh('nft', ['list', 'table', 'inet', owner]).code === 0, 'filter table exists');

  const a = newId(), b = newId();
  const nsA = await net.attach({ id: a, name: '/a', hostname: 'a', hostsPath: hostsFile('a'), hostConfig: { NetworkMode: 'bridge', PortBindings: { '80/tcp': [{ HostPort: '18090' }] } } });
  const nsB = await net.attach({ id: b, name: '/b', hostname: 'b', hostsPath: hostsFile('b'), hostConfig: { NetworkMode: 'bridge' } });
  assert.ok(nsA && existsSync(nsA) && nsB && existsSync(nsB));
  const ipA = (net.settings(a, { NetworkMode: 'bridge' }).NetworkSettings.IPAddress) as string;
  const ipB = (net.settings(b, { NetworkMode: 'bridge' }).NetworkSettings.IPAddress) as string;
  assert.is.not(ipA, ipB);
  const nameA = nsA!.split('/').pop()!;
  const linkA = sh('ip', ['-n', nameA, '-o', 'link', 'show', 'eth0']).stdout;
  assert.match(linkA, new RegExp(`mtu ${readFileSync(`/sys/class/net/${bridge}/mtu`, 'utf8').trim()}`));
  assert.match(sh('ip', ['-n', nameA, 'route']).stdout, /^default via /m);
  assert.is(sh('ip', ['netns', 'exec', nameA, 'busybox', 'ping', '-c', '1', '-W', '2', ipB]).code, 0, 'a reaches b through the bridge');
  assert.match(readFileSync(join(root, 'a.hosts'), 'utf8'), `${ipA}\ta\t# berth`);
  assert.match(sh('nft', ['list', 'table', 'ip', `${owner}-nat`]).stdout, `tcp dport 18090 dnat to ${ipA}:80`);

  // A restarted daemon (a new instance on the same data root) keeps the leases and never reuses them.
  net = open();
  await net.init();
  const c = newId();
  await net.attach({ id: c, name: '/c', hostConfig: { NetworkMode: 'bridge' } });
  const ipC = net.settings(c, { NetworkMode: 'bridge' }).NetworkSettings.IPAddress as string;
  assert.ok(![ipA, ipB].includes(ipC), `${ipC} was handed out twice`);
  const leases = JSON.parse(readFileSync(join(root, 'data', 'network', 'leases.json'), 'utf8')) as { endpoints: Array<{ ip: string }> };
  assert.equal(leases.endpoints.map((e) => e.ip).sort(), [ipA, ipB, ipC].sort());
  assert.throws(() => net.validate('no-such-network'), /not found/);

  // Detach frees the veth, the netns, the lease and the port rule.
  await net.detach(a);
  assert.not.ok(existsSync(nsA!));
  assert.is(readdirSync(`/sys/class/net/${bridge}/brif`).length, 2);
  assert.not.match(sh('nft', ['list', 'table', 'ip', `${owner}-nat`]).stdout, /18090/);

  // Reconcile after a restart where only c still runs.
  await net.reconcile(new Set([c]));
  assert.is(readdirSync(`/sys/class/net/${bridge}/brif`).length, 1);
  assert.is(net.leaseCount(), 1);
  await net.detach(c);
  assert.is(net.leaseCount(), 0);
  assert.equal(readdirSync(`/sys/class/net/${bridge}/brif`), []);

  await net.teardownAll();
  assert.is(sh('nft', ['list', 'table', 'inet', owner]).code !== 0, true, 'berth table removed');
  assert.is(sh('nft', ['list', 'table', 'inet', fw4Table]).stdout, fw4Before, 'fw4-like table unchanged');
});

t('user networks are isolated from each other and resolve peers by name', async () => {
  const net = open();
  await net.init();
  net.containerLookup = async (ref) => ({ id: ref, name: ref, running: true });
  await net.create({ Name: `n1${tag}`, IPAM: { Config: [{ Subnet: `10.${250}.${parseInt(tag.slice(4, 6), 16)}.0/28` }] } });
  await net.create({ Name: `n2${tag}` });
  const x = newId(), y = newId(), z = newId();
  const nsX = (await net.attach({ id: x, name: '/x', hostname: 'x', hostsPath: hostsFile('x'), hostConfig: { NetworkMode: `n1${tag}` } }))!;
  await net.attach({ id: y, name: '/y', hostname: 'y', hostsPath: hostsFile('y'), hostConfig: { NetworkMode: `n1${tag}` } });
  await net.attach({ id: z, name: '/z', hostname: 'z', hostConfig: { NetworkMode: `n2${tag}` } });
  const ip = (id: string, n: string) => (net.settings(id, { NetworkMode: n }).Networks[n] as { IPAddress: string }).IPAddress;
  const nameX = nsX.split('/').pop()!;
  assert.match(readFileSync(join(root, 'x.hosts'), 'utf8'), `${ip(y, `n1${tag}`)}\ty `);
  assert.match(readFileSync(join(root, 'y.hosts'), 'utf8'), `${ip(x, `n1${tag}`)}\tx `);
  assert.is(sh('ip', ['netns', 'exec', nameX, 'busybox', 'ping', '-c', '1', '-W', '2', ip(y, `n1${tag}`)]).code, 0);
  assert.is.not(sh('ip', ['netns', 'exec', nameX, 'busybox', 'ping', '-c', '1', '-W', '1', ip(z, `n2${tag}`)]).code, 0, 'n1 must not reach n2');
  await net.detach(y);
  assert.not.match(readFileSync(join(root, 'x.hosts'), 'utf8'), /\ty /);
  net.validate(`n1${tag}`);
  try { await net.remove(`n1${tag}`); assert.unreachable('a network in use was removed'); } catch (err) { assert.match(String(err), /active endpoints/); }
  await net.detach(x);
  await net.detach(z);
  assert.equal((await net.prune()).NetworksDeleted?.sort(), [`n1${tag}`, `n2${tag}`]);
  await net.teardownAll();
});

t('the iptables backend builds its own chains and removes them', async () => {
  if (spawnSync('iptables', ['-V']).status !== 0) return;
  const fw4Before = sh('nft', ['list', 'table', 'inet', fw4Table]).stdout;
  const fw = new IptablesFirewall(owner);
  const state = { networks: [{ bridge, subnet: '10.3.0.0/24', internal: false }], ports: [{ proto: 'tcp' as const, hostIp: '', hostPort: 18091, containerPort: 80, bridge, containerIp: '10.3.0.2' }] };
  await fw.apply(state);
  await fw.apply(state); // idempotent: one jump per built-in chain
  const nat = sh('iptables', ['-w', '-t', 'nat', '-S']).stdout;
  assert.match(nat, /--dport 18091 -j DNAT --to-destination 10\.3\.0\.2:80/);
  assert.is(nat.split('\n').filter((l) => l.includes('-A PREROUTING') && l.includes('-PRE')).length, 1);
  await fw.remove();
  assert.not.match(sh('iptables', ['-w', '-t', 'nat', '-S']).stdout, /18091/);
  assert.is(sh('nft', ['list', 'table', 'inet', fw4Table]).stdout, fw4Before);
});

test.run();
