// luci-app-berth's rpcd backend (openwrt/luci-app-berth/root/usr/libexec/rpcd/berth), run the
// way rpcd runs an exec plugin: `sh berth list`, and `sh berth call METHOD` with the JSON
// arguments on stdin, under busybox sh, against a real daemon (test/helpers/daemon.ts). The
// backend reaches the daemon through `berth api` (BERTH_RPCD_BIN, BERTH_HOST point it at the
// test daemon). Also: the LuCI views parse, the menu and ACL JSON are valid and agree with
// the backend's methods. Needs root and a build for the daemon part.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { startDaemon, REPO_ROOT, BERTH_BIN, type TestDaemon } from '../helpers/daemon';

const APP = join(REPO_ROOT, 'openwrt/luci-app-berth');
const BACKEND = join(APP, 'root/usr/libexec/rpcd/berth');
const SHELL = existsSync('/bin/busybox') ? ['/bin/busybox', 'sh'] : ['sh'];
const canRun = process.getuid?.() === 0 && existsSync(join(REPO_ROOT, 'dist/default-image.tar'));
let daemon: TestDaemon | undefined;

function rpcd(args: string[], input = '', host?: string): Record<string, unknown> {
  const r = spawnSync(SHELL[0]!, [...SHELL.slice(1), BACKEND, ...args], {
    input,
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH, BERTH_RPCD_BIN: `${process.execPath} ${BERTH_BIN}`, BERTH_HOST: host ?? (daemon ? `unix://${daemon.socket}` : 'unix:///nonexistent.sock') },
  });
  assert.is(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  try {
    const value = JSON.parse(r.stdout);
    assert.type(value, 'object', `${args.join(' ')}: a JSON object`);
    return value as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${args.join(' ')}: not one JSON document: ${JSON.stringify(r.stdout)} (${(err as Error).message})`);
  }
}
const call = (method: string, args: Record<string, unknown> = {}) => rpcd(['call', method], JSON.stringify(args));

const METHODS = ['status', 'containers', 'container_start', 'container_stop', 'container_restart', 'container_remove', 'container_logs', 'images', 'image_pull', 'image_remove'];

test('list: every method with its argument signature', () => {
  const list = rpcd(['list']);
  assert.equal(Object.keys(list).sort(), [...METHODS].sort());
  assert.equal(list.container_stop, { id: 'str' });
  assert.equal(list.image_pull, { name: 'str' });
});

test('the ACL grants exactly the backend methods; the menu points at the views', () => {
  const acl = JSON.parse(readFileSync(join(APP, 'root/usr/share/rpcd/acl.d/luci-app-berth.json'), 'utf8'));
  const app = acl['luci-app-berth'];
  const granted = [...(app.read.ubus.berth ?? []), ...(app.write.ubus.berth ?? [])];
  assert.equal([...new Set(granted)].sort(), [...METHODS].sort());
  assert.ok(app.read.uci.includes('berth') && app.write.uci.includes('berth'));
  const menu = JSON.parse(readFileSync(join(APP, 'root/usr/share/luci/menu.d/luci-app-berth.json'), 'utf8'));
  for (const [path, entry] of Object.entries(menu) as Array<[string, { action?: { type: string; path?: string } }]>) {
    if (entry.action?.type === 'view') assert.ok(existsSync(join(APP, 'htdocs/luci-static/resources/view', `${entry.action.path}.js`)), `${path}: view ${entry.action.path}`);
  }
});

test('the LuCI views parse and use the backend methods only', () => {
  const dir = join(APP, 'htdocs/luci-static/resources/view/berth');
  const views = readdirSync(dir).filter((f) => f.endsWith('.js'));
  assert.equal(views.sort(), ['containers.js', 'images.js', 'settings.js', 'status.js']);
  for (const view of views) {
    const source = readFileSync(join(dir, view), 'utf8');
    // LuCI loads a view as the body of a function ('use strict'; require lines; return view.extend(...)).
    new Script(`(function(){${source}\n})`, { filename: view });
    assert.match(source, /return view\.extend\(/, `${view}: a LuCI view`);
    for (const m of source.matchAll(/method:\s*'([a-z_]+)'/g)) assert.ok(METHODS.includes(m[1]!), `${view}: ${m[1]} is a backend method`);
  }
});

test('an unreachable daemon and bad arguments answer a JSON error', () => {
  assert.match(String(rpcd(['call', 'status'], '{}', 'unix:///nonexistent/berth.sock').error), /not reachable/);
  assert.match(String(call('container_stop', {}).error), /missing argument: id/);
  assert.match(String(call('container_stop', { id: 'x; rm -rf /' }).error), /invalid id/);
  assert.match(String(call('nope').error), /unknown method/);
});

if (canRun) {
  test.before(async () => {
    daemon = await startDaemon({ args: ['--bridge', 'none'] });
    const loaded = await daemon.cli(['load', '-i', join(REPO_ROOT, 'dist/default-image.tar')]);
    assert.is(loaded.code, 0, loaded.stderr);
  });
  test.after(async () => { await daemon?.stop(); daemon = undefined; });

  test('status, images and the container cycle through the backend', async () => {
    const status = call('status') as { version: { Version: string }; info: { Containers: number } };
    assert.is(status.version.Version, JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version);
    assert.type(status.info.Containers, 'number');

    const images = call('images') as { status: number; body: Array<{ RepoTags: string[] }> };
    assert.is(images.status, 200);
    assert.ok(images.body.some((i) => i.RepoTags?.includes('localhost/busybox:latest')), JSON.stringify(images.body));

    const id = (await daemon!.cli(['run', '-d', '--name', 'rpcd1', 'localhost/busybox', 'sh', '-c', 'echo hello-rpcd; exec sleep 300'])).stdout.trim();
    assert.ok(id, 'container started');
    const list = call('containers') as { body: Array<{ Id: string; State: string }> };
    assert.is(list.body.find((c) => c.Id === id)?.State, 'running');

    const logs = call('container_logs', { id: 'rpcd1', tail: 10 }) as { status: number; body: string };
    assert.is(logs.status, 200);
    assert.match(logs.body, /hello-rpcd/);

    assert.is(call('container_stop', { id: 'rpcd1' }).status, 204);
    assert.is((call('containers') as { body: Array<{ Id: string; State: string }> }).body.find((c) => c.Id === id)?.State, 'exited');
    assert.is(call('container_start', { id }).status, 204);
    assert.is(call('container_restart', { id: 'rpcd1' }).status, 204);
    const refused = call('container_remove', { id: 'rpcd1' }) as { status: number };
    assert.is(refused.status, 409, 'a running container is not removed without force');
    assert.is(call('container_remove', { id: 'rpcd1', force: true }).status, 204);
    assert.is((call('containers') as { body: unknown[] }).body.length, 0);
    assert.is(call('container_stop', { id: 'x' }).status, 404);

    await daemon!.cli(['tag', 'localhost/busybox', 'localhost/rpcd-copy:1']);
    assert.is(call('image_remove', { name: 'localhost/rpcd-copy:1' }).status, 200);
    const pull = call('image_pull', { name: 'localhost:1/none:latest' }) as { status: number; error?: string };
    assert.ok(pull.status >= 400 || pull.error, `a failed pull is reported: ${JSON.stringify(pull)}`);
  });
}

test.run();
