// Daemon start-up: restart policies after a "reboot" (helpers gone), leftovers of
// half-created containers and cgroups nobody owns.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cgroupsLeft, IMAGE, makeEngineEnv, type EngineEnv } from '../helpers/engine-env';

let env: EngineEnv;

test.before(async () => { env = await makeEngineEnv('berth-rst-'); });
test.after(async () => { await env?.cleanup(); });

test('after a reboot: always comes back, unless-stopped stopped by the user stays down, leftovers go', async () => {
  const first = await env.open();
  const always = await first.create({ Image: IMAGE, Cmd: ['sleep', '100'], HostConfig: { RestartPolicy: { Name: 'always' } } });
  await first.start(always.Id);
  const stopped = await first.create({ Image: IMAGE, Cmd: ['sleep', '100'], HostConfig: { RestartPolicy: { Name: 'unless-stopped' } } });
  await first.start(stopped.Id);
  await first.stop(stopped.Id, { timeout: 0 });
  const plain = await first.create({ Image: IMAGE, Cmd: ['sleep', '100'] });
  await first.start(plain.Id);
  await first.close();

  // A reboot: every helper and container is gone, the records still say running.
  for (const id of [always.Id, plain.Id]) await env.runtime.remove(id);
  // A create that never finished, and a cgroup no record owns.
  const halfId = randomBytes(32).toString('hex');
  mkdirSync(join(env.dataRoot, 'containers', halfId), { recursive: true });
  const strayId = randomBytes(32).toString('hex');
  await env.cgroups.create(strayId, {});
  assert.ok(cgroupsLeft(env.cgroupParent).some((d) => d.endsWith(strayId)));

  const second = await env.open();
  const st = async (id: string) => (await second.inspect(id)).State as Record<string, unknown>;
  assert.is((await st(always.Id)).Status, 'running');
  assert.is((await st(stopped.Id)).Status, 'exited');
  const plainState = await st(plain.Id);
  assert.is(plainState.Status, 'exited');
  assert.is(plainState.ExitCode, 255);
  assert.not.ok(existsSync(join(env.dataRoot, 'containers', halfId)));
  assert.not.ok(cgroupsLeft(env.cgroupParent).some((d) => d.endsWith(strayId)));
  assert.equal(second.counts(), { total: 3, running: 1, paused: 0, stopped: 2 });
  for (const id of [always.Id, stopped.Id, plain.Id]) await second.remove(id, { force: true });
  assert.equal(cgroupsLeft(env.cgroupParent), []);
});

test.run();
