// The iptables backend for firmware without nftables (legacy or nft flavour; both take the
// same commands). berth owns a few chains named after its owner tag and one jump from each
// built-in chain it needs; the chains are rebuilt with `iptables-restore --noflush`, which
// replaces only the chains it declares.
import { iptables, tool } from '../host/net';
import { BerthError } from '../util/errors';
import type { FirewallState } from './types';
import type { Firewall } from './firewall';

const isWildcard = (ip: string) => ip === '' || ip === '0.0.0.0';

export function iptablesChains(owner: string) {
  const base = owner.toUpperCase().replace(/[^A-Z0-9]/g, '-').slice(0, 20);
  return { forward: `${base}-FWD`, pre: `${base}-PRE`, out: `${base}-OUT`, dnat: `${base}-DNAT`, post: `${base}-POST` };
}

/** The iptables-restore input for `state`: our chains only. */
export function renderIptablesRestore(owner: string, state: FirewallState): string {
  const c = iptablesChains(owner);
  const filter: string[] = [];
  for (const n of state.networks) {
    filter.push(`-A ${c.forward} -o ${n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    filter.push(`-A ${c.forward} -o ${n.bridge} -m conntrack --ctstate DNAT -j ACCEPT`);
  }
  for (const n of state.networks) {
    for (const other of state.networks) if (other.bridge !== n.bridge) filter.push(`-A ${c.forward} -i ${n.bridge} -o ${other.bridge} -j DROP`);
    filter.push(`-A ${c.forward} -o ${n.bridge} ! -i ${n.bridge} -j DROP`);
    if (n.internal) filter.push(`-A ${c.forward} -i ${n.bridge} ! -o ${n.bridge} -j DROP`);
  }
  const nat: string[] = [
    `-A ${c.pre} -m addrtype --dst-type LOCAL -j ${c.dnat}`,
    `-A ${c.out} -m addrtype --dst-type LOCAL -j ${c.dnat}`,
  ];
  for (const p of state.ports) {
    nat.push(`-A ${c.dnat} -p ${p.proto}${isWildcard(p.hostIp) ? '' : ` -d ${p.hostIp}`} --dport ${p.hostPort} -j DNAT --to-destination ${p.containerIp}:${p.containerPort}`);
  }
  for (const n of state.networks) {
    if (!n.internal) nat.push(`-A ${c.post} -s ${n.subnet} ! -o ${n.bridge} -j MASQUERADE`);
    nat.push(`-A ${c.post} -o ${n.bridge} -s 127.0.0.0/8 -j MASQUERADE`);
    nat.push(`-A ${c.post} -o ${n.bridge} -s ${n.subnet} -m conntrack --ctstate DNAT -j MASQUERADE`);
  }
  return [
    '*filter', `:${c.forward} - [0:0]`, ...filter, 'COMMIT',
    '*nat', `:${c.pre} - [0:0]`, `:${c.out} - [0:0]`, `:${c.dnat} - [0:0]`, `:${c.post} - [0:0]`, ...nat, 'COMMIT',
  ].join('\n') + '\n';
}

export class IptablesFirewall implements Firewall {
  readonly name = 'iptables' as const;
  constructor(readonly owner: string, readonly binary = 'iptables') {}

  private jumps(): Array<[string, string, string]> {
    const c = iptablesChains(this.owner);
    return [['filter', 'FORWARD', c.forward], ['nat', 'PREROUTING', c.pre], ['nat', 'OUTPUT', c.out], ['nat', 'POSTROUTING', c.post]];
  }

  async apply(state: FirewallState): Promise<void> {
    await tool(`${this.binary}-restore`, ['-w', '--noflush'], renderIptablesRestore(this.owner, state));
    for (const [table, builtin, chain] of this.jumps()) {
      if ((await iptables(this.binary, ['-t', table, '-C', builtin, '-j', chain])).code === 0) continue;
      const r = await iptables(this.binary, ['-t', table, '-I', builtin, '1', '-j', chain]);
      if (r.code !== 0) throw new BerthError('EINTERNAL', `${this.binary} -t ${table} -I ${builtin} -j ${chain} failed: ${r.stderr.trim()}`);
    }
  }

  async remove(): Promise<void> {
    for (const [table, builtin, chain] of this.jumps()) {
      while ((await iptables(this.binary, ['-t', table, '-D', builtin, '-j', chain])).code === 0) { /* every copy */ }
    }
    const c = iptablesChains(this.owner);
    for (const [table, chain] of [['filter', c.forward], ['nat', c.pre], ['nat', c.out], ['nat', c.dnat], ['nat', c.post]] as const) {
      await iptables(this.binary, ['-t', table, '-F', chain]);
      await iptables(this.binary, ['-t', table, '-X', chain]);
    }
  }
}
