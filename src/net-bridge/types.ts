// The records net-bridge keeps under <data-root>/network/: network definitions, and the
// leases (one endpoint per container per network) with the sandboxes they live in.

export interface NetworkRecord {
  Id: string;
  Name: string;
  Driver: 'bridge';
  Created: string;
  /** IPv4 subnet in CIDR form and its gateway (the bridge's address). */
  Subnet: string;
  Gateway: string;
  /** Linux bridge name (berth0 for the default network, br-<id12> for user networks). */
  Bridge: string;
  /** No masquerade, no outside access. */
  Internal: boolean;
  Labels: Record<string, string>;
  Options: Record<string, string>;
}

export type Protocol = 'tcp' | 'udp';

/** One published port: host side to container side, on the container's first network. */
export interface PortMapping {
  proto: Protocol;
  /** '' or '0.0.0.0' = every host address. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

/** A container's network namespace, created by the daemon and bind-mounted under /run/netns. */
export interface Sandbox {
  containerId: string;
  /** Container name without the leading slash (what peers resolve). */
  name: string;
  hostname: string;
  /** Name of the netns (file under /run/netns). */
  netns: string;
  /** The container's /etc/hosts on the host side, rewritten in place (it is bind-mounted). */
  hostsPath?: string;
  ports: PortMapping[];
}

/** An address lease with the veth pair that carries it. */
export interface Endpoint {
  endpointId: string;
  networkId: string;
  containerId: string;
  ip: string;
  mac: string;
  /** Host side of the veth pair, a port of the network's bridge. */
  hostVeth: string;
  /** Interface name inside the container (eth0, eth1, ...). */
  ifname: string;
  aliases: string[];
}

export interface LeaseState {
  version: 1;
  sandboxes: Record<string, Sandbox>;
  endpoints: Endpoint[];
  /** Last address handed out per network, so a released one is not reused at once. */
  lastIp: Record<string, string>;
  /** Networks joined with `network connect` besides HostConfig.NetworkMode, per container. */
  extra: Record<string, Array<{ networkId: string; aliases: string[] }>>;
}

/** What a firewall backend renders: every berth network and every published port. */
export interface FirewallState {
  networks: Array<{ bridge: string; subnet: string; internal: boolean }>;
  ports: Array<PortMapping & { bridge: string; containerIp: string }>;
}
