// A client that behaves like luci-app-dockerman's Lua client sweeps every endpoint of the
// reference's LuCI list that berth implements: HTTP/1.1 with `Connection: close`, no
// version prefix, non-chunked bodies read to EOF, and each HTTP chunk of a stream parsed
// as one JSON document (or one log frame). Endpoints berth lacks must answer a JSON error
// at once. Needs root, a build, and Debian's docker-registry, skopeo and umoci for the pull.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, REPO_ROOT, type TestDaemon } from '../helpers/daemon';
import { luciRequest, type RawResponse } from '../helpers/raw-http';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { pushFixtures, type FixtureSet } from '../helpers/fixture-images';

const IMAGE = 'localhost/busybox';
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar'));
let daemon: TestDaemon | undefined;
let registry: RunningRegistry | undefined;
let fixtures: FixtureSet | undefined;
let containerId = '';
const sweepStarted = Math.floor(Date.now() / 1000) - 1;

const call = (method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<RawResponse> =>
  luciRequest(daemon!.socket, method, path, body, headers, 60_000);

/** A plain JSON answer: exact content type, not chunked, parses. */
function json<T = Record<string, unknown>>(r: RawResponse, what: string, status = 200): T {
  assert.is(r.status, status, `${what}: ${r.status} ${r.body.toString().slice(0, 300)}`);
  assert.is(r.headers['content-type'], 'application/json', `${what}: content type`);
  assert.not.ok(r.chunked, `${what}: LuCI reads plain bodies to EOF`);
  return JSON.parse(r.body.toString()) as T;
}

/** A JSON stream: every HTTP chunk is one complete JSON document. */
function jsonChunks<T = Record<string, unknown>>(r: RawResponse, what: string): T[] {
  assert.is(r.status, 200, `${what}: ${r.status} ${r.body.toString().slice(0, 300)}`);
  assert.is(r.headers['content-type'], 'application/json', `${what}: content type`);
  return r.chunks.map((chunk, i) => {
    try {
      return JSON.parse(chunk.toString()) as T;
    } catch {
      throw new Error(`${what}: chunk ${i} is not one JSON document: ${JSON.stringify(chunk.toString())}`);
    }
  });
}

function empty(r: RawResponse, what: string, status = 204): void {
  assert.is(r.status, status, `${what}: ${r.status} ${r.body.toString().slice(0, 300)}`);
}

test.before(async () => {
  if (!canRun) return;
  daemon = await startDaemon();
  const loaded = await daemon.cli(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
  assert.is(loaded.code, 0, loaded.stderr);
  containerId = (await daemon.cli(['run', '-d', '--name', 'lc', IMAGE, 'sh', '-c', 'echo hello; echo oops >&2; exec sleep 300'])).stdout.trim();
  const hasRegistry = ['docker-registry', 'skopeo', 'umoci'].every((tool) => existsSync(`/usr/bin/${tool}`));
  if (hasRegistry) {
    registry = await startRegistry();
    fixtures = await pushFixtures(registry.host);
  }
});

test.after(async () => {
  await daemon?.stop().catch(() => {});
  await registry?.stop().catch(() => {});
});

const t = (name: string, fn: () => Promise<void>): void => test(name, async () => { if (canRun) await fn(); });

t('system: ping, version, info, df', async () => {
  const ping = await call('GET', '/_ping');
  assert.is(ping.status, 200);
  assert.is(ping.body.toString(), 'OK');
  const version = json<{ ApiVersion: string; Version: string }>(await call('GET', '/version'), '/version');
  assert.ok(version.ApiVersion && version.Version);
  const info = json<{ Containers: number; ContainersRunning: number; Images: number }>(await call('GET', '/info'), '/info');
  assert.ok(info.Containers >= 1 && info.ContainersRunning >= 1 && info.Images >= 1);
  const df = json<{ Images: unknown[]; Containers: unknown[]; Volumes: unknown }>(await call('GET', '/system/df'), '/system/df');
  assert.ok(Array.isArray(df.Images) && Array.isArray(df.Containers));
});

t('containers: list, inspect, top, changes, stats, logs', async () => {
  const list = json<Array<{ Id: string; Names: string[] }>>(await call('GET', '/containers/json?all=true'), 'containers/json');
  assert.ok(list.some((c) => c.Id === containerId && c.Names[0] === '/lc'));
  const inspect = json<{ Id: string; State: { Running: boolean } }>(await call('GET', '/containers/lc/json'), 'inspect');
  assert.is(inspect.State.Running, true);
  const top = json<{ Titles: string[]; Processes: string[][] }>(await call('GET', '/containers/lc/top'), 'top');
  assert.ok(top.Processes.some((p) => p.join(' ').includes('sleep 300')));
  json<unknown[]>(await call('GET', '/containers/lc/changes'), 'changes');

  const stats = json<{
    cpu_stats: { online_cpus: number; cpu_usage: { total_usage: number }; system_cpu_usage: number };
    precpu_stats: { cpu_usage: { total_usage: number } };
    memory_stats: { usage: number; limit: number; stats: { total_cache: number } };
  }>(await call('GET', '/containers/lc/stats?stream=false'), 'stats');
  assert.ok(stats.cpu_stats.online_cpus > 0, 'online_cpus');
  assert.type(stats.cpu_stats.cpu_usage.total_usage, 'number');
  assert.ok(stats.cpu_stats.system_cpu_usage > 0, 'system_cpu_usage');
  assert.type(stats.precpu_stats.cpu_usage.total_usage, 'number');
  assert.ok(stats.memory_stats.usage > 0 && stats.memory_stats.limit > 0, 'memory usage and limit');
  assert.type(stats.memory_stats.stats.total_cache, 'number');

  // Logs: each chunk is exactly one 8-byte-header frame.
  const logs = await call('GET', '/containers/lc/logs?stdout=1&stderr=1&tail=all');
  assert.is(logs.status, 200);
  const frames = logs.chunks.map((chunk) => {
    assert.ok(chunk.length >= 8 && chunk.readUInt32BE(4) === chunk.length - 8, `a chunk is one frame: ${JSON.stringify(chunk.toString())}`);
    return `${chunk[0]}:${chunk.subarray(8).toString()}`;
  });
  assert.equal(frames, ['1:hello\n', '2:oops\n']);
});

t('containers: pause, unpause, update, rename, restart, kill', async () => {
  empty(await call('POST', '/containers/lc/pause'), 'pause');
  assert.is(json<{ State: { Status: string } }>(await call('GET', '/containers/lc/json'), 'inspect').State.Status, 'paused');
  empty(await call('POST', '/containers/lc/unpause'), 'unpause');
  const update = json<{ Warnings: unknown }>(await call('POST', '/containers/lc/update', JSON.stringify({ CpuShares: 512, RestartPolicy: { Name: 'no' } })), 'update');
  assert.ok(update.Warnings === null || Array.isArray(update.Warnings));
  empty(await call('POST', '/containers/lc/rename?name=lc2'), 'rename');
  empty(await call('POST', '/containers/lc2/restart?t=1'), 'restart');
  assert.is(json<{ State: { Running: boolean } }>(await call('GET', '/containers/lc2/json'), 'inspect').State.Running, true);
  empty(await call('POST', '/containers/lc2/kill?signal=KILL'), 'kill');
  for (let i = 0; i < 50; i++) {
    if (!json<{ State: { Running: boolean } }>(await call('GET', '/containers/lc2/json'), 'inspect').State.Running) break;
    await new Promise((r) => setTimeout(r, 100));
  }
});

t('containers: archive HEAD/GET/PUT and export (of a stopped container)', async () => {
  const head = await call('HEAD', '/containers/lc2/archive?path=/etc/passwd');
  assert.is(head.status, 200);
  const stat = JSON.parse(Buffer.from(head.headers['x-docker-container-path-stat']!, 'base64').toString()) as { name: string; size: number; mode: number; mtime: string; linkTarget: string };
  assert.is(stat.name, 'passwd');
  assert.ok(stat.size > 0);
  assert.type(stat.mtime, 'string');

  const get = await call('GET', '/containers/lc2/archive?path=/etc/passwd');
  assert.is(get.status, 200);
  assert.is(get.headers['content-type'], 'application/x-tar');
  assert.is(get.body.subarray(0, 6).toString(), 'passwd');
  assert.ok(get.body.length % 512 === 0, 'a whole tar');

  // Upload what we got back, under /tmp.
  empty(await call('PUT', '/containers/lc2/archive?path=/tmp', get.body, { 'Content-Type': 'application/x-tar' }), 'archive PUT', 200);
  assert.is((await call('HEAD', '/containers/lc2/archive?path=/tmp/passwd')).status, 200);
  // HEAD has no body to carry the message: the status says it.
  assert.is((await call('HEAD', '/containers/lc2/archive?path=/nope')).status, 404);
  json(await call('GET', '/containers/lc2/archive?path=/nope'), 'archive GET of a missing path', 404);

  const exported = await call('GET', '/containers/lc2/export');
  assert.is(exported.status, 200);
  assert.is(exported.headers['content-type'], 'application/x-tar');
  assert.ok(exported.body.includes(Buffer.from('bin/busybox')), 'the export holds the busybox files');
});

t('events with since and until: one JSON document per chunk', async () => {
  const until = Math.ceil(Date.now() / 1000) + 1;
  const events = jsonChunks<{ Type: string; Action: string; Actor: { ID: string; Attributes: { name: string } }; time: number }>(
    await call('GET', `/events?since=${sweepStarted}&until=${until}`), '/events');
  const actions = events.filter((e) => e.Actor.ID === containerId).map((e) => e.Action);
  for (const action of ['start', 'pause', 'unpause', 'rename', 'kill', 'die']) assert.ok(actions.includes(action), `${action} in ${actions.join(',')}`);
  for (const e of events) {
    assert.type(e.time, 'number');
    assert.type(e.Actor.Attributes.name, 'string');
  }
});

t('containers: prune removes the stopped container', async () => {
  const pruned = json<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }>(await call('POST', '/containers/prune'), 'containers/prune');
  assert.ok(pruned.ContainersDeleted?.includes(containerId));
});

t('images: list, history, tag, get, load, prune', async () => {
  const images = json<Array<{ Id: string; RepoTags: string[] }>>(await call('GET', '/images/json'), 'images/json');
  assert.ok(images.some((i) => i.RepoTags.includes(`${IMAGE}:latest`)));
  const history = json<Array<{ Id: string; Created: number }>>(await call('GET', `/images/${IMAGE}/history`), 'history');
  assert.ok(history.length >= 1);
  empty(await call('POST', `/images/${IMAGE}/tag?repo=luci/copy&tag=v1`), 'tag', 201);
  const saved = await call('GET', '/images/get?names=luci%2Fcopy%3Av1');
  assert.is(saved.status, 200);
  assert.is(saved.headers['content-type'], 'application/x-tar');
  const loaded = jsonChunks<{ stream?: string }>(await call('POST', '/images/load', saved.body, { 'Content-Type': 'application/x-tar' }), 'images/load');
  assert.ok(loaded.some((m) => m.stream?.includes('luci/copy:v1')), JSON.stringify(loaded));
  const pruned = json<{ ImagesDeleted: unknown; SpaceReclaimed: number }>(await call('POST', '/images/prune'), 'images/prune');
  assert.type(pruned.SpaceReclaimed, 'number');
});

t('images: pull from a local registry ends with the status LuCI checks', async () => {
  if (!fixtures) { console.warn('luci-client: no docker-registry/skopeo/umoci, pull not checked'); return; }
  const repo = `${fixtures.host}/${fixtures.repository}`;
  const messages = jsonChunks<{ status?: string; error?: string }>(
    await call('POST', `/images/create?fromImage=${encodeURIComponent(repo)}&tag=${fixtures.oci.tag}`), 'images/create');
  assert.not.ok(messages.some((m) => m.error), JSON.stringify(messages));
  assert.is(messages[messages.length - 1]!.status, `Status: Downloaded newer image for ${repo}:${fixtures.oci.tag}`);
});

t('networks and volumes answer JSON at once, implemented or not', async () => {
  for (const path of ['/networks', '/volumes', '/networks/bridge', '/volumes/nosuch']) {
    const started = Date.now();
    const r = await call('GET', path);
    assert.ok(Date.now() - started < 5000, `${path} answered quickly`);
    assert.ok([200, 404].includes(r.status), `${path}: ${r.status}`);
    assert.is(r.headers['content-type'], 'application/json', path);
    JSON.parse(r.body.toString());
  }
});

test.run();
