// The composition root: builds the services and the API server for one data root.
// Order matters: nothing touches the data root or the sockets before the lock is held.
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { writeFileAtomic } from '../util/atomic';
import { logger } from '../util/log';
import { lockDataRoot, LOCK_FILE_NAME, type DataRootLock } from '../host/lock';
import { ApiServer } from '../api/server';
import { buildRouter } from '../api/routes';
import type { Router } from '../api/router';
import { socketPathOf, type DaemonConfig } from './config';
import type { DaemonServices, DaemonPaths } from './services';
import { collectHostInfo } from './hostinfo';
import { Graph } from '../minimal-graph';
import { selectDriver } from '../storage';
import { RegistryClient } from '../image/registry';
import { ImageService } from '../image/service';
import { familiarString, parseReference } from '../image/reference';
import { detectCgroups, createCgroupManager } from '../cgroups';
import { createRuntime } from '../runtime';
import { openEngine, type ContainerEngine } from '../engine';
import { createNetworking } from './networking';
import type { FleetAgent } from '../fleet/agent';
import { VERSION } from '../util/version';

const log = logger('daemon');

export interface RunningDaemon {
  services: DaemonServices;
  router: Router;
  /** Stops the API (in-flight requests get `graceMs`), then releases the lock. */
  close(graceMs?: number): Promise<void>;
}

export function daemonPaths(config: DaemonConfig): DaemonPaths {
  return {
    dataRoot: config.dataRoot,
    execRoot: config.execRoot,
    lockFile: join(config.dataRoot, LOCK_FILE_NAME),
    engineIdFile: join(config.dataRoot, 'engine-id'),
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The engine ID, created once; callers hold the lock, so no other writer races us. */
export async function loadOrCreateEngineId(file: string): Promise<string> {
  try {
    const existing = (await fsp.readFile(file, 'utf8')).trim();
    if (UUID.test(existing)) return existing;
    log.warn('engine id file is malformed; writing a new one', { file });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  await writeFileAtomic(file, id + '\n', 0o644);
  return id;
}

/** Docker clients know the overlay driver as "overlay2"; the copy driver is Docker's "vfs" idea. */
function driverDisplayName(name: string): string {
  return name === 'overlay' ? 'overlay2' : name;
}

/** The executable that runs containers, reported by /info. */
function runtimePath(): string {
  return process.argv[1] ? resolve(process.argv[1]) : process.execPath;
}

export async function startDaemon(config: DaemonConfig): Promise<RunningDaemon> {
  await fsp.mkdir(config.dataRoot, { recursive: true, mode: 0o711 });
  const lock: DataRootLock = lockDataRoot(config.dataRoot);
  let server: ApiServer | undefined;
  try {
    await fsp.mkdir(config.execRoot, { recursive: true, mode: 0o700 });
    const paths = daemonPaths(config);
    const storageDriver = await selectDriver(config.dataRoot, config.storageDriver);
    const graph = await Graph.open(join(config.dataRoot, 'image'), { keepLayerBlobs: config.keepLayerBlobs });
    // Structural check with repair at every start; full blob hashing is `berth system check`.
    const problems = await graph.check({ repair: true, verifyBlobs: false });
    if (problems.length) log.warn('image store repaired at start', { problems: problems.length });
    // Layers pulled before a power cut or restart may still await their tar-split check.
    void graph.settleLayerBlobs();
    const registry = new RegistryClient({ insecureRegistries: config.insecureRegistries });
    // rmi asks the engine, which opens after the image service: hence the late-bound closure.
    let engineRef: ContainerEngine | undefined;
    const imageService = new ImageService({
      graph, registry, whiteoutFormat: storageDriver.whiteoutFormat, storageDriverName: driverDisplayName(storageDriver.name),
      maxConcurrentDownloads: config.maxConcurrentDownloads, maxLayerSize: config.maxLayerSize,
      imageUser: (id) => engineRef?.imageUser(id),
    });
    const cgroupManager = createCgroupManager(detectCgroups(), { parent: config.cgroupParent });
    const runtime = createRuntime({ execRoot: config.execRoot });
    const networking = await createNetworking(config, () => engineRef);
    const engine = await openEngine({
      ...(networking ? { network: networking.hook } : {}),
      dataRoot: config.dataRoot, runtime, storage: storageDriver, cgroups: cgroupManager, graph,
      resolveImage: (name) => imageService.resolve(name),
      imageTags: (id) => graph.tagsOf(id).map((t) => familiarString(parseReference(t))),
    });
    engineRef = engine;
    const services: DaemonServices = {
      config,
      paths,
      startedAt: new Date(),
      engineId: await loadOrCreateEngineId(paths.engineIdFile),
      host: collectHostInfo(),
      runtimePath: runtimePath(),
      images: imageService,
      storage: { name: driverDisplayName(storageDriver.name), status: () => storageDriver.status() },
      imageService,
      registry,
      storageDriver,
      containers: engine,
      engine,
      ...(networking ? { networks: networking.service } : {}),
    };
    const router = buildRouter();
    const api = new ApiServer({ router, services });
    server = api;
    for (const host of config.hosts) await api.listenUnix(socketPathOf(host));
    // The agent connects in the background: an unreachable broker never delays or fails the start.
    // Loaded only for a fleet member: mqtt and yaml cost a daemon ~12 MB of RSS.
    const fleet: FleetAgent | undefined = config.fleet
      ? await (await import('../fleet/agent')).startFleetAgent({ config: config.fleet, engine, images: imageService, dataRoot: config.dataRoot, version: VERSION, startedAt: services.startedAt })
      : undefined;

    let closing: Promise<void> | undefined;
    return {
      services,
      router,
      close(graceMs = 3000): Promise<void> {
        // A second call (a second signal) with no grace cuts the remaining connections.
        if (closing) {
          if (graceMs === 0) api.closeNow();
          return closing;
        }
        // Containers keep running (live restore): the engine only stops watching them.
        closing = Promise.resolve(fleet?.close().catch((err) => log.warn('fleet agent close failed', { error: String(err) }))).then(() => api.close(graceMs)).then(() => engine.close()).finally(() => { registry.close(); lock.release(); });
        return closing;
      },
    };
  } catch (err) {
    await server?.close(0).catch(() => {});
    lock.release();
    throw err;
  }
}
