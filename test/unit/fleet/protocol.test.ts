import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRequest, errorReply } from '../../../src/fleet/protocol';
import { RecentRequestIds } from '../../../src/fleet/dedupe';
import { backoffDelay } from '../../../src/fleet/connection';
import { loadFleetConfig, FLEET_FLAGS } from '../../../src/fleet/config';
import { parseFlags } from '../../../src/cli/flags';
import { BerthError } from '../../../src/util/errors';

const refuse = (payload: string, code: string, message: RegExp, id?: string): void => {
  try { parseRequest(Buffer.from(payload), 1024); assert.unreachable('accepted'); } catch (err) {
    assert.is((err as BerthError).code, code);
    assert.match((err as Error).message, message);
    assert.is((err as { requestId?: string }).requestId, id);
  }
};

test('parseRequest accepts a well-formed command and refuses every malformed one', () => {
  assert.equal(parseRequest(Buffer.from('{"id":"a1","action":"ps","args":{"all":true}}'), 1024), { id: 'a1', action: 'ps', args: { all: true }, ts: undefined, sig: undefined });
  refuse('not json', 'EINVAL', /not valid JSON/);
  refuse('[1]', 'EINVAL', /JSON object/);
  refuse('{"action":"ps"}', 'EINVAL', /"id"/);
  refuse('{"id":"a/b","action":"ps"}', 'EINVAL', /"id"/);
  refuse('{"id":"a1","action":"format-disk"}', 'EINVAL', /unknown action/, 'a1');
  refuse('{"id":"a1","action":"ps","args":[]}', 'EINVAL', /args/, 'a1');
  refuse(JSON.stringify({ id: 'a1', action: 'ps', args: { pad: 'x'.repeat(2000) } }), 'ETOOLARGE', /exceeds/, 'a1');
  refuse(JSON.stringify({ action: 'ps', args: { pad: 'x'.repeat(2000) } }), 'ETOOLARGE', /exceeds/);
  assert.equal(errorReply('a1', 'd1', new BerthError('ENOCONTAINER', 'No such container: x')), { id: 'a1', device: 'd1', ok: false, error: { code: 'not_found', message: 'No such container: x' } });
});

test('request ids are remembered across reopen, bounded, and a torn line is ignored', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-dedupe-'));
  try {
    const file = join(dir, 'ids');
    const ids = await RecentRequestIds.open(file, 3);
    assert.ok(await ids.claim('a'));
    assert.not.ok(await ids.claim('a'));
    for (const id of ['b', 'c', 'd', 'e', 'f', 'g']) assert.ok(await ids.claim(id));
    appendFileSync(file, 'torn/');
    const again = await RecentRequestIds.open(file, 3);
    assert.not.ok(again.has('a'), 'the oldest fell out of the bound');
    assert.ok(again.has('g') && again.has('f') && again.has('e'));
    assert.not.ok(await again.claim('g'));
    assert.ok(readFileSync(file, 'utf8').split('\n').length <= 8, 'the log is compacted');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('backoff grows, is capped, and jitters within [ceiling/2, ceiling]', () => {
  assert.is(backoffDelay(0, { baseMs: 1000, random: () => 0 }), 500);
  assert.is(backoffDelay(0, { baseMs: 1000, random: () => 1 }), 1000);
  assert.is(backoffDelay(3, { baseMs: 1000, random: () => 1 }), 8000);
  assert.is(backoffDelay(30, { baseMs: 1000, maxMs: 60_000, random: () => 1 }), 60_000);
});

test('fleet config: flags and file keys, defaults, and clear errors', () => {
  const load = (argv: string[], file: Record<string, unknown> = {}) => loadFleetConfig(parseFlags(argv, FLEET_FLAGS).flags, file);
  assert.is(load([]), undefined);
  const c = load(['--mqtt-broker', 'mqtts://b:8883', '--device-id', 'r1', '--group', 'eu', '--group', 'eu', '--allowed-actions', 'ping,ps'], { 'telemetry-interval': 30 })!;
  assert.is(c.prefix, 'berth');
  assert.equal(c.groups, ['eu']);
  assert.equal(c.allowedActions, ['ping', 'ps']);
  assert.is(c.telemetryInterval, 30);
  assert.equal(load([], { 'mqtt-broker': 'ws://b/mqtt', groups: ['a'] })!.groups, ['a']);
  assert.throws(() => load(['--mqtt-broker', 'http://b']), /mqtt:\/\//);
  assert.throws(() => load(['--mqtt-broker', 'mqtt://b', '--device-id', 'a/b']), /topic level/);
  assert.throws(() => load(['--mqtt-broker', 'mqtt://b', '--allowed-actions', 'ps,format']), /unknown action "format"/);
  assert.throws(() => load(['--mqtt-broker', 'mqtt://b', '--command-key', 'bm9wZQ==']), /command-keys/);
});

test.run();
