// Bridge networking for the daemon: networks, per-container namespaces, leases, firewall.
export { BridgeNetworking, ownerOf, DEFAULT_BRIDGE, DEFAULT_BIP, DEFAULT_USER_POOL, type BridgeNetworkingOptions, type AttachRequest, type ContainerInfo, type CreateNetworkRequest } from './bridge';
export { detectFirewall, noFirewall, type Firewall, type FirewallChoice } from './firewall';
export { renderNftScript, nftTableNames, NftablesFirewall } from './nft';
export { renderIptablesRestore, iptablesChains, IptablesFirewall } from './iptables';
export * from './ipam';
export type * from './types';
