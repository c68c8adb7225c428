import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDevice } from '../../../src/cli/commands/create';

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

test.run();
