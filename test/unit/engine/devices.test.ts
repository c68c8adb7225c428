import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deviceCgroupRules, deviceRequests, validateDeviceConfig } from '../../../src/engine/devices';
import { DEFAULT_DEVICE_RULES } from '../../../src/cgroups';

test('HostConfig.Devices from the API: defaults filled in, bad fields named', () => {
  assert.equal(deviceRequests({}), []);
  assert.equal(deviceRequests({ Devices: [{ PathOnHost: '/dev/net/tun' }] }), [{ pathOnHost: '/dev/net/tun', pathInContainer: '/dev/net/tun', permissions: 'rwm' }]);
  assert.equal(deviceRequests({ Devices: [{ PathOnHost: '/dev/kmsg', PathInContainer: '/dev/log', CgroupPermissions: 'r' }] }), [{ pathOnHost: '/dev/kmsg', pathInContainer: '/dev/log', permissions: 'r' }]);
  assert.throws(() => deviceRequests({ Devices: 'x' as never }), /HostConfig.Devices must be an array/);
  assert.throws(() => deviceRequests({ Devices: [{ PathOnHost: '' }] }), /HostConfig.Devices\[0\].PathOnHost/);
  assert.throws(() => deviceRequests({ Devices: [{ PathOnHost: '/dev/a', PathInContainer: '/' }] }), /bad format for path: \//);
  assert.throws(() => deviceRequests({ Devices: [{ PathOnHost: '/dev/a', CgroupPermissions: 'q' }] }), /invalid device mode: q/);
  assert.throws(() => validateDeviceConfig({ DeviceCgroupRules: ['c 1:x rwm'] }), /invalid device cgroup format 'c 1:x rwm'/);
});

test('device cgroup: privileged allows all; otherwise the defaults plus each node and rule', () => {
  assert.equal(deviceCgroupRules({ Privileged: true }, []), [{ allow: true, type: 'a', major: '*', minor: '*', access: 'rwm' }]);
  const rules = deviceCgroupRules({ DeviceCgroupRules: ['c 189:* rwm'] }, [
    { path: '/dev/ttyUSB0', type: 'c', major: 188, minor: 0, containerPath: '/dev/ttyUSB0', permissions: 'rw' },
  ]);
  assert.equal(rules.slice(0, DEFAULT_DEVICE_RULES.length), [...DEFAULT_DEVICE_RULES]);
  assert.equal(rules.slice(DEFAULT_DEVICE_RULES.length), [
    { allow: true, type: 'c', major: 188, minor: 0, access: 'rw' },
    { allow: true, type: 'c', major: 189, minor: '*', access: 'rwm' },
  ]);
});

test.run();
