// The nftables backend: two tables that berth owns (`inet <owner>` for filtering, `ip
// <owner>-nat` for NAT), replaced in one `nft -f` transaction. Nothing else in the ruleset
// is read or written, so fw4's `inet fw4` and anything a user added stay as they are.
//
// Published ports are DNAT in prerouting (LAN and other hosts) and in output (the host
// itself: 127.0.0.1:PORT). Output-DNATed packets keep their 127.0.0.1 source, which the
// kernel only routes out of an interface with route_localnet=1 (set on berth's bridges);
// masquerade then gives them the gateway address so the container can answer. No userland
// proxy: nothing extra runs per port, which matters on a router.
import { nftApply, nftListTable } from '../host/net';
import type { FirewallState } from './types';
import type { Firewall } from './firewall';

const quote = (name: string) => `"${name}"`;
const nameSet = (names: string[]) => (names.length === 1 ? quote(names[0]!) : `{ ${names.map(quote).join(', ')} }`);
const isWildcard = (ip: string) => ip === '' || ip === '0.0.0.0';

export function nftTableNames(owner: string): { filter: string; nat: string } {
  return { filter: owner, nat: `${owner}-nat` };
}

/** The whole script: create-if-missing, delete, define; one transaction. */
export function renderNftScript(owner: string, state: FirewallState): string {
  const { filter, nat } = nftTableNames(owner);
  const bridges = state.networks.map((n) => n.bridge);
  const forward: string[] = [];
  if (bridges.length) {
    forward.push(`oifname ${nameSet(bridges)} ct state established,related accept`);
    forward.push(`oifname ${nameSet(bridges)} ct status dnat accept`);
  }
  for (const n of state.networks) {
    const others = bridges.filter((b) => b !== n.bridge);
    // Networks are isolated from each other, as Docker's do.
    if (others.length) forward.push(`iifname ${quote(n.bridge)} oifname ${nameSet(others)} drop`);
    // From outside only replies and published ports get in.
    forward.push(`oifname ${quote(n.bridge)} iifname != ${quote(n.bridge)} drop`);
    if (n.internal) forward.push(`iifname ${quote(n.bridge)} oifname != ${quote(n.bridge)} drop`);
  }
  const dnat: string[] = [];
  for (const p of state.ports) {
    const daddr = isWildcard(p.hostIp) ? '' : `ip daddr ${p.hostIp} `;
    dnat.push(`${daddr}${p.proto} dport ${p.hostPort} dnat to ${p.containerIp}:${p.containerPort}`);
  }
  const postrouting: string[] = [];
  for (const n of state.networks) {
    if (!n.internal) postrouting.push(`ip saddr ${n.subnet} oifname != ${quote(n.bridge)} masquerade`);
    // The host reaching a published port through 127.0.0.1, and a container reaching its
    // own published port through a host address (hairpin).
    postrouting.push(`oifname ${quote(n.bridge)} ip saddr 127.0.0.0/8 masquerade`);
    postrouting.push(`oifname ${quote(n.bridge)} ip saddr ${n.subnet} ct status dnat masquerade`);
  }
  const chain = (name: string, hook: string | undefined, rules: string[]) =>
    `\tchain ${name} {\n${hook ? `\t\t${hook}\n` : ''}${rules.map((r) => `\t\t${r}\n`).join('')}\t}\n`;
  return [
    `table inet ${filter}`,
    `delete table inet ${filter}`,
    `table inet ${filter} {\n${chain('forward', 'type filter hook forward priority filter; policy accept;', forward)}}`,
    `table ip ${nat}`,
    `delete table ip ${nat}`,
    `table ip ${nat} {\n`
      + chain('published', undefined, dnat)
      + chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', ['fib daddr type local jump published'])
      + chain('output', 'type nat hook output priority -100; policy accept;', ['fib daddr type local jump published'])
      + chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', postrouting)
      + '}',
  ].join('\n') + '\n';
}

export class NftablesFirewall implements Firewall {
  readonly name = 'nftables' as const;
  constructor(readonly owner: string) {}

  apply(state: FirewallState): Promise<void> {
    return nftApply(renderNftScript(this.owner, state));
  }

  async remove(): Promise<void> {
    const { filter, nat } = nftTableNames(this.owner);
    const script: string[] = [];
    if (await nftListTable('inet', filter) !== undefined) script.push(`delete table inet ${filter}`);
    if (await nftListTable('ip', nat) !== undefined) script.push(`delete table ip ${nat}`);
    if (script.length) await nftApply(script.join('\n') + '\n');
  }
}
