// Docker's meanings of the HostConfig resource fields, shared by the v1 and v2 writers so
// both turn `docker run --memory 32m --cpus .5` into the same limits.
import { BerthError } from '../util/errors';
import type { CgroupLimits, DeviceRule, LimitKey } from './types';

export const DEFAULT_CPU_PERIOD_US = 100_000;
/** Docker refuses smaller memory limits: below this a container cannot even start. */
export const MIN_MEMORY_BYTES = 6 * 1024 * 1024;

const rule = (type: 'c' | 'b', major: number | '*', minor: number | '*', access = 'rwm'): DeviceRule => ({ allow: true, type, major, minor, access });

/** Docker's default device cgroup: deny everything, then allow these. */
export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = Object.freeze([
  { allow: false, type: 'a', major: '*', minor: '*', access: 'rwm' },
  rule('c', '*', '*', 'm'), // mknod of any device node is allowed; using it is not
  rule('b', '*', '*', 'm'),
  rule('c', 1, 3), // /dev/null
  rule('c', 1, 5), // /dev/zero
  rule('c', 1, 7), // /dev/full
  rule('c', 1, 8), // /dev/random
  rule('c', 1, 9), // /dev/urandom
  rule('c', 5, 0), // /dev/tty
  rule('c', 5, 1), // /dev/console
  rule('c', 5, 2), // /dev/ptmx
  rule('c', 136, '*'), // /dev/pts/*
  rule('c', 10, 200), // /dev/net/tun
]);

export const LIMIT_KEYS: readonly LimitKey[] = ['memory', 'memorySwap', 'cpuShares', 'nanoCpus', 'cpuQuota', 'cpuPeriod', 'cpusetCpus', 'cpusetMems', 'pidsLimit', 'blkioWeight', 'devices'];

/**
 * The keys of `limits` that ask the kernel to restrict something. Values that mean
 * "unlimited" or "unset" (0, -1, '') do not, so a host without cgroups still runs
 * containers created with them.
 */
export function requestedLimitKeys(limits: CgroupLimits): LimitKey[] {
  const keys: LimitKey[] = [];
  for (const key of LIMIT_KEYS) {
    const value = limits[key];
    if (value === undefined) continue;
    if (typeof value === 'number' && value <= 0) continue;
    if (typeof value === 'string' && value.trim() === '') continue;
    keys.push(key);
  }
  return keys;
}

const CPU_LIST = /^\s*\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*\s*$/;

/** Rejects combinations Docker rejects, with Docker's reasons. */
export function validateLimits(limits: CgroupLimits): void {
  const bad = (message: string): never => { throw new BerthError('EINVAL', message); };
  for (const key of LIMIT_KEYS) {
    const value = limits[key];
    if (typeof value === 'number' && !Number.isFinite(value)) bad(`${key} must be a finite number`);
  }
  const { memory, memorySwap, nanoCpus, cpuQuota, cpuPeriod, blkioWeight } = limits;
  if (memory !== undefined && memory !== 0 && memory < MIN_MEMORY_BYTES) bad(`minimum memory limit allowed is ${MIN_MEMORY_BYTES / 1024 / 1024}MB`);
  if (memorySwap !== undefined && memorySwap > 0) {
    if (!memory) bad('a memory-swap limit needs a memory limit in the same request');
    if (memorySwap < memory!) bad('the memory-swap limit must be at least the memory limit');
  }
  if (memorySwap !== undefined && memorySwap < -1) bad('memory-swap must be -1 (unlimited) or a size in bytes');
  if (limits.cpuShares !== undefined && limits.cpuShares < 0) bad('cpu-shares must not be negative');
  if (nanoCpus !== undefined && nanoCpus < 0) bad('cpus must not be negative');
  if (nanoCpus && (cpuQuota || cpuPeriod)) bad('conflicting options: cpus and cpu-period/cpu-quota cannot both be set');
  if (cpuPeriod && (cpuPeriod < 1000 || cpuPeriod > 1_000_000)) bad('cpu-period must be between 1000 and 1000000 microseconds');
  if (cpuQuota && cpuQuota > 0 && cpuQuota < 1000) bad('cpu-quota must be at least 1000 microseconds');
  if (nanoCpus && cpuQuotaFromNanoCpus(nanoCpus, DEFAULT_CPU_PERIOD_US) < 1000) bad('cpus must be at least 0.01');
  if (blkioWeight && (blkioWeight < 10 || blkioWeight > 1000)) bad('blkio-weight must be between 10 and 1000');
  for (const key of ['cpusetCpus', 'cpusetMems'] as const) {
    const list = limits[key];
    if (list && !CPU_LIST.test(list)) bad(`${key} "${list}" is not a list like 0-2,4`);
  }
  for (const device of limits.devices ?? []) {
    if (!['a', 'b', 'c'].includes(device.type)) bad(`device rule type "${device.type}" must be a, b or c`);
    if (!/^[rwm]+$/.test(device.access)) bad(`device rule access "${device.access}" must be made of r, w and m`);
    for (const n of [device.major, device.minor]) {
      if (n !== '*' && !(Number.isInteger(n) && n >= 0)) bad(`device rule number "${n}" must be a number or *`);
    }
  }
}

export function cpuQuotaFromNanoCpus(nanoCpus: number, periodUs: number): number {
  return Math.round((nanoCpus * periodUs) / 1e9);
}

/**
 * The CFS quota and period to write, or undefined for "leave as is". --cpus becomes a
 * quota over Docker's fixed 100 ms period; a quota of -1 means unlimited.
 */
export function cpuBandwidth(limits: CgroupLimits): { quota?: number; period?: number } | undefined {
  if (limits.nanoCpus && limits.nanoCpus > 0) {
    return { quota: cpuQuotaFromNanoCpus(limits.nanoCpus, DEFAULT_CPU_PERIOD_US), period: DEFAULT_CPU_PERIOD_US };
  }
  const quota = limits.cpuQuota === undefined || limits.cpuQuota === 0 ? undefined : limits.cpuQuota < 0 ? -1 : limits.cpuQuota;
  const period = limits.cpuPeriod ? limits.cpuPeriod : undefined;
  if (quota === undefined && period === undefined) return undefined;
  return { quota, period };
}

/**
 * Memory plus swap to allow, in bytes (-1 unlimited), or undefined for "leave as is".
 * At create time Docker gives a container as much swap as memory when only --memory is
 * set; `docker update --memory` alone leaves the swap limit where it was.
 */
export function memoryPlusSwap(limits: CgroupLimits, phase: 'create' | 'update'): number | undefined {
  const { memory, memorySwap } = limits;
  if (memorySwap === -1) return -1;
  if (memorySwap !== undefined && memorySwap > 0) return memorySwap;
  if (phase === 'create' && memory !== undefined && memory > 0) return memory * 2;
  return undefined;
}

/** Number of CPUs in a cpuset list such as "0-3,6". */
export function countCpuList(list: string): number {
  let count = 0;
  for (const part of list.split(',')) {
    const [from, to] = part.trim().split('-').map(Number);
    if (from === undefined || !Number.isInteger(from)) continue;
    count += to !== undefined && Number.isInteger(to) ? to - from + 1 : 1;
  }
  return count;
}
