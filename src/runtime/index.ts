// The runtime's entry point: createRuntime() detects the host facts the spec depends on
// (cgroup v2 -> cgroup namespace, the kernel's last capability) once.
import { statfsSync } from 'node:fs';
import { hostBoundingCaps, hostLastCap } from './caps';
import { HelperRuntime, type RuntimeOptions } from './runtime';

const CGROUP2_SUPER_MAGIC = 0x63677270;

/** True when `root` is a cgroup2 mount (a pure v2 host; hybrid hosts have tmpfs there). */
export function isCgroupV2Root(root = '/sys/fs/cgroup'): boolean {
  try {
    return statfsSync(root).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

export function createRuntime(opts: RuntimeOptions): HelperRuntime {
  return new HelperRuntime({
    ...opts,
    host: {
      cgroupNamespace: opts.cgroupNamespace ?? isCgroupV2Root(),
      lastCap: opts.lastCap ?? hostLastCap(),
      boundingCaps: hostBoundingCaps(),
    },
  });
}

export { HelperRuntime, defaultHelperPath, MAX_SOCKET_PATH, type RuntimeOptions } from './runtime';
export { buildSpec, buildSpecFromUser, buildExecSpec, defaultMounts, bindMount, tmpfsMount, mergeEnv, MS, MASKED_PATHS, READONLY_PATHS, type HostSpecOptions } from './spec';
export { computeCaps, normalizeCapName, allCaps, hostBoundingCaps, DOCKER_DEFAULT_CAPS, ALL_CAP_NAMES } from './caps';
export { resolveUser, resolveUserFrom, readFileInRoot, resolveInRoot, type ResolvedUser } from './users';
export { escapeValue, unescapeValue, serializeSpec, serializeExecSpec, parseSpec, parseExitFile, parseStateFile, parseStateReply, SPEC_MAGIC, type HelperExecSpec } from './spec-format';
export { resolveDevices, validDeviceMode, type ContainerDevice, type DeviceRequest } from './devices';
export type * from './types';
