import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDevice, buildCreateRequest, CREATE_FLAGS } from '../../../src/cli/commands/create';
import { parseGoDuration } from '../../../src/cli/containers';
import { parseFlags } from '../../../src/cli/flags';

test("--device: docker's HOST[:CONTAINER][:MODE] forms", () => {
  assert.equal(parseDevice('/dev/ttyUSB0'), { PathOnHost: '/dev/ttyUSB0', PathInContainer: '/dev/ttyUSB0', CgroupPermissions: 'rwm' });
  assert.equal(parseDevice('/dev/ttyUSB0:/dev/zigbee'), { PathOnHost: '/dev/ttyUSB0', PathInContainer: '/dev/zigbee', CgroupPermissions: 'rwm' });
  assert.equal(parseDevice('/dev/ttyUSB0:rw'), { PathOnHost: '/dev/ttyUSB0', PathInContainer: '/dev/ttyUSB0', CgroupPermissions: 'rw' });
  assert.equal(parseDevice('/dev/sda:/dev/xvda:r'), { PathOnHost: '/dev/sda', PathInContainer: '/dev/xvda', CgroupPermissions: 'r' });
  assert.throws(() => parseDevice('/dev/sda:/dev/xvda:rr'), /invalid device mode: rr/);
  assert.throws(() => parseDevice('/dev/sda:/dev/xvda:rx'), /invalid device mode: rx/);
  assert.throws(() => parseDevice('/dev/sda:xvda'), /bad format for path: xvda/);
  assert.throws(() => parseDevice('a:b:c:d'), /invalid device specification: a:b:c:d/);
  assert.throws(() => parseDevice(''), /invalid device specification/);
});

const S = 1_000_000_000;
const bodyOf = (args: string[]) => {
  const { flags } = parseFlags([...args, 'img'], CREATE_FLAGS, { stopAtPositional: true });
  return buildCreateRequest(flags, 'img', [], {}, { stdin: false, output: false, autoRemove: false }).body;
};

test('durations: Go syntax as docker parses --health-* flags', () => {
  assert.is(parseGoDuration('5s', '--x'), 5 * S);
  assert.is(parseGoDuration('1m30s', '--x'), 90 * S);
  assert.is(parseGoDuration('1.5h', '--x'), 5400 * S);
  assert.is(parseGoDuration('250ms', '--x'), 250_000_000);
  assert.is(parseGoDuration('0', '--x'), 0);
  assert.is(parseGoDuration('-2s', '--x'), -2 * S);
  assert.throws(() => parseGoDuration('5', '--health-interval'), /invalid argument "5" for "--health-interval" flag: time: invalid duration "5"/);
  assert.throws(() => parseGoDuration('abc', '--x'), /invalid duration "abc"/);
  assert.throws(() => parseGoDuration('', '--x'), /invalid duration/);
});

test('--health-* flags become Config.Healthcheck; --no-healthcheck sends NONE', () => {
  assert.equal(bodyOf(['--health-cmd', 'test -f /tmp/ok', '--health-interval', '1s', '--health-retries', '2']).Healthcheck, {
    Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: S, Timeout: 0, StartPeriod: 0, StartInterval: 0, Retries: 2,
  });
  assert.equal(bodyOf(['--health-timeout', '1m', '--health-start-period', '10s']).Healthcheck, {
    Interval: 0, Timeout: 60 * S, StartPeriod: 10 * S, StartInterval: 0, Retries: 0,
  }, 'no --health-cmd keeps the image test');
  assert.equal(bodyOf(['--no-healthcheck']).Healthcheck, { Test: ['NONE'] });
  assert.is(bodyOf([]).Healthcheck, undefined);
  assert.throws(() => bodyOf(['--no-healthcheck', '--health-cmd', 'true']), /--no-healthcheck conflicts with --health-\* options/);
  assert.throws(() => bodyOf(['--health-interval', '-1s']), /--health-interval cannot be negative/);
  assert.throws(() => bodyOf(['--health-retries', '-1']), /--health-retries cannot be negative/);
  assert.throws(() => bodyOf(['--health-retries', 'x']), /invalid argument "x" for "--health-retries" flag/);
});

test.run();
