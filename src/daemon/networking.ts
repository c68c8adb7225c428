// Wires net-bridge into the daemon: picks the firewall backend, opens the network state and
// adapts it to the engine's NetworkHook. Kept apart from daemon.ts so the composition root
// stays a list of services.
import { BerthError } from '../util/errors';
import { BridgeNetworking, detectFirewall, ownerOf } from '../net-bridge';
import type { NetworkHook } from '../engine';
import type { ContainerEngine } from '../engine';
import type { DaemonConfig } from './config';

export interface Networking {
  hook: NetworkHook;
  service: BridgeNetworking;
}

/** undefined with `--bridge none`: containers then get loopback-only namespaces, as before. */
export async function createNetworking(config: DaemonConfig, engine: () => ContainerEngine | undefined): Promise<Networking | undefined> {
  if (config.bridge === 'none') return undefined;
  const firewall = detectFirewall(config.firewallBackend, ownerOf(config.bridge));
  const service = new BridgeNetworking({ dataRoot: config.dataRoot, bridge: config.bridge, ...(config.bip ? { bip: config.bip } : {}), firewall });
  service.containerLookup = async (ref) => {
    const e = engine();
    if (!e) throw new BerthError('EINTERNAL', 'the container engine is not open yet');
    const doc = await e.inspect(ref);
    const state = doc.State as { Running: boolean };
    return { id: doc.Id as string, name: doc.Name as string, running: state.Running };
  };
  await service.init();
  const hook: NetworkHook = {
    attach: (c) => service.attach(c),
    detach: (id) => service.detach(id),
    validate: (mode) => service.validate(mode),
    nameserver: (mode) => service.nameserver(mode),
    removed: (id) => service.removed(id),
    reconcile: (running) => service.reconcile(running),
    settings: (id, hc, exposed) => service.settings(id, hc, exposed),
  };
  return { hook, service };
}
