// The fleet's `ps` reply carries each container's health, so an operator sees unhealthy
// devices without a second round trip.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runAction, type ActionContext } from '../../../src/fleet/actions';

test('ps lists the health status of containers that have a check, and none for the others', async () => {
  const rows = [
    { Id: 'a', Names: ['/web'], Image: 'img', State: 'running', Status: 'Up 2 minutes (unhealthy)', Labels: {}, Health: { Status: 'unhealthy', FailingStreak: 3 } },
    { Id: 'b', Names: ['/db'], Image: 'img', State: 'running', Status: 'Up 2 minutes', Labels: {} },
  ];
  const ctx = { engine: { list: async () => rows } } as unknown as ActionContext;
  const list = await runAction('ps', { all: true }, ctx) as Array<Record<string, unknown>>;
  assert.is(list.find((c) => c.name === 'web')!.health, 'unhealthy');
  assert.is('health' in list.find((c) => c.name === 'db')!, false);
});

test.run();
