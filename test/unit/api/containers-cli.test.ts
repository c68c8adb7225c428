// The container verbs of the berth CLI against the real API server and a scripted
// engine: run's create/attach/wait/start order and exit status, demultiplexed output,
// pull on "No such image", ps/inspect/logs/exec output.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ApiServer } from '../../../src/api/server';
import { buildRouter } from '../../../src/api/routes';
import { registerContainerRoutes } from '../../../src/api/routes/containers';
import { registerExecRoutes } from '../../../src/api/routes/exec';
import { registerEventRoutes } from '../../../src/api/routes/events';
import { Router } from '../../../src/api/router';
import { JsonStream } from '../../../src/api/response';
import { runCli } from '../../../src/cli/main';
import { parsePublish, parseMount } from '../../../src/cli/commands/create';
import { ellipsis, formatPorts } from '../../../src/cli/commands/ps';
import { cpuPercent, statsRow } from '../../../src/cli/commands/stats';
import { parseMemory, parseSinceUntil } from '../../../src/cli/containers';
import type { DaemonServices } from '../../../src/daemon/services';
import { setLogSink } from '../../../src/util/log';
import { FakeEngine } from './containers-fixture';

setLogSink(() => {});
const dir = mkdtempSync(join(tmpdir(), 'berth-containers-cli-'));
const socketPath = join(dir, 'api.sock');
let server: ApiServer;
let engine: FakeEngine;
const pulled: string[] = [];

test.before(async () => {
  engine = new FakeEngine();
  const router: Router = buildRouter([registerContainerRoutes, registerExecRoutes, registerEventRoutes]);
  // Pulls succeed and make the image known, so create's retry works.
  router.add('POST', '/images/create', (ctx) => {
    pulled.push(`${ctx.query.string('fromImage')}:${ctx.query.string('tag')}`);
    const s = new JsonStream(ctx.res);
    s.write({ status: 'Pulling from library/missing', id: 'latest' });
    s.write({ status: 'Status: Downloaded newer image for missing:latest' });
    s.end();
  });
  server = new ApiServer({ router, services: { engine } as unknown as DaemonServices, socketOwner: { uid: process.getuid!(), gid: process.getgid!() } });
  await server.listenUnix(socketPath);
  engine.onStart = (c, cmd) => {
    if (cmd[0] === 'sleep') return;
    setTimeout(() => {
      c.stdout.write(`out ${cmd.join(' ')}\n`);
      c.stderr.write('err line\n');
      setTimeout(() => engine.exit(c.id, cmd[0] === 'exit' ? Number(cmd[1]) : 0), 10);
    }, 10);
  };
});
test.after(async () => { await server.close(100); rmSync(dir, { recursive: true, force: true }); });

async function berth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => { out += d; });
  stderr.on('data', (d) => { err += d; });
  const code = await runCli(['-H', `unix://${socketPath}`, ...args], { stdout, stderr, env: { HOME: dir, BERTH_CONFIG: join(dir, 'cfg') } });
  return { code, stdout: out, stderr: err };
}

test('run: output split to stdout and stderr, exit status of the container', async () => {
  const r = await berth(['run', '--name', 'r1', 'busybox', 'exit', '3']);
  assert.is(r.code, 3, r.stderr);
  assert.is(r.stdout, 'out exit 3\n');
  assert.is(r.stderr, 'err line\n');
  const ok = await berth(['run', '--rm', 'busybox', 'echo', 'hi']);
  assert.is(ok.code, 0, ok.stderr);
  assert.is(ok.stdout, 'out echo hi\n');
});

test('run: pulls on "No such image" and retries, progress on stderr', async () => {
  engine.create = (orig => async function (this: FakeEngine, req, name) {
    if (req.Image === 'missing' && pulled.length === 0) return orig.call(this, req, name);
    return orig.call(this, { ...req, Image: req.Image === 'missing' ? 'pulled' : req.Image }, name);
  })(FakeEngine.prototype.create);
  const r = await berth(['run', 'missing', 'true']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, "Unable to find image 'missing:latest' locally\n");
  assert.match(r.stderr, 'Status: Downloaded newer image for missing:latest');
  assert.equal(pulled, ['docker.io/library/missing:latest']);
});

test('run -d prints the id; ps, inspect, logs, exec, stop, rm', async () => {
  const r = await berth(['run', '-d', '--name', 'bg', '-e', 'A=1', '-p', '8080:80', 'busybox', 'sleep', '60']);
  assert.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const ps = await berth(['ps']);
  assert.match(ps.stdout, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES\n/);
  assert.match(ps.stdout, id.slice(0, 12));
  const q = await berth(['ps', '-a', '-q']);
  assert.ok(q.stdout.split('\n').includes(id.slice(0, 12)));
  const names = await berth(['ps', '--format', '{{.Names}}']);
  assert.match(names.stdout, /^bg$/m);
  const status = await berth(['inspect', '-f', '{{.State.Status}}', 'bg']);
  assert.is(status.stdout, 'running\n');
  const missing = await berth(['inspect', 'nothing-here']);
  assert.is(missing.stderr, 'Error: No such object: nothing-here\n');
  assert.ok(missing.code !== 0);
  engine.get('bg').logs.push({ stream: 'stdout', line: Buffer.from('log out\n'), time: 't' }, { stream: 'stderr', line: Buffer.from('log err\n'), time: 't' });
  const logs = await berth(['logs', 'bg']);
  assert.equal([logs.stdout, logs.stderr], ['log out\n', 'log err\n']);
  const exec = await berth(['exec', 'bg', 'echo', 'in']);
  assert.is(exec.stdout, 'running echo in\n');
  assert.is(exec.code, 0);
  assert.is((await berth(['exec', 'bg', 'exit', '5'])).code, 5);
  const stop = await berth(['stop', 'bg']);
  assert.equal([stop.code, stop.stdout], [0, 'bg\n']);
  const rm = await berth(['rm', 'bg', 'nope']);
  assert.is(rm.stdout, 'bg\n');
  assert.is(rm.stderr, 'Error response from daemon: No such container: nope\n');
  assert.is(rm.code, 1);
});

test('stats --no-stream table and top', async () => {
  const id = (await berth(['run', '-d', '--name', 'st', 'busybox', 'sleep', '60'])).stdout.trim();
  const stats = await berth(['stats', '--no-stream', 'st']);
  assert.match(stats.stdout, /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS\n/);
  assert.match(stats.stdout, '10.00%');
  assert.match(stats.stdout, '1KiB / 4KiB');
  const top = await berth(['top', 'st']);
  assert.is(top.stdout, 'PID CMD\n1   sleep 60\n');
  await berth(['rm', '-f', id]);
});

test('flag parsing helpers', () => {
  assert.equal(parsePublish('127.0.0.1:8080:80/udp'), [{ key: '80/udp', HostIp: '127.0.0.1', HostPort: '8080' }]);
  assert.equal(parsePublish('80'), [{ key: '80/tcp', HostIp: '', HostPort: '' }]);
  assert.equal(parsePublish('8000-8001:80-81').map((p) => `${p.HostPort}->${p.key}`), ['8000->80/tcp', '8001->81/tcp']);
  assert.equal(parseMount('type=bind,src=/a,dst=/b,readonly'), { Type: 'bind', Source: '/a', Target: '/b', ReadOnly: true });
  assert.is(parseMemory('512m', '-m'), 512 * 1024 * 1024);
  assert.is(parseSinceUntil('10m', 1_000_000_000), (1_000_000 - 600).toFixed(9));
  assert.is(ellipsis('sh -c while true; do sleep 1; done', 20), 'sh -c while true; d…');
  assert.is(formatPorts([{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }, { PrivatePort: 53, Type: 'udp' }]), '53/udp, 0.0.0.0:8080->80/tcp');
  assert.is(cpuPercent({ cpu_stats: { cpu_usage: { total_usage: 300 }, system_cpu_usage: 2000, online_cpus: 2 }, precpu_stats: { cpu_usage: { total_usage: 100 }, system_cpu_usage: 1000 } }), 40);
  assert.is(statsRow({ memory_stats: { usage: 2048, limit: 4096, stats: { inactive_file: 1024 } } }, 'x', false).MemPerc, '25.00%');
});

test.run();
