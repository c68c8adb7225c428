// HostConfig.Devices and DeviceCgroupRules: checked when a container is created (so a
// typo fails `docker create`, not a later restart), resolved to host nodes at each start.
import { posix as path } from 'node:path';
import { DEFAULT_DEVICE_RULES, type DeviceRule } from '../cgroups';
import { validDeviceMode, type ContainerDevice, type DeviceRequest } from '../runtime/devices';
import { BerthError } from '../util/errors';
import type { HostConfig } from './types';

const CGROUP_RULE = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/;

/** The requests of a HostConfig, with Docker's defaults filled in; throws on bad input. */
export function deviceRequests(hc: HostConfig): DeviceRequest[] {
  const devices = hc.Devices;
  if (devices === undefined || devices === null) return [];
  if (!Array.isArray(devices)) throw new BerthError('EINVAL', 'HostConfig.Devices must be an array');
  return devices.map((d, i) => {
    if (!d || typeof d !== 'object' || typeof d.PathOnHost !== 'string' || !d.PathOnHost) {
      throw new BerthError('EINVAL', `HostConfig.Devices[${i}].PathOnHost must be a non-empty string`);
    }
    const pathInContainer = d.PathInContainer || d.PathOnHost;
    if (!path.isAbsolute(pathInContainer) || path.normalize(pathInContainer) === '/') throw new BerthError('EINVAL', `bad format for path: ${pathInContainer}`);
    const permissions = d.CgroupPermissions || 'rwm';
    if (!validDeviceMode(permissions)) throw new BerthError('EINVAL', `invalid device mode: ${permissions}`);
    return { pathOnHost: d.PathOnHost, pathInContainer, permissions };
  });
}

function cgroupRules(hc: HostConfig): DeviceRule[] {
  const rules = hc.DeviceCgroupRules;
  if (rules === undefined || rules === null) return [];
  if (!Array.isArray(rules)) throw new BerthError('EINVAL', 'HostConfig.DeviceCgroupRules must be an array');
  return rules.map((rule) => {
    const m = typeof rule === 'string' ? CGROUP_RULE.exec(rule) : null;
    if (!m) throw new BerthError('EINVAL', `invalid device cgroup format '${String(rule)}'`);
    const num = (s: string) => (s === '*' ? '*' : Number(s));
    return { allow: true, type: m[1] as DeviceRule['type'], major: num(m[2]), minor: num(m[3]), access: m[4] };
  });
}

/** Checks everything create can check without the devices being present. */
export function validateDeviceConfig(hc: HostConfig): void {
  deviceRequests(hc);
  cgroupRules(hc);
}

/**
 * The device cgroup for a start: everything for privileged, else Docker's default list
 * plus each given node with its permissions and the extra --device-cgroup-rule lines.
 */
export function deviceCgroupRules(hc: HostConfig, devices: ContainerDevice[]): DeviceRule[] {
  if (hc.Privileged) return [{ allow: true, type: 'a', major: '*', minor: '*', access: 'rwm' }];
  return [
    ...DEFAULT_DEVICE_RULES,
    ...devices.map((d): DeviceRule => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.permissions })),
    ...cgroupRules(hc),
  ];
}
