// Bridge networking: networks (a Linux bridge and a subnet each), one network namespace per
// container created by the daemon, veth pairs into the bridges, address leases, published
// ports and the firewall rules that follow from all of it. The engine reaches this through
// its NetworkHook (attach at start, detach at exit); the API through the network routes.
//
// All state changes run one at a time (a promise chain), and leases are written before
// links are made, so a crash leaves records that the next start can clean up from.
import { createHash, randomBytes } from 'node:crypto';
import { BerthError, isBerthError } from '../util/errors';
import { logger } from '../util/log';
import {
  bridgePorts, deleteLink, ipBatch, ipJson, ipv4Routes, linkExists, linkMtu, netnsAdd, netnsDelete, netnsList, netnsPath, udpListening, writeSysctl,
} from '../host/net';
import { allocate, defaultGateway, formatCidr, intToIp, macFor, overlaps, parseCidr, pickSubnet, type Subnet } from './ipam';
import { NetworkStore } from './store';
import { enableForwarding, type Firewall } from './firewall';
import { updateHostsFile, type HostsEntry } from './hosts';
import { portsDocument, portsList, resolvePortBindings } from './ports';
import type { Endpoint, FirewallState, LeaseState, NetworkRecord, PortMapping, Sandbox } from './types';

const log = logger('net-bridge');

export const DEFAULT_BRIDGE = 'berth0';
/** Unlikely to clash with a router's LAN (192.168.x, 10.0.x) or Docker's 172.17. */
export const DEFAULT_BIP = '10.88.0.1/16';
/** User networks get /24s from here unless given a subnet. */
export const DEFAULT_USER_POOL = '10.89.0.0/16';

const PREDEFINED = new Set(['bridge', 'host', 'none']);
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface BridgeNetworkingOptions {
  dataRoot: string;
  /** The default network's bridge; also names what this daemon owns (tables, netns names). */
  bridge?: string;
  /** The default bridge's address with prefix, Docker's --bip. */
  bip?: string;
  userPool?: string;
  firewall: Firewall;
}

/** What the engine tells us about a container it starts. */
export interface AttachRequest {
  id: string;
  name: string;
  hostname?: string;
  hostsPath?: string;
  hostConfig: { NetworkMode?: string; PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null; [k: string]: unknown };
}

/** What connect and disconnect need to know about a container (from the engine). */
export interface ContainerInfo { id: string; name: string; running: boolean }

export interface CreateNetworkRequest {
  Name: string;
  Driver?: string;
  Internal?: boolean;
  Labels?: Record<string, string> | null;
  Options?: Record<string, string> | null;
  IPAM?: { Config?: Array<{ Subnet?: string; Gateway?: string }> | null } | null;
  CheckDuplicate?: boolean;
}

/** The tag on what a daemon creates outside its data root: `berth` for berth0, else berth-<bridge>. */
export function ownerOf(bridge: string): string {
  return bridge === DEFAULT_BRIDGE ? 'berth' : `berth-${bridge}`;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

export class BridgeNetworking {
  readonly bridge: string;
  /** Prefix of everything this daemon creates outside its data root (netns names, firewall tables). */
  readonly owner: string;
  private readonly bip: ReturnType<typeof parseCidr>;
  private readonly userPool: Subnet;
  private readonly store: NetworkStore;
  private readonly firewall: Firewall;
  private networks: NetworkRecord[] = [];
  private leases: LeaseState = { version: 1, sandboxes: {}, endpoints: [], lastIp: {}, extra: {} };
  private queue: Promise<unknown> = Promise.resolve();
  /** Late-bound: the engine opens after us. */
  containerLookup?: (ref: string) => Promise<ContainerInfo>;

  constructor(opts: BridgeNetworkingOptions) {
    this.bridge = opts.bridge ?? DEFAULT_BRIDGE;
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/.test(this.bridge)) throw new BerthError('EINVAL', `invalid bridge name "${this.bridge}" (at most 15 characters)`);
    this.owner = ownerOf(this.bridge);
    this.bip = parseCidr(opts.bip ?? DEFAULT_BIP, true);
    this.userPool = parseCidr(opts.userPool ?? DEFAULT_USER_POOL);
    this.store = new NetworkStore(opts.dataRoot);
    this.firewall = opts.firewall;
  }

  get firewallName(): string { return this.firewall.name; }

  private locked<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => {});
    return run;
  }

  // ---- start-up ----

  /** Loads state, makes sure the default network exists, restores the firewall from the leases. */
  async init(): Promise<void> {
    const { networks, leases } = await this.store.load();
    this.networks = networks;
    this.leases = leases;
    const subnet = formatCidr(this.bip);
    const gateway = this.bip.address === this.bip.base ? defaultGateway(this.bip) : intToIp(this.bip.address);
    let def = this.networks.find((n) => n.Name === 'bridge');
    if (!def) {
      def = { Id: hex(32), Name: 'bridge', Driver: 'bridge', Created: new Date().toISOString(), Subnet: subnet, Gateway: gateway, Bridge: this.bridge, Internal: false, Labels: {}, Options: {} };
      this.networks.unshift(def);
      await this.store.saveNetworks(this.networks);
    } else if (def.Subnet !== subnet || def.Gateway !== gateway || def.Bridge !== this.bridge) {
      if (this.leases.endpoints.some((e) => e.networkId === def!.Id)) {
        log.warn('the default network keeps its old subnet while containers use it', { subnet: def.Subnet, wanted: subnet });
      } else {
        Object.assign(def, { Subnet: subnet, Gateway: gateway, Bridge: this.bridge });
        await this.store.saveNetworks(this.networks);
        await deleteLink(this.bridge).catch(() => {});
      }
    }
    await enableForwarding();
    await this.ensureBridge(def);
    // Leftovers of a crash are removed in reconcile(); until then running containers keep their rules.
    await this.applyFirewall();
  }

  /**
   * After the engine's restore: sandboxes of containers that are not running any more go,
   * and so do netns, veths and leases that no record explains.
   */
  reconcile(active: ReadonlySet<string>): Promise<void> {
    return this.locked(async () => {
      for (const id of Object.keys(this.leases.sandboxes)) if (!active.has(id)) await this.releaseSandbox(id);
      for (const e of [...this.leases.endpoints]) {
        if (!this.leases.sandboxes[e.containerId]) await this.releaseEndpoint(e);
      }
      const known = new Set(Object.values(this.leases.sandboxes).map((s) => s.netns));
      for (const name of await netnsList()) {
        if (name.startsWith(`${this.owner}-`) && name.length === this.owner.length + 65 && !known.has(name)) {
          log.info('removing a stale network namespace', { netns: name });
          await netnsDelete(name).catch((err) => log.warn('cannot remove stale netns', { netns: name, error: String(err) }));
        }
      }
      const veths = new Set(this.leases.endpoints.map((e) => e.hostVeth));
      for (const n of this.networks) {
        for (const port of await bridgePorts(n.Bridge)) {
          if (!veths.has(port)) {
            log.info('removing a stale veth', { link: port, bridge: n.Bridge });
            await deleteLink(port).catch(() => {});
          }
        }
      }
      for (const id of Object.keys(this.leases.extra)) if (!active.has(id) && !(await this.containerExists(id))) delete this.leases.extra[id];
      await this.store.saveLeases(this.leases);
      await this.applyFirewall();
    });
  }

  private async containerExists(id: string): Promise<boolean> {
    if (!this.containerLookup) return true;
    try { await this.containerLookup(id); return true; } catch (err) { return !isBerthError(err, 'ENOCONTAINER') && !isBerthError(err, 'ENOTFOUND'); }
  }

  // ---- the engine's hook ----

  /** Checks NetworkMode at create: Docker refuses unknown networks there, not at start. */
  validate(mode: string | undefined): void {
    const m = mode || 'bridge';
    if (m === 'host' || m === 'none' || m.startsWith('container:')) return;
    this.networkOf(m);
  }

  /** A nameserver at the gateway of the container's network, when a resolver (dnsmasq) listens there. */
  async nameserver(mode: string | undefined): Promise<string | undefined> {
    const m = mode || 'bridge';
    if (m === 'host' || m === 'none' || m.startsWith('container:')) return undefined;
    const net = this.findNetwork(m);
    if (!net) return undefined;
    return (await udpListening(net.Gateway, 53)) ? net.Gateway : undefined;
  }

  attach(c: AttachRequest): Promise<string | undefined> {
    const mode = c.hostConfig.NetworkMode || 'bridge';
    if (mode === 'host') return Promise.resolve('host');
    if (mode.startsWith('container:')) return this.joinContainer(mode.slice('container:'.length));
    return this.locked(async () => {
      await this.releaseSandbox(c.id);
      const nsName = `${this.owner}-${c.id}`;
      const sandbox: Sandbox = { containerId: c.id, name: c.name.replace(/^\//, ''), hostname: c.hostname ?? c.id.slice(0, 12), netns: nsName, ...(c.hostsPath ? { hostsPath: c.hostsPath } : {}), ports: [] };
      this.leases.sandboxes[c.id] = sandbox;
      await this.store.saveLeases(this.leases);
      try {
        await netnsDelete(nsName);
        await netnsAdd(nsName);
        await ipBatch(['link set lo up'], nsName);
        if (mode !== 'none') {
          const primary = this.networkOf(mode);
          const wanted = [{ networkId: primary.Id, aliases: [] as string[] }, ...(this.leases.extra[c.id] ?? []).filter((x) => x.networkId !== primary.Id)];
          for (const [i, w] of wanted.entries()) {
            const net = this.networks.find((n) => n.Id === w.networkId);
            if (net) await this.connectEndpoint(sandbox, net, `eth${i}`, w.aliases);
          }
          const taken = Object.values(this.leases.sandboxes).filter((s) => s.containerId !== c.id).flatMap((s) => s.ports);
          sandbox.ports = resolvePortBindings(c.hostConfig.PortBindings, taken);
          await this.store.saveLeases(this.leases);
          await this.applyFirewall();
          await this.refreshHosts(c.id);
        }
      } catch (err) {
        await this.releaseSandbox(c.id).catch((e) => log.warn('cannot undo a failed network setup', { id: c.id, error: String(e) }));
        await this.applyFirewall().catch(() => {});
        throw err;
      }
      return netnsPath(nsName);
    });
  }

  private async joinContainer(ref: string): Promise<string | undefined> {
    const target = this.containerLookup ? (await this.containerLookup(ref)) : { id: ref, name: ref, running: true };
    if (!target.running) throw new BerthError('ECONFLICT', `cannot join the network namespace of container ${ref}: it is not running`);
    const sandbox = this.leases.sandboxes[target.id];
    // A running container without a sandbox uses the host's network.
    return sandbox ? netnsPath(sandbox.netns) : 'host';
  }

  detach(id: string): Promise<void> {
    return this.locked(async () => {
      if (!this.leases.sandboxes[id] && !this.leases.endpoints.some((e) => e.containerId === id)) return;
      await this.releaseSandbox(id);
      await this.applyFirewall();
    });
  }

  /** The container is gone for good: forget its extra networks too. */
  removed(id: string): Promise<void> {
    return this.locked(async () => {
      if (!this.leases.extra[id]) return;
      delete this.leases.extra[id];
      await this.store.saveLeases(this.leases);
    });
  }

  /** inspect's NetworkSettings and ps's Ports/Networks for one container. */
  settings(id: string, hc: { NetworkMode?: string }, exposed?: Record<string, object>): { NetworkSettings: Record<string, unknown>; Ports: unknown[]; Networks: Record<string, unknown> } {
    const sandbox = this.leases.sandboxes[id];
    const mode = hc.NetworkMode || 'bridge';
    const endpoints = this.leases.endpoints.filter((e) => e.containerId === id);
    const networks: Record<string, unknown> = {};
    const configured = mode === 'none' || mode === 'host' ? [mode] : mode.startsWith('container:') ? [] : [mode, ...(this.leases.extra[id] ?? []).map((x) => this.networks.find((n) => n.Id === x.networkId)?.Name).filter((n): n is string => !!n)];
    for (const name of configured) {
      const net = this.findNetwork(name);
      const ep = net ? endpoints.find((e) => e.networkId === net.Id) : undefined;
      networks[net?.Name ?? name] = {
        IPAMConfig: null, Links: null, Aliases: ep?.aliases.length ? ep.aliases : null, MacAddress: ep?.mac ?? '',
        NetworkID: net?.Id ?? '', EndpointID: ep?.endpointId ?? '', Gateway: ep ? net!.Gateway : '', IPAddress: ep?.ip ?? '',
        IPPrefixLen: ep ? parseCidr(net!.Subnet).prefix : 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DriverOpts: null,
      };
    }
    const ports = sandbox?.ports ?? [];
    const primary = endpoints[0];
    const primaryNet = primary && this.networks.find((n) => n.Id === primary.networkId);
    const settings: Record<string, unknown> = {
      Bridge: '', SandboxID: sandbox ? createHash('sha256').update(sandbox.netns).digest('hex') : '', HairpinMode: false,
      LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0,
      Ports: sandbox ? portsDocument(ports, exposed) : {},
      SandboxKey: sandbox ? netnsPath(sandbox.netns) : '',
      SecondaryIPAddresses: null, SecondaryIPv6Addresses: null,
      EndpointID: primary?.endpointId ?? '', Gateway: primaryNet?.Gateway ?? '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0,
      IPAddress: primary?.ip ?? '', IPPrefixLen: primaryNet ? parseCidr(primaryNet.Subnet).prefix : 0, IPv6Gateway: '', MacAddress: primary?.mac ?? '',
      Networks: networks,
    };
    return { NetworkSettings: settings, Ports: sandbox ? portsList(ports, exposed) : [], Networks: networks };
  }

  // ---- networks (the API) ----

  private findNetwork(ref: string): NetworkRecord | undefined {
    const byName = this.networks.find((n) => n.Name === ref);
    if (byName) return byName;
    const byId = this.networks.filter((n) => n.Id.startsWith(ref));
    return ref.length > 0 && byId.length === 1 ? byId[0] : this.networks.find((n) => n.Id === ref);
  }

  private networkOf(ref: string): NetworkRecord {
    const n = this.findNetwork(ref);
    if (!n) throw new BerthError('ENOTFOUND', `network ${ref} not found`);
    return n;
  }

  private document(n: NetworkRecord | { Name: 'host' | 'none'; Id: string; Created: string }): Record<string, unknown> {
    if (n.Name === 'host' || n.Name === 'none') {
      return {
        Name: n.Name, Id: n.Id, Created: n.Created, Scope: 'local', Driver: n.Name === 'host' ? 'host' : 'null', EnableIPv6: false,
        IPAM: { Driver: 'default', Options: null, Config: [] }, Internal: false, Attachable: false, Ingress: false,
        ConfigFrom: { Network: '' }, ConfigOnly: false, Containers: {}, Options: {}, Labels: {},
      };
    }
    const net = n as NetworkRecord;
    const containers: Record<string, unknown> = {};
    const prefix = parseCidr(net.Subnet).prefix;
    for (const e of this.leases.endpoints.filter((x) => x.networkId === net.Id)) {
      containers[e.containerId] = { Name: this.leases.sandboxes[e.containerId]?.name ?? '', EndpointID: e.endpointId, MacAddress: e.mac, IPv4Address: `${e.ip}/${prefix}`, IPv6Address: '' };
    }
    return {
      Name: net.Name, Id: net.Id, Created: net.Created, Scope: 'local', Driver: 'bridge', EnableIPv6: false,
      IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: net.Subnet, Gateway: net.Gateway }] },
      Internal: net.Internal, Attachable: false, Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false,
      Containers: containers,
      Options: { 'com.docker.network.bridge.name': net.Bridge, ...(net.Name === 'bridge' ? { 'com.docker.network.bridge.default_bridge': 'true' } : {}), ...net.Options },
      Labels: net.Labels,
    };
  }

  /** The pseudo-networks host and none have stable ids derived from this daemon's owner tag. */
  private pseudo(name: 'host' | 'none') {
    return { Name: name, Id: createHash('sha256').update(`${this.owner}/${name}`).digest('hex'), Created: this.networks[0]?.Created ?? new Date().toISOString() };
  }

  list(filters: Record<string, string[]> = {}): Array<Record<string, unknown>> {
    const all = [...this.networks.map((n) => this.document(n)), this.document(this.pseudo('host')), this.document(this.pseudo('none'))];
    return all.filter((d) => {
      for (const [key, values] of Object.entries(filters)) {
        if (!values.length) continue;
        const name = d.Name as string, id = d.Id as string;
        switch (key) {
          case 'name': if (!values.some((v) => name.includes(v))) return false; break;
          case 'id': if (!values.some((v) => id.startsWith(v))) return false; break;
          case 'driver': if (!values.includes(d.Driver as string)) return false; break;
          case 'type': if (!values.some((v) => (v === 'builtin') === PREDEFINED.has(name))) return false; break;
          case 'label': {
            const labels = (d.Labels ?? {}) as Record<string, string>;
            if (!values.every((v) => { const eq = v.indexOf('='); return eq < 0 ? v in labels : labels[v.slice(0, eq)] === v.slice(eq + 1); })) return false;
            break;
          }
          case 'dangling': {
            const unused = Object.keys(d.Containers as object).length === 0 && !PREDEFINED.has(name);
            if (!values.some((v) => (v === 'true' || v === '1') === unused)) return false;
            break;
          }
          default: throw new BerthError('EINVAL', `invalid filter '${key}'`);
        }
      }
      return true;
    });
  }

  inspect(ref: string): Record<string, unknown> {
    if (ref === 'host' || ref === 'none') return this.document(this.pseudo(ref));
    for (const p of ['host', 'none'] as const) if (this.pseudo(p).Id.startsWith(ref) && ref.length >= 12) return this.document(this.pseudo(p));
    return this.document(this.networkOf(ref));
  }

  create(req: CreateNetworkRequest): Promise<{ Id: string; Warning: string }> {
    return this.locked(async () => {
      const name = req.Name;
      if (typeof name !== 'string' || !NETWORK_NAME.test(name)) throw new BerthError('EINVAL', `invalid network name "${String(name)}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      if (PREDEFINED.has(name)) throw new BerthError('EDENIED', `operation is not permitted on predefined ${name} network`);
      if (this.networks.some((n) => n.Name === name)) throw new BerthError('ECONFLICT', `network with name ${name} already exists`);
      const driver = req.Driver || 'bridge';
      if (driver !== 'bridge') throw new BerthError('EUNSUPPORTED', `network driver "${driver}" is not supported (bridge is)`);
      const config = req.IPAM?.Config?.[0];
      const used = [...this.networks.map((n) => parseCidr(n.Subnet)), ...(await ipv4Routes().catch(() => [])).map((r) => parseCidr(r, true))];
      let subnet: Subnet;
      if (config?.Subnet) {
        subnet = parseCidr(config.Subnet);
        const clash = this.networks.find((n) => overlaps(parseCidr(n.Subnet), subnet));
        if (clash) throw new BerthError('ECONFLICT', `invalid pool request: Pool overlaps with other one on this address space (${clash.Name} ${clash.Subnet})`);
      } else {
        subnet = pickSubnet(this.userPool, 24, used);
      }
      const gateway = config?.Gateway ?? defaultGateway(subnet);
      const id = hex(32);
      const net: NetworkRecord = {
        Id: id, Name: name, Driver: 'bridge', Created: new Date().toISOString(), Subnet: formatCidr(subnet), Gateway: gateway,
        Bridge: req.Options?.['com.docker.network.bridge.name'] ?? `br-${id.slice(0, 12)}`, Internal: !!req.Internal,
        Labels: { ...(req.Labels ?? {}) }, Options: { ...(req.Options ?? {}) },
      };
      this.networks.push(net);
      try {
        await this.store.saveNetworks(this.networks);
        await this.ensureBridge(net);
        await this.applyFirewall();
      } catch (err) {
        this.networks = this.networks.filter((n) => n.Id !== id);
        await this.store.saveNetworks(this.networks).catch(() => {});
        await deleteLink(net.Bridge).catch(() => {});
        throw err;
      }
      return { Id: id, Warning: '' };
    });
  }

  remove(ref: string): Promise<void> {
    return this.locked(async () => {
      if (PREDEFINED.has(ref)) throw new BerthError('EDENIED', `${ref} is a pre-defined network and cannot be removed`);
      const net = this.networkOf(ref);
      if (net.Name === 'bridge') throw new BerthError('EDENIED', 'bridge is a pre-defined network and cannot be removed');
      if (this.leases.endpoints.some((e) => e.networkId === net.Id)) throw new BerthError('ECONFLICT', `error while removing network: network ${net.Name} id ${net.Id} has active endpoints`);
      await this.dropNetwork(net);
    });
  }

  private async dropNetwork(net: NetworkRecord): Promise<void> {
    this.networks = this.networks.filter((n) => n.Id !== net.Id);
    for (const [id, list] of Object.entries(this.leases.extra)) {
      const left = list.filter((x) => x.networkId !== net.Id);
      if (left.length) this.leases.extra[id] = left; else delete this.leases.extra[id];
    }
    delete this.leases.lastIp[net.Id];
    await this.store.saveNetworks(this.networks);
    await this.store.saveLeases(this.leases);
    await this.applyFirewall();
    await deleteLink(net.Bridge);
  }

  prune(): Promise<{ NetworksDeleted: string[] | null }> {
    return this.locked(async () => {
      const deleted: string[] = [];
      for (const net of [...this.networks]) {
        if (net.Name === 'bridge' || this.leases.endpoints.some((e) => e.networkId === net.Id)) continue;
        if (Object.values(this.leases.extra).some((l) => l.some((x) => x.networkId === net.Id))) continue;
        await this.dropNetwork(net);
        deleted.push(net.Name);
      }
      return { NetworksDeleted: deleted.length ? deleted : null };
    });
  }

  /** docker network connect: running containers get an interface now, stopped ones at their next start. */
  connect(ref: string, containerRef: string, opts: { aliases?: string[] } = {}): Promise<void> {
    return this.locked(async () => {
      const net = this.networkOf(ref);
      const c = await this.lookup(containerRef);
      const sandbox = this.leases.sandboxes[c.id];
      const already = this.leases.endpoints.some((e) => e.containerId === c.id && e.networkId === net.Id)
        || (this.leases.extra[c.id] ?? []).some((x) => x.networkId === net.Id);
      if (already) throw new BerthError('EDENIED', `endpoint with name ${c.name.replace(/^\//, '')} already exists in network ${net.Name}`);
      (this.leases.extra[c.id] ??= []).push({ networkId: net.Id, aliases: opts.aliases ?? [] });
      await this.store.saveLeases(this.leases);
      if (c.running && sandbox) {
        const used = new Set(this.leases.endpoints.filter((e) => e.containerId === c.id).map((e) => e.ifname));
        let i = 0;
        while (used.has(`eth${i}`)) i++;
        await this.connectEndpoint(sandbox, net, `eth${i}`, opts.aliases ?? []);
        await this.applyFirewall();
        await this.refreshHosts(c.id);
      }
    });
  }

  disconnect(ref: string, containerRef: string, _opts: { force?: boolean } = {}): Promise<void> {
    return this.locked(async () => {
      const net = this.networkOf(ref);
      const c = await this.lookup(containerRef);
      const ep = this.leases.endpoints.find((e) => e.containerId === c.id && e.networkId === net.Id);
      const extra = (this.leases.extra[c.id] ?? []).some((x) => x.networkId === net.Id);
      if (!ep && !extra) throw new BerthError('EDENIED', `container ${c.id} is not connected to network ${net.Name}`);
      if (extra) {
        const left = this.leases.extra[c.id]!.filter((x) => x.networkId !== net.Id);
        if (left.length) this.leases.extra[c.id] = left; else delete this.leases.extra[c.id];
      }
      const peers = ep ? this.peersOn(net.Id, c.id) : [];
      if (ep) await this.releaseEndpoint(ep);
      await this.store.saveLeases(this.leases);
      await this.applyFirewall();
      await this.refreshHosts(c.id);
      for (const p of peers) await this.refreshHosts(p);
    });
  }

  private async lookup(ref: string): Promise<ContainerInfo> {
    if (!this.containerLookup) throw new BerthError('EINTERNAL', 'container lookup is not wired');
    return this.containerLookup(ref);
  }

  // ---- links ----

  private async ensureBridge(net: NetworkRecord): Promise<void> {
    const prefix = parseCidr(net.Subnet).prefix;
    if (!linkExists(net.Bridge)) {
      await ipBatch([`link add ${net.Bridge} type bridge`]);
    }
    const addrs = await ipJson<{ addr_info?: Array<{ family: string; local: string; prefixlen: number }> }>(['addr', 'show', 'dev', net.Bridge]);
    const has = addrs[0]?.addr_info?.some((a) => a.family === 'inet' && a.local === net.Gateway && a.prefixlen === prefix);
    await ipBatch([...(has ? [] : [`addr add ${net.Gateway}/${prefix} dev ${net.Bridge}`]), `link set ${net.Bridge} up`]);
    // Lets output-chain DNAT of 127.0.0.1:PORT leave through the bridge (see nft.ts).
    await writeSysctl(`net.ipv4.conf.${net.Bridge}.route_localnet`, '1');
  }

  private vethName(sandbox: Sandbox, net: NetworkRecord): string {
    return `vb${createHash('sha256').update(`${sandbox.netns}/${net.Id}`).digest('hex').slice(0, 11)}`;
  }

  private async connectEndpoint(sandbox: Sandbox, net: NetworkRecord, ifname: string, aliases: string[]): Promise<Endpoint> {
    await this.ensureBridge(net);
    const subnet = parseCidr(net.Subnet);
    const taken = new Set([net.Gateway, ...this.leases.endpoints.filter((e) => e.networkId === net.Id).map((e) => e.ip)]);
    const ip = allocate(subnet, taken, this.leases.lastIp[net.Id]);
    const ep: Endpoint = { endpointId: hex(32), networkId: net.Id, containerId: sandbox.containerId, ip, mac: macFor(ip), hostVeth: this.vethName(sandbox, net), ifname, aliases };
    this.leases.endpoints.push(ep);
    this.leases.lastIp[net.Id] = ip;
    // The lease is on disk before the link exists: a crash in between leaves a lease that reconcile() frees.
    await this.store.saveLeases(this.leases);
    await deleteLink(ep.hostVeth);
    const mtu = await linkMtu(net.Bridge);
    await ipBatch([
      `link add ${ep.hostVeth} mtu ${mtu} type veth peer name ${ifname} netns ${sandbox.netns}`,
      `link set ${ep.hostVeth} master ${net.Bridge} up`,
    ]);
    await ipBatch([
      `link set ${ifname} mtu ${mtu} address ${ep.mac}`,
      `addr add ${ip}/${subnet.prefix} dev ${ifname}`,
      `link set ${ifname} up`,
      ...(ifname === 'eth0' ? [`route add default via ${net.Gateway}`] : []),
    ], sandbox.netns);
    return ep;
  }

  private async releaseEndpoint(ep: Endpoint): Promise<void> {
    await deleteLink(ep.hostVeth).catch((err) => log.warn('cannot delete veth', { link: ep.hostVeth, error: String(err) }));
    this.leases.endpoints = this.leases.endpoints.filter((e) => e !== ep);
  }

  /** Frees everything a container's run held: veths, leases, ports, its netns; updates peers' hosts files. */
  private async releaseSandbox(id: string): Promise<void> {
    const sandbox = this.leases.sandboxes[id];
    const mine = this.leases.endpoints.filter((e) => e.containerId === id);
    const peers = new Set(mine.flatMap((e) => this.peersOn(e.networkId, id)));
    for (const ep of mine) await this.releaseEndpoint(ep);
    if (sandbox) await netnsDelete(sandbox.netns).catch((err) => log.warn('cannot delete netns', { netns: sandbox.netns, error: String(err) }));
    delete this.leases.sandboxes[id];
    if (sandbox || mine.length) await this.store.saveLeases(this.leases);
    for (const p of peers) await this.refreshHosts(p);
  }

  // ---- names ----

  /** Containers sharing a user network with `id` (the default bridge resolves no names, as in Docker). */
  private peersOn(networkId: string, id: string): string[] {
    const net = this.networks.find((n) => n.Id === networkId);
    if (!net || net.Name === 'bridge') return [];
    return this.leases.endpoints.filter((e) => e.networkId === networkId && e.containerId !== id).map((e) => e.containerId);
  }

  /** Rewrites a container's hosts file, then those of its peers (who must see it come or go). */
  private async refreshHosts(id: string): Promise<void> {
    await this.writeHosts(id);
    const peers = new Set(this.leases.endpoints.filter((e) => e.containerId === id).flatMap((e) => this.peersOn(e.networkId, id)));
    for (const p of peers) await this.writeHosts(p);
  }

  private async writeHosts(id: string): Promise<void> {
    const sandbox = this.leases.sandboxes[id];
    if (!sandbox?.hostsPath) return;
    const mine = this.leases.endpoints.filter((e) => e.containerId === id);
    const own: HostsEntry | undefined = mine[0] ? { ip: mine[0].ip, names: [sandbox.hostname, sandbox.name] } : undefined;
    const peers: HostsEntry[] = [];
    for (const ep of mine) {
      for (const other of this.peersOn(ep.networkId, id)) {
        const oep = this.leases.endpoints.find((e) => e.containerId === other && e.networkId === ep.networkId);
        const s = this.leases.sandboxes[other];
        if (oep && s) peers.push({ ip: oep.ip, names: [s.name, ...oep.aliases, other.slice(0, 12)] });
      }
    }
    await updateHostsFile(sandbox.hostsPath, own, peers).catch((err) => log.warn('cannot update hosts file', { id, error: String(err) }));
  }

  // ---- firewall ----

  firewallState(): FirewallState {
    const ports: FirewallState['ports'] = [];
    for (const s of Object.values(this.leases.sandboxes)) {
      const ep = this.leases.endpoints.find((e) => e.containerId === s.containerId && e.ifname === 'eth0')
        ?? this.leases.endpoints.find((e) => e.containerId === s.containerId);
      const net = ep && this.networks.find((n) => n.Id === ep.networkId);
      if (!ep || !net) continue;
      for (const p of s.ports) ports.push({ ...p, bridge: net.Bridge, containerIp: ep.ip });
    }
    return { networks: this.networks.map((n) => ({ bridge: n.Bridge, subnet: n.Subnet, internal: n.Internal })), ports };
  }

  private applyFirewall(): Promise<void> {
    return this.firewall.apply(this.firewallState());
  }

  /** Test and uninstall helper: the firewall objects and every bridge, netns and veth berth made. */
  async teardownAll(): Promise<void> {
    await this.locked(async () => {
      for (const id of Object.keys(this.leases.sandboxes)) await this.releaseSandbox(id);
      await this.firewall.remove();
      for (const n of this.networks) await deleteLink(n.Bridge).catch(() => {});
    });
  }

  /** Published ports of every sandbox (for conflict checks and tests). */
  publishedPorts(): PortMapping[] {
    return Object.values(this.leases.sandboxes).flatMap((s) => s.ports);
  }

  leaseCount(): number {
    return this.leases.endpoints.length;
  }
}
