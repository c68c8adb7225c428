// IPv4 address arithmetic and allocation. Pure: which addresses are taken comes from the
// lease store, so allocation is testable without a kernel.
import { BerthError } from '../util/errors';

export interface Subnet { base: number; prefix: number }

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new BerthError('EINVAL', `invalid IPv4 address "${ip}"`);
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** "10.88.0.0/16" -> base and prefix; host bits must be zero unless `allowHostBits` (Docker's --bip gives the gateway). */
export function parseCidr(cidr: string, allowHostBits = false): Subnet & { address: number } {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr.trim());
  if (!m || Number(m[2]) > 32) throw new BerthError('EINVAL', `invalid CIDR "${cidr}"`);
  const prefix = Number(m[2]);
  const address = ipToInt(m[1]!);
  const base = (address & mask(prefix)) >>> 0;
  if (!allowHostBits && base !== address) throw new BerthError('EINVAL', `invalid subnet "${cidr}": host bits are set (did you mean ${intToIp(base)}/${prefix}?)`);
  return { base, prefix, address };
}

export function formatCidr(s: Subnet): string {
  return `${intToIp(s.base)}/${s.prefix}`;
}

export function contains(s: Subnet, ip: string): boolean {
  return ((ipToInt(ip) & mask(s.prefix)) >>> 0) === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

/** Usable hosts: not the network address, not broadcast (for prefixes that have them). */
function hostRange(s: Subnet): [number, number] {
  const size = 2 ** (32 - s.prefix);
  if (size <= 2) throw new BerthError('EINVAL', `subnet ${formatCidr(s)} is too small for a bridge network`);
  return [s.base + 1, s.base + size - 2];
}

/** The gateway Docker picks: the first host address. */
export function defaultGateway(s: Subnet): string {
  return intToIp(hostRange(s)[0]);
}

/**
 * The next free address after the last one handed out (so a just-released address is
 * not reused at once: a stale ARP entry or connection to it would reach the wrong
 * container), wrapping around; ENOSPC-like ECONFLICT when the subnet is full.
 */
export function allocate(s: Subnet, taken: ReadonlySet<string>, after?: string): string {
  const [first, last] = hostRange(s);
  const count = last - first + 1;
  let start = after && contains(s, after) ? ipToInt(after) + 1 : first;
  if (start > last || start < first) start = first;
  for (let i = 0; i < count; i++) {
    const candidate = intToIp(first + ((start - first + i) % count));
    if (!taken.has(candidate)) return candidate;
  }
  throw new BerthError('ECONFLICT', `no available IPv4 addresses on subnet ${formatCidr(s)}`);
}

/** The first /`prefix` block of `pool` that overlaps none of `used` (host routes, other networks). */
export function pickSubnet(pool: Subnet, prefix: number, used: readonly Subnet[]): Subnet {
  const step = 2 ** (32 - prefix);
  const blocks = 2 ** (prefix - pool.prefix);
  for (let i = 0; i < blocks; i++) {
    const candidate = { base: (pool.base + i * step) >>> 0, prefix };
    if (!used.some((u) => overlaps(u, candidate))) return candidate;
  }
  throw new BerthError('ECONFLICT', `no free subnet left in the address pool ${formatCidr(pool)}: give one with --subnet`);
}

/** A stable locally administered MAC derived from the address, as Docker does (02:42:<ip>). */
export function macFor(ip: string): string {
  return ['02', '42', ...ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}
