// System routes: /_ping, /version, /info. Everything reported is measured or configured,
// never made up; fields whose service is not wired yet report empty values.
import * as os from 'node:os';
import { readdirSync } from 'node:fs';
import { API_VERSION, MIN_API_VERSION, VERSION } from '../../util/version';
import type { Router } from '../router';
import type { RequestContext } from '../context';
import { sendJson, sendText } from '../response';
import { runtimeVersion } from '../platform';
import { isIP } from 'node:net';

// Injected by the build when it knows them; empty when running from source.
declare const BERTH_GIT_COMMIT: string | undefined;
declare const BERTH_BUILD_TIME: string | undefined;
const GIT_COMMIT = typeof BERTH_GIT_COMMIT === 'string' ? BERTH_GIT_COMMIT : '';
const BUILD_TIME = typeof BERTH_BUILD_TIME === 'string' ? BERTH_BUILD_TIME : '';

export function registerSystemRoutes(router: Router): void {
  router.add('GET', '/_ping', ping);
  router.add('HEAD', '/_ping', ping);
  router.add('GET', '/version', version);
  router.add('GET', '/info', info);
}

function ping(ctx: RequestContext): void {
  const { res } = ctx;
  res.setHeader('Cache-Control', 'no-cache, no-store, must-revalidate');
  res.setHeader('Pragma', 'no-cache');
  // No builder at all; an empty value tells the client not to prefer one.
  res.setHeader('Builder-Version', '');
  res.setHeader('Swarm', 'inactive');
  sendText(res, 200, 'OK');
}

export function versionDocument(ctx: RequestContext): Record<string, unknown> {
  const { host } = ctx.services;
  const details = {
    ApiVersion: API_VERSION,
    Arch: host.goArch,
    BuildTime: BUILD_TIME,
    Experimental: 'false',
    GitCommit: GIT_COMMIT,
    GoVersion: runtimeVersion(),
    KernelVersion: host.kernelVersion,
    MinAPIVersion: MIN_API_VERSION,
    Os: 'linux',
  };
  return {
    Platform: { Name: 'berth' },
    Components: [{ Name: 'Engine', Version: VERSION, Details: details }],
    Version: VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: GIT_COMMIT,
    GoVersion: runtimeVersion(),
    Os: 'linux',
    Arch: host.goArch,
    KernelVersion: host.kernelVersion,
    BuildTime: BUILD_TIME,
  };
}

function version(ctx: RequestContext): void {
  sendJson(ctx.res, 200, versionDocument(ctx));
}

function openFileCount(): number {
  try { return readdirSync('/proc/self/fd').length; } catch { return 0; }
}

/** dockerd reports CIDR ranges and named registries separately. */
function isCidr(value: string): boolean {
  const [addr, bits, extra] = value.split('/');
  return extra === undefined && bits !== undefined && /^\d+$/.test(bits) && isIP(addr ?? '') !== 0;
}

function registryConfig(insecure: readonly string[]): Record<string, unknown> {
  const cidrs = insecure.filter(isCidr);
  const hosts = insecure.filter((v) => !isCidr(v));
  const indexConfigs: Record<string, unknown> = {
    'docker.io': { Name: 'docker.io', Mirrors: [], Secure: true, Official: true },
  };
  for (const name of hosts) indexConfigs[name] = { Name: name, Mirrors: [], Secure: false, Official: false };
  return {
    AllowNondistributableArtifactsCIDRs: null,
    AllowNondistributableArtifactsHostnames: null,
    InsecureRegistryCIDRs: cidrs,
    IndexConfigs: indexConfigs,
    Mirrors: [],
  };
}

async function info(ctx: RequestContext): Promise<void> {
  const { services } = ctx;
  const { host, config } = services;
  const containers = (await services.containers?.counts()) ?? { total: 0, running: 0, paused: 0, stopped: 0 };
  const images = (await services.images?.count()) ?? 0;
  const driverStatus = (await services.storage?.status()) ?? [];
  const cgroups = host.cgroup.driver !== 'none';

  sendJson(ctx.res, 200, {
    ID: services.engineId,
    Containers: containers.total,
    ContainersRunning: containers.running,
    ContainersPaused: containers.paused,
    ContainersStopped: containers.stopped,
    Images: images,
    Driver: services.storage?.name ?? 'none',
    DriverStatus: driverStatus,
    Plugins: { Volume: [], Network: [], Authorization: null, Log: ['json-file'] },
    // Resource limits depend on the container runtime, which is not wired in yet.
    MemoryLimit: false,
    SwapLimit: false,
    CpuCfsPeriod: false,
    CpuCfsQuota: false,
    CPUShares: false,
    CPUSet: false,
    PidsLimit: false,
    OomKillDisable: false,
    IPv4Forwarding: host.ipv4Forwarding,
    Debug: config.logLevel === 'debug',
    NFd: openFileCount(),
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: 'json-file',
    CgroupDriver: host.cgroup.driver,
    CgroupVersion: host.cgroup.version,
    NEventsListener: 0,
    KernelVersion: host.kernelVersion,
    OperatingSystem: host.operatingSystem,
    OSVersion: host.osVersion,
    OSType: 'linux',
    Architecture: host.architecture,
    IndexServerAddress: 'https://index.docker.io/v1/',
    RegistryConfig: registryConfig(config.insecureRegistries),
    NCPU: host.ncpu,
    MemTotal: host.memTotal,
    GenericResources: null,
    DockerRootDir: services.paths.dataRoot,
    HttpProxy: process.env.HTTP_PROXY ?? process.env.http_proxy ?? '',
    HttpsProxy: process.env.HTTPS_PROXY ?? process.env.https_proxy ?? '',
    NoProxy: process.env.NO_PROXY ?? process.env.no_proxy ?? '',
    Name: os.hostname(),
    Labels: [],
    ExperimentalBuild: false,
    ServerVersion: VERSION,
    Runtimes: { berth: { path: services.runtimePath } },
    DefaultRuntime: 'berth',
    Swarm: {
      NodeID: '',
      NodeAddr: '',
      LocalNodeState: 'inactive',
      ControlAvailable: false,
      Error: '',
      RemoteManagers: null,
    },
    LiveRestoreEnabled: true,
    Isolation: '',
    InitBinary: '',
    ContainerdCommit: { ID: '' },
    RuncCommit: { ID: '' },
    InitCommit: { ID: '' },
    SecurityOptions: [],
    CDISpecDirs: [],
    Warnings: cgroups ? [] : ['WARNING: no cgroups are mounted: containers run without resource limits'],
  });
}
