// Capability sets as Docker computes them: its default set, --privileged, --cap-add and
// --cap-drop (names with or without CAP_, any case, and ALL).
import { readFileSync } from 'node:fs';
import { BerthError } from '../util/errors';

/** Index = capability number (linux/capability.h), as the helper's table. */
export const ALL_CAP_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
] as const;

export const DOCKER_DEFAULT_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP',
  'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
];

/** The highest capability the running kernel knows; older kernels know fewer. */
export function hostLastCap(file = '/proc/sys/kernel/cap_last_cap'): number {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(n) && n >= 0) return Math.min(n, ALL_CAP_NAMES.length - 1);
  } catch { /* no procfs: assume every capability we can name */ }
  return ALL_CAP_NAMES.length - 1;
}

/**
 * The capabilities berth itself may hand out: its bounding set (CapBnd). A sandbox or a
 * parent container may have dropped some; asking the kernel for those fails capset.
 */
export function hostBoundingCaps(file = '/proc/self/status'): string[] | undefined {
  try {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync(file, 'utf8'));
    if (!m) return undefined;
    const mask = BigInt(`0x${m[1]}`);
    return ALL_CAP_NAMES.filter((_, i) => (mask >> BigInt(i)) & 1n);
  } catch {
    return undefined;
  }
}

/** Every capability the kernel supports and berth holds (what --privileged and --cap-add ALL grant). */
export function allCaps(lastCap: number, bounding?: readonly string[]): string[] {
  const known = ALL_CAP_NAMES.slice(0, lastCap + 1);
  return bounding ? known.filter((c) => bounding.includes(c)) : known;
}

/** "cap_net_admin" / "NET_ADMIN" -> "NET_ADMIN"; "all" -> "ALL"; unknown -> EINVAL. */
export function normalizeCapName(name: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const bare = upper.startsWith('CAP_') ? upper.slice(4) : upper;
  if (!(ALL_CAP_NAMES as readonly string[]).includes(bare)) throw new BerthError('EINVAL', `unknown capability: "${name}"`);
  return bare;
}

/**
 * Docker's rules: privileged = everything; ALL in add = everything but the drops; ALL in
 * drop = only the adds; otherwise defaults minus drops plus adds.
 */
export function computeCaps(opts: { privileged?: boolean; capAdd?: string[]; capDrop?: string[]; lastCap: number; bounding?: readonly string[]; defaults?: string[] }): string[] {
  const all = allCaps(opts.lastCap, opts.bounding);
  if (opts.privileged) return all;
  const add = (opts.capAdd ?? []).map(normalizeCapName);
  for (const cap of add) {
    if (cap !== 'ALL' && opts.bounding && !opts.bounding.includes(cap)) {
      throw new BerthError('EINVAL', `cannot add capability ${cap}: berth itself runs without it (not in its bounding set)`);
    }
  }
  const drop = (opts.capDrop ?? []).map(normalizeCapName);
  let caps: string[];
  if (add.includes('ALL')) caps = all.filter((c) => !drop.includes(c));
  else if (drop.includes('ALL')) caps = add;
  else caps = [...(opts.defaults ?? DOCKER_DEFAULT_CAPS).filter((c) => !drop.includes(c)), ...add];
  return [...new Set(caps)];
}
