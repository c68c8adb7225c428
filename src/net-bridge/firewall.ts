// Firewall backends: where the choice between nftables and iptables is made. Each backend
// owns only its own objects (nft tables, or iptables chains plus one jump per built-in
// chain) and rebuilds them whole from the FirewallState, so there is nothing to diff and
// a rule of a removed container cannot survive a rebuild.
import { hasCommand, writeSysctl } from '../host/net';
import { BerthError } from '../util/errors';
import type { FirewallState } from './types';
import { NftablesFirewall } from './nft';
import { IptablesFirewall } from './iptables';

export interface Firewall {
  readonly name: 'nftables' | 'iptables' | 'none';
  /** Replaces everything berth owns with the rules for `state`, atomically where the backend can. */
  apply(state: FirewallState): Promise<void>;
  /** Removes everything berth owns (tests, uninstall). */
  remove(): Promise<void>;
}

export type FirewallChoice = 'auto' | 'nftables' | 'iptables' | 'none';

export const noFirewall: Firewall = {
  name: 'none',
  async apply() { /* the user manages forwarding and NAT */ },
  async remove() { /* nothing owned */ },
};

/** nft when present (OpenWrt 22.03+ with fw4), else iptables (older firmware). */
export function detectFirewall(choice: FirewallChoice, owner: string, has: (cmd: string) => boolean = (c) => hasCommand(c)): Firewall {
  if (choice === 'none') return noFirewall;
  if (choice === 'nftables' || (choice === 'auto' && has('nft'))) return new NftablesFirewall(owner);
  if (choice === 'iptables' || (choice === 'auto' && has('iptables'))) return new IptablesFirewall(owner, has('iptables') ? 'iptables' : 'iptables-legacy');
  if (choice === 'auto') throw new BerthError('EUNSUPPORTED', 'neither nft nor iptables is installed: install nftables (or iptables), or start the daemon with --firewall-backend none');
  throw new BerthError('EINVAL', `unknown firewall backend "${String(choice)}"`);
}

/** Routing between the bridges and the uplink needs forwarding on. */
export async function enableForwarding(): Promise<void> {
  await writeSysctl('net.ipv4.ip_forward', '1');
}
