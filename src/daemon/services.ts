// What the daemon hands to every API route (through the request context). Later work
// adds fields here; optional providers let a route report something sensible before
// the service behind it is wired in.
import type { DaemonConfig } from './config';
import type { ImageService } from '../image/service';
import type { RegistryClient } from '../image/registry';
import type { StorageDriver } from '../storage';
import type { HostInfo } from './hostinfo';
import type { Engine } from '../engine/types';
import type { BridgeNetworking } from '../net-bridge';

export interface DaemonPaths {
  dataRoot: string;
  execRoot: string;
  lockFile: string;
  /** Holds the engine ID reported by /info. */
  engineIdFile: string;
}

export interface ContainerCounts {
  total: number;
  running: number;
  paused: number;
  stopped: number;
}

export interface ImageCountProvider {
  count(): number | Promise<number>;
}

export interface StorageDriverInfo {
  /** Driver name as /info's "Driver" reports it, e.g. "overlay2". */
  name: string;
  /** Key/value pairs for /info's "DriverStatus", e.g. [["Backing Filesystem","extfs"]]. */
  status(): Array<[string, string]> | Promise<Array<[string, string]>>;
}

export interface ContainerCountProvider {
  counts(): ContainerCounts | Promise<ContainerCounts>;
}

export interface DaemonServices {
  config: DaemonConfig;
  paths: DaemonPaths;
  startedAt: Date;
  /** Stable identity of this engine, persisted under the data root. */
  engineId: string;
  host: HostInfo;
  /** Absolute path of the executable that runs containers (reported as the "berth" runtime). */
  runtimePath: string;
  images?: ImageCountProvider;
  storage?: StorageDriverInfo;
  imageService?: ImageService;
  registry?: RegistryClient;
  storageDriver?: StorageDriver;
  containers?: ContainerCountProvider;
  /** The container engine (container and exec routes). */
  engine?: Engine;
  /** Bridge networking (network routes); absent with `--bridge none`. */
  networks?: BridgeNetworking;
}
