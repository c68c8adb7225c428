// Fleet control end to end: the built daemon as device "r1" (group "edge") against a
// real mosquitto with TLS client certificates and an ACL; the operator is an MQTT
// client with its own certificate, and the `berth fleet` CLI. Needs root and a prior
// `npm run build`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { startDaemon, makeTempDir, run, runBerth, REPO_ROOT, type TestDaemon } from '../helpers/daemon';
import { startBroker, type TestBroker } from '../helpers/mosquitto';
import { startRegistry } from '../helpers/registry';
import { pushFixtures } from '../helpers/fixture-images';
import { connectOperator, closeOperator, readRetained, sendCommand, publishDesired } from '../../src/fleet/operator';
import { signRequest } from '../../src/fleet/signing';

const IMAGE = 'localhost/busybox';
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar')) && (() => { try { require('node:child_process').execFileSync('mosquitto', ['-h'], { stdio: 'ignore' }); return true; } catch (e) { return (e as { status?: number }).status === 3; } })();

const ACL = `# devices (certificate CN = device id): their own subtree, and group commands and manifests
pattern readwrite berth/dev/%u/#
pattern read berth/grp/#

user operator
topic readwrite berth/#
`;

let broker: TestBroker;
let daemon: TestDaemon | undefined;
let op: MqttClient;
let work: string;
let dataRoot: string;
let execRoot: string;
const { publicKey, privateKey } = generateKeyPairSync('ed25519');

const DEFAULT_ACTIONS = 'ping,info,ps,images,pull,run,create,start,stop,restart,rm,rmi,logs,exec,inspect,stats,deploy';

function daemonArgs(extra: string[] = []): string[] {
  const c = broker.client('r1');
  return ['--mqtt-broker', broker.url, '--mqtt-ca', c.ca, '--mqtt-cert', c.cert, '--mqtt-key', c.key, '--device-id', 'r1', '--group', 'edge',
    '--allowed-actions', DEFAULT_ACTIONS, ...extra];
}

async function startDevice(extra: string[] = []): Promise<void> {
  daemon = await startDaemon({ dataRoot, execRoot, args: daemonArgs(extra) });
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch (err) { last = err; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}\n${daemon?.logs().slice(-3000) ?? ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let seq = 0;
async function cmd(action: string, args: Record<string, unknown> = {}, opts: { id?: string; timeoutMs?: number } = {}): Promise<any> {
  const replies = await sendCommand(op, 'berth', { kind: 'dev', name: 'r1' }, action, args, { timeoutMs: opts.timeoutMs ?? 30_000, expect: 1, requestId: opts.id ?? `t${++seq}-${Date.now()}` });
  const r = replies.get('r1');
  if (!r) throw new Error(`no reply to ${action}\n${daemon?.logs().slice(-2000)}`);
  return r;
}
async function ok(action: string, args: Record<string, unknown> = {}): Promise<any> {
  const r = await cmd(action, args);
  assert.ok(r.ok, `${action} failed: ${JSON.stringify(r)}`);
  return r.result;
}

/** Publishes a raw payload to the device's command topic and waits for the reply on `replyId`'s topic. */
async function rawCommand(payload: string | Buffer, replyId: string, properties?: Record<string, unknown>, replyTopic = `berth/dev/r1/res/${replyId}`): Promise<{ body: any; packet: any }> {
  await op.subscribeAsync(replyTopic, { qos: 1 });
  const got = new Promise<{ body: any; packet: any }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply on ${replyTopic}`)), 15_000);
    const onMessage = (topic: string, msg: Buffer, packet: any): void => {
      if (topic !== replyTopic) return;
      const body = JSON.parse(msg.toString());
      if (!('ok' in body)) return;
      clearTimeout(timer);
      op.off('message', onMessage);
      resolve({ body, packet });
    };
    op.on('message', onMessage);
  });
  await op.publishAsync('berth/dev/r1/cmd', payload, { qos: 1, ...(properties ? { properties } : {}) });
  const result = await got;
  await op.unsubscribeAsync(replyTopic);
  return result;
}

async function fleetCli(args: string[]) {
  const c = broker.client('operator');
  return runBerth(['fleet', '--broker', broker.url, '--ca', c.ca, '--cert', c.cert, '--key', c.key, ...args], { timeoutMs: 60_000 });
}

test.before(async () => {
  if (!canRun) return;
  work = makeTempDir('berth-e2e-fleet-');
  dataRoot = join(work, 'data');
  execRoot = join(work, 'exec');
  broker = await startBroker({ clients: ['r1', 'operator'], acl: ACL });
  const c = broker.client('operator');
  op = await connectOperator({ broker: broker.url, prefix: 'berth', ...c });
  await startDevice();
  const loaded = await daemon!.cli(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')], { timeoutMs: 60_000 });
  assert.is(loaded.code, 0, loaded.stderr);
});

test.after(async () => {
  if (op) await closeOperator(op).catch(() => {});
  if (daemon) {
    await daemon.cli(['rm', '-f', ...(await daemon.cli(['ps', '-aq'])).stdout.split('\n').filter(Boolean)]).catch(() => {});
    await daemon.stop().catch(() => {});
  }
  await broker?.destroy().catch(() => {});
  if (work) await run('rm', ['-rf', work]);
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('the device publishes a retained online status; fleet ls shows it', async () => {
  const status = await until('online status', async () => (await readRetained(op, 'berth', 'status')).get('r1')?.online === true && (await readRetained(op, 'berth', 'status')).get('r1'));
  assert.equal(status.groups, ['edge']);
  assert.ok(status.containers);
  const ls = await fleetCli(['ls']);
  assert.is(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^DEVICE +STATUS +VERSION/);
  assert.match(ls.stdout, /^r1 +online +/m);
});

t('every action end to end', async () => {
  assert.is((await ok('ping')).pong, true);
  const info = await ok('info');
  assert.is(info.device, 'r1');
  assert.ok(info.images >= 1);
  assert.ok((await ok('images')).some((i: any) => i.tags.includes(`${IMAGE}:latest`)));

  const created = await ok('run', { image: IMAGE, name: 'f1', command: 'echo hello; echo oops >&2; sleep 300', env: { GREETING: 'hi' } });
  assert.match(created.id, /^[0-9a-f]{64}$/);
  const ps = await ok('ps');
  assert.ok(ps.some((c: any) => c.name === 'f1' && c.state === 'running'), JSON.stringify(ps));
  const logs = await until('logs', async () => { const l = await ok('logs', { container: 'f1', tail: 10 }); return l.lines.length >= 2 && l; });
  assert.equal(logs.lines.map((l: any) => `${l.stream}:${l.line}`).sort(), ['stderr:oops', 'stdout:hello']);
  const exec = await ok('exec', { container: 'f1', cmd: ['sh', '-c', 'echo $GREETING in; echo err >&2; exit 3'] });
  assert.equal({ exitCode: exec.exitCode, stdout: exec.stdout, stderr: exec.stderr }, { exitCode: 3, stdout: 'hi in\n', stderr: 'err\n' });
  assert.is((await ok('inspect', { container: 'f1' })).State.Running, true);
  assert.ok((await ok('inspect', { image: IMAGE })).Id.startsWith('sha256:'));
  const stats = await ok('stats', { container: 'f1' });
  assert.ok(Object.values<any>(stats)[0].pids >= 1, JSON.stringify(stats));
  await ok('stop', { container: 'f1', timeout: 1 });
  assert.is((await ok('inspect', { container: 'f1' })).State.Running, false);
  await ok('start', { container: 'f1' });
  await ok('restart', { container: 'f1', timeout: 1 });
  assert.is((await ok('inspect', { container: 'f1' })).State.Running, true);
  await ok('rm', { container: 'f1', force: true });
  const c2 = await ok('create', { image: IMAGE, name: 'f2', command: ['true'] });
  assert.is((await ok('inspect', { container: c2.id })).State.Status, 'created');
  await ok('rm', { container: 'f2' });

  const missing = await cmd('rm', { container: 'nope' });
  assert.equal(missing.error.code, 'not_found');
  const rmi = await cmd('rmi', { image: 'localhost/nothing:here' });
  assert.is(rmi.error.code, 'not_found');
  // Pull runs through the image service; an unreachable registry is an error reply, not a hang.
  const pull = await cmd('pull', { image: '127.0.0.1:1/none:latest' }, { timeoutMs: 60_000 });
  assert.is(pull.ok, false);
  assert.ok(['registry_error', 'unavailable', 'forbidden', 'internal'].includes(pull.error.code), JSON.stringify(pull));
});

t('pull, deploy, rmi and prune succeed through the fleet channel', async () => {
  const registry = await startRegistry();
  try {
    const fixtures = await pushFixtures(registry.host);
    const image = fixtures.oci.reference;
    const pulled = await ok('pull', { image });
    assert.match(pulled.id, /^sha256:[0-9a-f]{64}$/);
    assert.ok((await ok('images')).some((i: any) => i.id === pulled.id));

    const deployed = await ok('deploy', { name: 'dep', manifest: { services: { web: { image: IMAGE, command: ['sleep', '300'] } } } });
    assert.ok(deployed, JSON.stringify(deployed));
    await until('the deployed service to run', async () => (await ok('ps')).some((c: any) => c.labels?.['io.berth.stack'] === 'dep' && c.state === 'running'));
    await ok('deploy', { name: 'dep', manifest: { services: {} } });
    await until('the service to be removed', async () => !(await ok('ps', { all: true })).some((c: any) => c.labels?.['io.berth.stack'] === 'dep'));

    const removed = await ok('rmi', { image, force: true });
    assert.ok(JSON.stringify(removed).includes('Untagged'), JSON.stringify(removed));
    assert.ok(!(await ok('images')).some((i: any) => i.tags.includes(image.replace(/^docker\.io\/library\//, ''))));
    // prune stays off the usual allowlist (another test proves it is refused there): allow it
    // for one daemon run.
    await daemon!.stop();
    await startDevice(['--allowed-actions', `${DEFAULT_ACTIONS},prune`]);
    const pruned = await ok('prune');
    assert.ok('containers' in pruned && 'images' in pruned, JSON.stringify(pruned));
    await daemon!.stop();
    await startDevice();
  } finally {
    await registry.stop();
  }
});

t('container events are published; berth stack deploy/ls/rm applies the same manifest locally', async () => {
  const events: any[] = [];
  const onEvent = (topic: string, msg: Buffer): void => { if (topic === 'berth/dev/r1/events') events.push(JSON.parse(msg.toString())); };
  op.on('message', onEvent);
  await op.subscribeAsync('berth/dev/r1/events', { qos: 0 });
  const file = join(work, 'stack.yml');
  writeFileSync(file, `name: local\nservices:\n  app:\n    image: ${IMAGE}\n    command: sleep 300\n    restart: unless-stopped\n    resources: {memory: 32m, pids: 50}\n`);
  const deployed = await daemon!.cli(['stack', 'deploy', '-f', file], { timeoutMs: 60_000 });
  assert.is(deployed.code, 0, deployed.stdout + deployed.stderr);
  assert.match(deployed.stdout, /^app +running +created +local_app +/m);
  assert.is((await daemon!.cli(['stack', 'deploy', '-f', file])).stdout.match(/^app +running +unchanged/m) !== null, true, 'a second deploy changes nothing');
  assert.match((await daemon!.cli(['stack', 'ls'])).stdout, /^local +local +app +1\/1$/m);
  await until('start event', async () => events.some((e) => e.action === 'start' && e.name === 'local_app'));
  const rm = await daemon!.cli(['stack', 'rm', 'local']);
  assert.is(rm.code, 0, rm.stderr);
  assert.is((await daemon!.cli(['ps', '-aq'])).stdout, '');
  op.off('message', onEvent);
  await op.unsubscribeAsync('berth/dev/r1/events');
});

t('malformed, unknown, disallowed and mistyped commands get error replies; the daemon carries on', async () => {
  const bad = await rawCommand('{not json', 'invalid');
  assert.equal([bad.body.ok, bad.body.error.code], [false, 'bad_request']);
  const unknown = await rawCommand(JSON.stringify({ id: 'u1', action: 'format-disk' }), 'u1');
  assert.match(unknown.body.error.message, /unknown action/);
  const disallowed = await rawCommand(JSON.stringify({ id: 'p1', action: 'prune' }), 'p1');
  assert.equal(disallowed.body.error.code, 'forbidden');
  const mistyped = await rawCommand(JSON.stringify({ id: 'm1', action: 'stop', args: { container: 5 } }), 'm1');
  assert.equal(mistyped.body.error.code, 'bad_request');
  const huge = await rawCommand(JSON.stringify({ id: 'h1', action: 'ping', args: { pad: 'x'.repeat(300 * 1024) } }), 'h1');
  assert.equal(huge.body.error.code, 'too_large');
  assert.is((await ok('ping')).pong, true);
});

t('MQTT 5 response topic and correlation data are honoured', async () => {
  const { body, packet } = await rawCommand(JSON.stringify({ id: 'rt1', action: 'ping' }), 'rt1',
    { responseTopic: 'berth/dev/r1/res/inbox', correlationData: Buffer.from('corr-42') }, 'berth/dev/r1/res/inbox');
  assert.is(body.ok, true);
  assert.is(Buffer.from(packet.properties.correlationData).toString(), 'corr-42');
});

t('a duplicate delivery does not run twice', async () => {
  const first = await cmd('run', { image: IMAGE, name: 'dup1', command: 'sleep 300' }, { id: 'dup-1' });
  assert.is(first.ok, true);
  const second = await cmd('run', { image: IMAGE, name: 'dup1', command: 'sleep 300' }, { id: 'dup-1' });
  assert.is(second.ok, false);
  assert.is(second.error.code, 'conflict');
  assert.match(second.error.message, /already executed/);
  assert.is((await ok('ps', { all: true })).filter((c: any) => c.name === 'dup1').length, 1);
  await ok('rm', { container: 'dup1', force: true });
});

t('fleet exec to a group prints a table of replies', async () => {
  const r = await fleetCli(['exec', '--target', 'grp:edge', '--timeout', '10', 'ping']);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^DEVICE +STATUS +RESULT$/m);
  assert.match(r.stdout, /^r1 +ok +\{"pong":true/m);
  assert.match(r.stderr, /1 replied \(0 failed\)/);
});

t('desired state converges, re-converges on change, survives the broker going away, and follows the retained manifest after', async () => {
  // A container the fleet does not own must never be touched.
  assert.is((await daemon!.cli(['run', '-d', '--name', 'bystander', IMAGE, 'sleep', '300'])).code, 0);
  const stateOf = async () => (await readRetained(op, 'berth', 'state')).get('r1')?.sources?.['grp:edge'];
  const v1 = { generation: 1, services: { web: { image: IMAGE, command: 'sleep 300', env: { V: '1' } }, side: { image: IMAGE, command: 'sleep 300' } } };
  await publishDesired(op, 'berth', { kind: 'grp', name: 'edge' }, JSON.stringify(v1));
  await until('generation 1 converged', async () => { const s = await stateOf(); return s?.generation === '1' && s.status === 'converged' && s; });
  const names = async () => (await ok('ps')).map((c: any) => c.name).sort();
  assert.equal(await names(), ['bystander', 'fleet-edge_side', 'fleet-edge_web']);

  const v2 = `generation: 2\nservices:\n  web: {image: ${IMAGE}, command: sleep 300, env: {V: "2"}}\n  side: {image: ${IMAGE}, command: sleep 300}\n`;
  await publishDesired(op, 'berth', { kind: 'grp', name: 'edge' }, v2);
  const s2 = await until('generation 2 converged', async () => { const s = await stateOf(); return s?.generation === '2' && s.status === 'converged' && s; });
  assert.is(s2.services.web.action, 'replaced');
  assert.is(s2.services.side.action, 'unchanged');
  assert.is((await ok('inspect', { container: 'fleet-edge_web' })).Config.Env.includes('V=2'), true);

  await broker.stop();
  await new Promise((r) => setTimeout(r, 1500));
  const ps = await daemon!.cli(['ps', '--format', '{{.Names}}']);
  assert.equal(ps.stdout.split('\n').filter(Boolean).sort(), ['bystander', 'fleet-edge_side', 'fleet-edge_web'], 'containers keep running without the broker');
  await broker.start();
  // The operator reconnects too (its client does not retry by itself).
  await closeOperator(op).catch(() => {});
  op = await connectOperator({ broker: broker.url, prefix: 'berth', ...broker.client('operator') });
  await publishDesired(op, 'berth', { kind: 'grp', name: 'edge' }, JSON.stringify({ generation: 3, services: { side: { image: IMAGE, command: 'sleep 300' } } }));
  await until('generation 3 converged after the broker returned', async () => { const s = await stateOf(); return s?.generation === '3' && s.status === 'converged' && s; }, 60_000);
  assert.equal(await names(), ['bystander', 'fleet-edge_side']);
  const state = await fleetCli(['state']);
  assert.match(state.stdout, /^r1 +grp:edge +fleet-edge +3 +converged +side:running$/m);

  // Clearing the desired state removes what it owned and nothing else.
  const cleared = await fleetCli(['deploy', '--target', 'grp:edge', '--remove']);
  assert.is(cleared.code, 0, cleared.stderr);
  await until('stack removed', async () => (await stateOf())?.status === 'removed');
  assert.equal(await names(), ['bystander']);
  await ok('rm', { container: 'bystander', force: true });
});

t('killing the daemon flips status to offline; a command sent meanwhile runs exactly once after restart', async () => {
  await daemon!.kill();
  daemon = undefined;
  await until('offline status (last will)', async () => (await readRetained(op, 'berth', 'status')).get('r1')?.online === false);
  const replies: any[] = [];
  op.on('message', (topic, msg) => { if (topic === 'berth/dev/r1/res/offline-1') { const b = JSON.parse(msg.toString()); if ('ok' in b) replies.push(b); } });
  await op.subscribeAsync('berth/dev/r1/res/offline-1', { qos: 1 });
  await op.publishAsync('berth/dev/r1/cmd', JSON.stringify({ id: 'offline-1', action: 'run', args: { image: IMAGE, name: 'off1', command: 'sleep 300' } }), { qos: 1 });
  await startDevice();
  await until('reply to the queued command', async () => replies.length >= 1);
  assert.is(replies[0].ok, true, JSON.stringify(replies[0]));
  await until('online again', async () => (await readRetained(op, 'berth', 'status')).get('r1')?.online === true);
  // The id is remembered across the restart.
  await op.publishAsync('berth/dev/r1/cmd', JSON.stringify({ id: 'offline-1', action: 'run', args: { image: IMAGE, name: 'off1', command: 'sleep 300' } }), { qos: 1 });
  await until('duplicate reply', async () => replies.length >= 2);
  assert.is(replies[1].error.code, 'conflict');
  assert.is((await ok('ps', { all: true })).filter((c: any) => c.name === 'off1').length, 1);
  await ok('rm', { container: 'off1', force: true });
});

t('with command keys configured, unsigned and badly signed commands are refused and signed ones run', async () => {
  await daemon!.stop();
  const keyDir = join(work, 'keys');
  mkdirSync(keyDir, { recursive: true });
  writeFileSync(join(keyDir, 'op.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(keyDir, 'op.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await startDevice(['--command-key', join(keyDir, 'op.pub'), '--telemetry-interval', '1']);
  const telemetry = new Promise<any>((resolve) => {
    const onTelemetry = (topic: string, msg: Buffer): void => { if (topic === 'berth/dev/r1/telemetry') { op.off('message', onTelemetry); resolve(JSON.parse(msg.toString())); } };
    op.on('message', onTelemetry);
  });
  await op.subscribeAsync('berth/dev/r1/telemetry', { qos: 0 });
  await until('online', async () => (await readRetained(op, 'berth', 'status')).get('r1')?.online === true);
  const unsigned = await rawCommand(JSON.stringify({ id: 's1', action: 'ping' }), 's1');
  assert.is(unsigned.body.error.code, 'forbidden');
  assert.match(unsigned.body.error.message, /unsigned/);
  const forged = { ...signRequest({ id: 's2', action: 'ping', args: {} }, privateKey), action: 'ps' };
  assert.match((await rawCommand(JSON.stringify(forged), 's2')).body.error.message, /bad signature/);
  const signed = await rawCommand(JSON.stringify(signRequest({ id: 's3', action: 'ping', args: {} }, privateKey)), 's3');
  assert.is(signed.body.ok, true);
  const cli = await fleetCli(['exec', '--target', 'dev:r1', '--sign-key', join(keyDir, 'op.key'), 'ping']);
  assert.is(cli.code, 0, cli.stdout + cli.stderr);
  const sample = await telemetry;
  assert.is(sample.device, 'r1');
  assert.ok(sample.host.memTotal > 0);
});

test.run();
