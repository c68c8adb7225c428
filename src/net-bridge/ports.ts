// HostConfig.PortBindings -> concrete mappings, and their presentation in inspect and ps.
import { BerthError } from '../util/errors';
import type { PortMapping, Protocol } from './types';

type Bindings = Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null | undefined;

/** Docker picks unspecified host ports from the ephemeral range. */
export const EPHEMERAL_PORTS: [number, number] = [49153, 60999];

function parsePort(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new BerthError('EINVAL', `invalid ${what} "${text}"`);
  return n;
}

function parseKey(key: string): { port: number; proto: Protocol } {
  const [port, proto = 'tcp'] = key.split('/');
  if (proto !== 'tcp' && proto !== 'udp') throw new BerthError('EINVAL', `unsupported protocol "${proto}" in port "${key}" (tcp and udp are)`);
  return { port: parsePort(port!, 'container port'), proto };
}

const sameHostIp = (a: string, b: string) => a === b || a === '' || b === '' || a === '0.0.0.0' || b === '0.0.0.0';

export function clashes(a: PortMapping, b: PortMapping): boolean {
  return a.proto === b.proto && a.hostPort === b.hostPort && sameHostIp(a.hostIp, b.hostIp);
}

/**
 * Resolves every binding to one host port. `taken` are the mappings of other containers;
 * a fixed port already published is Docker's "port is already allocated".
 */
export function resolvePortBindings(bindings: Bindings, taken: readonly PortMapping[]): PortMapping[] {
  const out: PortMapping[] = [];
  const used = () => [...taken, ...out];
  for (const [key, list] of Object.entries(bindings ?? {})) {
    const { port, proto } = parseKey(key);
    for (const b of list ?? [{}]) {
      const hostIp = b.HostIp ?? '';
      if (hostIp.includes(':')) continue; // IPv6 publishing needs an IPv6 network
      const spec = b.HostPort ?? '';
      let range: [number, number];
      if (spec === '' || spec === '0') range = EPHEMERAL_PORTS;
      else if (spec.includes('-')) {
        const [lo, hi] = spec.split('-').map((p) => parsePort(p, 'host port')) as [number, number];
        if (hi < lo) throw new BerthError('EINVAL', `invalid host port range "${spec}"`);
        range = [lo, hi];
      } else range = [parsePort(spec, 'host port'), parsePort(spec, 'host port')];
      let chosen: PortMapping | undefined;
      for (let p = range[0]; p <= range[1] && !chosen; p++) {
        const candidate: PortMapping = { proto, hostIp, hostPort: p, containerPort: port };
        if (!used().some((u) => clashes(u, candidate))) chosen = candidate;
      }
      if (!chosen) {
        throw new BerthError('ECONFLICT', range[0] === range[1]
          ? `Bind for ${hostIp || '0.0.0.0'}:${range[0]} failed: port is already allocated`
          : `no free host port in ${range[0]}-${range[1]} for ${key}`);
      }
      out.push(chosen);
    }
  }
  return out;
}

/** inspect's NetworkSettings.Ports: published ones with their bindings, exposed-only ones as null. */
export function portsDocument(mappings: readonly PortMapping[], exposed: Record<string, object> | undefined): Record<string, Array<{ HostIp: string; HostPort: string }> | null> {
  const doc: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  for (const key of Object.keys(exposed ?? {})) doc[key.includes('/') ? key : `${key}/tcp`] = null;
  for (const m of mappings) (doc[`${m.containerPort}/${m.proto}`] ??= []).push({ HostIp: m.hostIp || '0.0.0.0', HostPort: String(m.hostPort) });
  return doc;
}

/** ps's Ports list. */
export function portsList(mappings: readonly PortMapping[], exposed: Record<string, object> | undefined): Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> {
  const out: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> = [];
  for (const m of mappings) out.push({ IP: m.hostIp || '0.0.0.0', PrivatePort: m.containerPort, PublicPort: m.hostPort, Type: m.proto });
  for (const key of Object.keys(exposed ?? {})) {
    const [port, proto = 'tcp'] = key.split('/');
    if (!mappings.some((m) => m.containerPort === Number(port) && m.proto === proto)) out.push({ PrivatePort: Number(port), Type: proto });
  }
  return out;
}
