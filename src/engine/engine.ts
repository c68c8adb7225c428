// The container engine: records, the lifecycle state machine, restart policies and live
// restore. It decides what a container is; the runtime (native helper) runs it, the
// storage driver makes its rootfs, the cgroup manager limits it.
import { promises as fsp } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BerthError, isBerthError } from '../util/errors';
import { logger } from '../util/log';
import { requestedLimitKeys, validateLimits, type CgroupManager, type ContainerCgroup } from '../cgroups';
import type { Graph, Digest } from '../minimal-graph';
import type { Change, LowerLayer, StorageDriver } from '../storage';
import type { ImageRecord } from '../minimal-graph';
import type { AttachStream, ContainerProcessConfig, ExecConfig, ExitInfo, Runtime } from '../runtime/types';
import { resolveDevices, type ContainerDevice } from '../runtime/devices';
import { deviceCgroupRules, deviceRequests, validateDeviceConfig } from './devices';
import { limitsOf, mergeConfig, mergeEnv, normaliseHostConfig, parseSignal, processEnv, updatedHostConfig, type ImageRunConfig } from './config';
import { autoName, lookup, nameConflict, newContainerId, normaliseName, shortId } from './names';
import { etcPaths, planMounts, prepareMounts, removeVolume, writeEtcFiles } from './mounts';
import { initialState, nowNano, RecordStore, RECORD_VERSION, type ContainerRecord } from './record';
import { inspectDocument, listEntry, matchesFilters, processTree, statsDocument, topTable, type StatsSample } from './present';
import { PendingAttach } from './attach';
import { HealthMonitor, LimitedOutput, probeCommand } from './health';
import { RingLog, feedFromAttach, parseLogConfig, readJsonFileLog } from './logs';
import type { ContainerEvent, CreateRequest, Engine, HostConfig, LogEntry, LogsOptions, WaitCondition } from './types';

const log = logger('engine');

/** Where networking plugs in (src/net-bridge): what namespace a container joins, and cleanup. */
export interface NetworkHook {
  /** undefined = a fresh loopback-only namespace; 'host' = the host's; else a netns path to join. */
  attach(c: { id: string; name: string; hostConfig: HostConfig; hostname?: string; hostsPath?: string }): Promise<string | undefined>;
  detach(id: string): Promise<void>;
  /** At create: refuses a NetworkMode naming no network (Docker fails create, not start). */
  validate?(mode: string | undefined): void;
  /** A resolver reachable from the container's network, used when the host only has loopback ones. */
  nameserver?(mode: string | undefined): Promise<string | undefined>;
  /** The container is removed: forget what was kept for its next start. */
  removed?(id: string): Promise<void>;
  /** After live restore: everything held for containers not in `running` goes. */
  reconcile?(running: ReadonlySet<string>): Promise<void>;
  /** inspect's NetworkSettings, ps's Ports and Networks. */
  settings?(id: string, hostConfig: HostConfig, exposed?: Record<string, object>): { NetworkSettings: Record<string, unknown>; Ports: unknown[]; Networks: Record<string, unknown> };
}

/** Loopback only for every mode but 'host' (no bridge networking configured). */
export const loopbackNetwork: NetworkHook = {
  async attach(c) { return c.hostConfig.NetworkMode === 'host' ? 'host' : undefined; },
  async detach() { /* nothing was set up */ },
  validate(mode) {
    if (mode && !['bridge', 'none', 'host'].includes(mode)) throw new BerthError('EUNSUPPORTED', `network mode "${mode}" is not supported without bridge networking (use bridge, none or host)`);
  },
};

export interface EngineDeps {
  dataRoot: string;
  runtime: Runtime;
  storage: StorageDriver;
  cgroups: CgroupManager;
  graph: Graph;
  /** Resolves image references (ImageService.resolve). */
  resolveImage(name: string): Promise<ImageRecord>;
  /** Familiar names of an image's tags, for ps's Image column and ancestor filters. */
  imageTags?(id: Digest): string[];
  network?: NetworkHook;
  /** Host files the container's /etc files start from (tests point them elsewhere). */
  hostFiles?: { resolvConf?: string[]; hosts?: string };
  /** Docker's restart backoff: first delay, cap, and how long a run resets it. */
  restartBackoff?: { initialMs: number; maxMs: number; resetAfterMs: number };
}

const DEFAULT_BACKOFF = { initialMs: 100, maxMs: 60_000, resetAfterMs: 10_000 };
const KILL_WAIT_MS = 10_000;

interface Deferred<T> { promise: Promise<T>; resolve(v: T): void }
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

type WaitResult = { StatusCode: number; Error: { Message: string } | null };

interface ExecRecord {
  id: string;
  containerId: string;
  config: ExecConfig;
  openStdin: boolean;
  attachStdout: boolean;
  attachStderr: boolean;
  running: boolean;
  started: boolean;
  exitCode: number | null;
  pid: number;
  /** Date.now() when it ended (or failed to start): Docker forgets ended execs after a while. */
  endedMs?: number;
}

/** Docker's exec GC: an ended exec stays inspectable this long, then its record goes. */
const EXEC_RECORD_TTL_MS = 5 * 60_000;

/** In-memory companion of a record: what only lives while the daemon runs. */
class Live {
  cgroup?: ContainerCgroup;
  watcher?: AbortController;
  /** Resolves when the current run's exit has been fully handled. */
  exited = deferred<void>();
  exitWaiters: Array<(r: WaitResult) => void> = [];
  removedWaiters: Array<(r: WaitResult) => void> = [];
  pendingAttaches: PendingAttach[] = [];
  restartTimer?: NodeJS.Timeout;
  ring?: RingLog;
  /** The attach that feeds the ring ('local' log driver). */
  ringFeed?: AttachStream;
  /** Serialises user operations on one container. */
  queue: Promise<unknown> = Promise.resolve();
  saving: Promise<void> = Promise.resolve();
  stopRequested = false;
  removing = false;
  startedMs = 0;
  backoffMs = 0;
  lastStats?: StatsSample;
  health?: HealthMonitor;
  constructor(public rec: ContainerRecord) {}
}

function waitResult(rec: ContainerRecord): WaitResult {
  return { StatusCode: rec.state.ExitCode, Error: rec.state.Error ? { Message: rec.state.Error } : null };
}

/** Docker's start-failure exit codes: 126 cannot execute, 127 not found. */
function startFailureCode(error: string, code: number): number {
  if (/permission denied|is a directory|exec format error/i.test(error)) return 126;
  if (/not found|no such file or directory/i.test(error)) return 127;
  return code || 127;
}

/**
 * Drops mount points the runtime made in the rootfs (docker keeps them in a hidden init
 * layer), and directories that show up as modified only because they hold one.
 */
function withoutMountPoints(changes: Change[], mountPoints: Set<string>): Change[] {
  const kept = changes.filter((ch) => !mountPoints.has(ch.Path));
  const holdsMountPoint = (dir: string) => [...mountPoints].some((m) => m.startsWith(`${dir}/`));
  const hasKeptChild = (dir: string) => kept.some((ch) => ch.Path.startsWith(`${dir}/`));
  return kept.filter((ch) => !(ch.Kind === 0 && holdsMountPoint(ch.Path) && !hasKeptChild(ch.Path)));
}

const isActive = (rec: ContainerRecord) => rec.state.Status === 'running' || rec.state.Status === 'paused';

/** A probe that outlived its timeout: the exec and whatever it started go (exec runs in its own session). */
function killProcessGroup(pid: number): void {
  if (pid <= 1) return;
  for (const target of [-pid, pid]) { try { process.kill(target, 'SIGKILL'); } catch { /* already gone */ } }
}

const PROBE_OUTPUT_WAIT_MS = 1000;
const PROBE_CLEANUP_WAIT_MS = 5000;

export class ContainerEngine implements Engine {
  private readonly containers = new Map<string, Live>();
  private readonly names = new Map<string, string>();
  /** Container id -> the volumes a create in progress uses (not yet in `containers`). */
  private readonly volumeClaims = new Map<string, string[]>();
  private readonly volumesBeingRemoved = new Set<string>();
  private readonly execs = new Map<string, ExecRecord>();
  private readonly listeners = new Set<(e: ContainerEvent) => void>();
  private readonly records: RecordStore;
  private readonly volumesRoot: string;
  private readonly network: NetworkHook;
  private readonly backoff: { initialMs: number; maxMs: number; resetAfterMs: number };
  private closed = false;
  /** Aborts background waits (a killed probe's cleanup) so they cannot hold up shutdown. */
  private readonly closing = new AbortController();

  constructor(private readonly deps: EngineDeps) {
    this.records = new RecordStore(join(deps.dataRoot, 'containers'));
    this.volumesRoot = join(deps.dataRoot, 'volumes');
    this.network = deps.network ?? loopbackNetwork;
    this.backoff = deps.restartBackoff ?? DEFAULT_BACKOFF;
  }

  // ---- lookups ----

  private get(ref: string): Live {
    return lookup(ref, this.containers, (name) => this.names.get(name));
  }

  /** The id of a container using image `id` (rmi's 409), if any. */
  imageUser(id: Digest): string | undefined {
    for (const c of this.containers.values()) if (c.rec.imageId === id) return c.rec.id;
    return undefined;
  }

  volumeUsers(): Map<string, string[]> {
    const users = new Map<string, string[]>();
    const add = (volume: string, id: string) => { const ids = users.get(volume) ?? []; if (!ids.includes(id)) ids.push(id); users.set(volume, ids); };
    for (const c of this.containers.values()) for (const m of c.rec.mounts) if (m.Type === 'volume' && m.Name) add(m.Name, c.rec.id);
    for (const [id, volumes] of this.volumeClaims) for (const volume of volumes) add(volume, id);
    return users;
  }

  async removeVolumeIfUnused(name: string, remove: () => Promise<void>): Promise<void> {
    const users = this.volumeUsers().get(name);
    if (users?.length) throw new BerthError('ECONFLICT', `remove ${name}: volume is in use - [${users.join(', ')}]`);
    if (this.volumesBeingRemoved.has(name)) throw new BerthError('ECONFLICT', `remove ${name}: volume is already being removed`);
    this.volumesBeingRemoved.add(name);
    try {
      await remove();
    } finally {
      this.volumesBeingRemoved.delete(name);
    }
  }

  private serial<T>(c: Live, op: () => Promise<T>): Promise<T> {
    const run = c.queue.then(op, op);
    c.queue = run.catch(() => {});
    return run;
  }

  private save(c: Live): Promise<void> {
    const rec = c.rec;
    // A removed container's directory must not come back from a late save.
    c.saving = c.saving.then(() => (this.containers.has(rec.id) ? this.records.save(rec) : undefined))
      .catch((err) => log.error('cannot write container record', { id: rec.id, error: String(err) }));
    return c.saving;
  }

  private emit(action: string, rec: ContainerRecord, extra: Record<string, string> = {}): void {
    const now = process.hrtime.bigint() % 1_000_000n;
    const ms = Date.now();
    const event: ContainerEvent = {
      Type: 'container', Action: action,
      Actor: { ID: rec.id, Attributes: { ...rec.config.Labels, image: rec.config.Image, name: rec.name.slice(1), ...extra } },
      time: Math.floor(ms / 1000), timeNano: ms * 1_000_000 + Number(now % 1_000_000n),
    };
    for (const l of this.listeners) { try { l(event); } catch (err) { log.warn('event listener failed', { error: String(err) }); } }
  }

  onEvent(listener: (e: ContainerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  // ---- create ----

  async create(req: CreateRequest, name?: string): Promise<{ Id: string; Warnings: string[] }> {
    if (!req || typeof req.Image !== 'string' || !req.Image) throw new BerthError('EINVAL', 'Config cannot be empty in order to create a container');
    const wanted = name ? normaliseName(name) : undefined;
    const image = await this.deps.resolveImage(req.Image);
    const imageConfig = ((await this.deps.graph.readConfig(image.id))?.config ?? {}) as ImageRunConfig;
    const hc = normaliseHostConfig(req.HostConfig);
    const limits = limitsOf(hc);
    validateLimits(limits);
    validateDeviceConfig(hc);
    const support = this.deps.cgroups.supports(requestedLimitKeys(limits));
    if (!support.ok) throw new BerthError('EUNSUPPORTED', support.message!);
    const logConfig = parseLogConfig(hc.LogConfig);
    if (hc.NetworkMode?.startsWith('container:')) hc.NetworkMode = `container:${this.get(hc.NetworkMode.slice('container:'.length)).rec.id}`;
    this.network.validate?.(hc.NetworkMode);
    const id = newContainerId();
    const isHostNet = hc.NetworkMode === 'host';
    const { config, path, args } = mergeConfig(req, imageConfig, isHostNet ? osHostname() : shortId(id));
    const mounts = planMounts(hc, config.Volumes, this.volumesRoot);
    const strictBinds = new Set((hc.Mounts ?? []).filter((m) => m.Type === 'bind').map((m) => m.Target.replace(/\/+$/, '')));
    // Claimed before the first await: a volume rm or prune running meanwhile sees this
    // container as a user, and a removal already under way makes this create fail.
    const volumeNames = [...new Set(mounts.filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!))];
    for (const volume of volumeNames) {
      if (this.volumesBeingRemoved.has(volume)) throw new BerthError('ECONFLICT', `volume ${volume} is being removed; try again`);
    }
    this.volumeClaims.set(id, volumeNames);

    // Reserve the name before any await that could let a second create take it.
    if (wanted) {
      const holder = this.names.get(wanted);
      if (holder) throw nameConflict(wanted, holder);
    }
    const finalName = wanted ?? autoName((n) => this.names.has(n));
    this.names.set(finalName, id);

    const dir = this.records.dirOf(id);
    const chainIds = image.layers.map((l) => l.chainId);
    let rootfsMounted = false;
    try {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      const lowers: LowerLayer[] = [];
      for (const chainId of chainIds) {
        const layer = await this.deps.graph.layers.get(chainId);
        if (!layer) throw new BerthError('ECORRUPT', `layer ${chainId} of image ${image.id} is missing: pull the image again`);
        lowers.push({ diffPath: this.deps.graph.layers.diffPath(chainId), whiteouts: layer.whiteouts, opaques: layer.opaques, whiteoutFormat: layer.whiteoutFormat });
      }
      this.deps.graph.holdLayers(id, chainIds);
      await this.deps.storage.create(id, lowers);
      await prepareMounts(mounts, this.volumesRoot, async () => { rootfsMounted = true; return this.deps.storage.mount(id); }, strictBinds);
      if (rootfsMounted) await this.deps.storage.unmount(id);
      const etc = await writeEtcFiles(dir, {
        hostname: config.Hostname, domainname: config.Domainname, networkMode: hc.NetworkMode!,
        dns: hc.Dns, dnsSearch: hc.DnsSearch, extraHosts: hc.ExtraHosts,
        gatewayNameserver: await this.network.nameserver?.(hc.NetworkMode),
        resolvConfSources: this.deps.hostFiles?.resolvConf ?? ['/etc/resolv.conf', '/tmp/resolv.conf.d/resolv.conf.auto', '/run/systemd/resolve/resolv.conf'],
        hostsSource: this.deps.hostFiles?.hosts ?? '/etc/hosts',
      });
      const rec: ContainerRecord = {
        version: RECORD_VERSION, id, name: finalName, created: nowNano(), request: req, config, hostConfig: hc, path, args,
        state: initialState(), restartCount: 0, manuallyStopped: false, imageId: image.id, chainIds,
        storageDriver: this.deps.storage.name,
        logPath: logConfig.driver === 'json-file' ? join(dir, `${id}-json.log`) : '',
        mounts, resolvConfPath: etc.resolvConf, hostsPath: etc.hosts, hostnamePath: etc.hostname,
      };
      await this.records.save(rec);
      this.containers.set(id, new Live(rec));
      this.volumeClaims.delete(id);
      this.emit('create', rec);
      return { Id: id, Warnings: support.notes };
    } catch (err) {
      this.volumeClaims.delete(id);
      this.names.delete(finalName);
      this.deps.graph.releaseLayers(id);
      await this.deps.storage.remove(id).catch(() => {});
      await this.records.removeDir(id).catch(() => {});
      for (const m of mounts) if (m.anonymous) await removeVolume(this.volumesRoot, m.Name!).catch(() => {});
      throw err;
    }
  }

  // ---- start ----

  start(ref: string): Promise<void> {
    const c = this.get(ref);
    return this.serial(c, () => this.startNow(c, false));
  }

  private processConfig(c: Live, netns: string | undefined, devices: ContainerDevice[] = []): ContainerProcessConfig {
    const { config, hostConfig: hc, mounts } = c.rec;
    const etc = etcPaths(this.records.dirOf(c.rec.id));
    return {
      args: [c.rec.path, ...c.rec.args],
      env: processEnv(config),
      ...(config.WorkingDir ? { workingDir: config.WorkingDir } : {}),
      ...(config.User ? { user: config.User } : {}),
      ...(hc.GroupAdd?.length ? { groupAdd: hc.GroupAdd } : {}),
      hostname: config.Hostname,
      tty: config.Tty,
      openStdin: config.OpenStdin,
      privileged: !!hc.Privileged,
      capAdd: hc.CapAdd ?? [],
      capDrop: hc.CapDrop ?? [],
      readonlyRootfs: !!hc.ReadonlyRootfs,
      init: !!hc.Init,
      etcFiles: { resolvConf: etc.resolvConf, hosts: etc.hosts, hostname: etc.hostname },
      binds: mounts.filter((m) => m.Type !== 'tmpfs').map((m) => ({ source: m.Source, target: m.Destination, readonly: !m.RW, ...(m.Type === 'bind' ? { propagation: m.Propagation } : {}) })),
      tmpfs: mounts.filter((m) => m.Type === 'tmpfs').map((m) => ({ target: m.Destination, ...(m.tmpfsOptions ? { options: m.tmpfsOptions } : {}) })),
      ...(netns ? { netns } : {}),
      ...(hc.Ulimits?.length ? { ulimits: hc.Ulimits.map((u) => ({ name: u.Name, soft: u.Soft, hard: u.Hard })) } : {}),
      ...(devices.length ? { devices: devices.map((d) => ({ hostPath: d.path, containerPath: d.containerPath })) } : {}),
    };
  }

  /** Docker creates a missing WorkingDir; symlinks on the way are left to the helper's safe chdir. */
  private async ensureWorkingDir(rootfs: string, dir: string): Promise<void> {
    let current = rootfs;
    for (const part of dir.split('/').filter(Boolean)) {
      current = join(current, part);
      try {
        const st = await fsp.lstat(current);
        if (!st.isDirectory()) return;
      } catch {
        await fsp.mkdir(current, { mode: 0o755 }).catch(() => {});
      }
    }
  }

  private async startNow(c: Live, byPolicy: boolean): Promise<void> {
    const rec = c.rec;
    const id = rec.id;
    if (c.removing || rec.state.Status === 'removing') throw new BerthError('ECONFLICT', `container ${id} is marked for removal and cannot be started`);
    if (rec.state.Status === 'paused') throw new BerthError('ECONFLICT', 'cannot start a paused container, try unpause instead');
    if (rec.state.Status === 'running') throw new BerthError('ENOTMODIFIED', 'container already started');
    if (this.closed) throw new BerthError('EINTERNAL', 'the engine is shutting down');
    if (c.restartTimer) { clearTimeout(c.restartTimer); c.restartTimer = undefined; }
    if (!byPolicy) { c.stopRequested = false; rec.manuallyStopped = false; c.backoffMs = 0; }
    const { runtime, storage, cgroups } = this.deps;
    const logConfig = parseLogConfig(rec.hostConfig.LogConfig);
    let cgroup: ContainerCgroup | undefined;
    let networkAttached = false;
    try {
      // Read now, not at create: a re-plugged USB device may have new numbers.
      const devices = await resolveDevices(deviceRequests(rec.hostConfig), !!rec.hostConfig.Privileged);
      cgroup = await cgroups.create(id, { ...limitsOf(rec.hostConfig), devices: deviceCgroupRules(rec.hostConfig, devices) });
      const rootfs = await storage.mount(id);
      if (rec.config.WorkingDir) await this.ensureWorkingDir(rootfs, rec.config.WorkingDir);
      const netns = await this.network.attach({ id, name: rec.name, hostConfig: rec.hostConfig, hostname: rec.config.Hostname, hostsPath: rec.hostsPath });
      networkAttached = true;
      const spec = await runtime.buildSpec(id, rootfs, this.processConfig(c, netns, devices), {
        cgroupProcs: cgroup.procsFiles(),
        ...(rec.logPath ? { log: { path: rec.logPath, maxBytes: logConfig.maxBytes, maxFiles: logConfig.maxFiles } } : {}),
        // Always wait: attach clients (and the local log ring) connect before the process runs.
        waitStart: true,
      });
      await runtime.create(id, spec);
      const early = await runtime.exited(id);
      if (early) throw new BerthError('EINTERNAL', early.error ?? `the container exited before it started (code ${early.code})`);
      if (logConfig.driver === 'local') {
        c.ring ??= new RingLog(logConfig.maxBytes);
        this.feedRing(c, await runtime.attach(id, { stdin: false }));
      }
      for (const pending of c.pendingAttaches.splice(0)) {
        try {
          pending.connect(await runtime.attach(id, { stdin: pending.wantsStdin && rec.config.OpenStdin }));
        } catch (err) {
          log.warn('cannot connect an attach client', { id, error: String(err) });
          pending.end();
        }
      }
      await runtime.start(id);
      const running = await runtime.running(id);
      c.cgroup = cgroup;
      c.exited = deferred<void>();
      c.startedMs = Date.now();
      Object.assign(rec.state, {
        Status: 'running', Running: true, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
        Pid: running?.pid ?? 0, ExitCode: 0, Error: '', StartedAt: running?.started ?? nowNano(),
      });
      this.startHealth(c, true);
      await this.save(c);
      this.emit('start', rec);
      this.watch(c);
    } catch (err) {
      // A refused start replies before the helper writes its exit file: give it a moment.
      const exit = await runtime.exited(id).catch(() => undefined)
        ?? await runtime.waitExit(id, AbortSignal.timeout(3000)).catch(() => undefined);
      for (const pending of c.pendingAttaches.splice(0)) pending.end();
      await runtime.remove(id).catch(() => {});
      if (cgroup) await cgroup.remove({ killLeftovers: true }).catch((e) => log.warn('cannot remove cgroup', { id, error: String(e) }));
      await storage.unmount(id).catch(() => {});
      if (networkAttached) await this.network.detach(id).catch(() => {});
      const message = exit?.error ?? (err as Error).message;
      rec.state.Error = message;
      rec.state.ExitCode = exit?.error ? startFailureCode(exit.error, exit.code) : (exit?.code || 128);
      if (rec.state.Status === 'restarting') Object.assign(rec.state, { Status: 'exited', Running: false, Restarting: false, FinishedAt: nowNano() });
      await this.save(c);
      for (const w of c.exitWaiters.splice(0)) w(waitResult(rec));
      if (rec.hostConfig.AutoRemove) void this.serial(c, () => this.removeNow(c, { volumes: true })).catch(() => {});
      if (exit?.error) {
        // Docker's wording, which the CLI scans to pick exit status 126 or 127.
        throw new BerthError('EINVAL', `failed to create task for container: unable to start container process: ${exit.error}`, { cause: err });
      }
      throw err;
    }
  }

  private feedRing(c: Live, attach: AttachStream): void {
    c.ringFeed = attach;
    void feedFromAttach(attach, c.ring!).finally(() => { if (c.ringFeed === attach) c.ringFeed = undefined; });
  }

  private watch(c: Live): void {
    const ac = new AbortController();
    c.watcher = ac;
    this.deps.runtime.waitExit(c.rec.id, ac.signal).then(
      (info) => { if (!ac.signal.aborted) return this.handleExit(c, info); },
      (err) => { if (!ac.signal.aborted) log.error('lost track of a container', { id: c.rec.id, error: String(err) }); },
    ).catch((err) => log.error('exit handling failed', { id: c.rec.id, error: String(err) }));
  }

  /** Releases what a run held: cgroup, rootfs mount, network. */
  private async teardownRun(c: Live): Promise<void> {
    const id = c.rec.id;
    if (c.cgroup) {
      await c.cgroup.remove({ killLeftovers: true }).catch((err) => log.warn('cannot remove cgroup', { id, error: String(err) }));
      c.cgroup = undefined;
    }
    await this.deps.storage.unmount(id).catch((err) => log.warn('cannot unmount rootfs', { id, error: String(err) }));
    await this.network.detach(id).catch((err) => log.warn('cannot tear down networking', { id, error: String(err) }));
  }

  private shouldRestart(c: Live, exitCode: number): boolean {
    if (c.stopRequested || c.removing || this.closed) return false;
    const policy = c.rec.hostConfig.RestartPolicy ?? {};
    switch (policy.Name) {
      case 'always': case 'unless-stopped': return true;
      case 'on-failure': return exitCode !== 0 && (!policy.MaximumRetryCount || c.rec.restartCount < policy.MaximumRetryCount);
      default: return false;
    }
  }

  private async handleExit(c: Live, info: ExitInfo): Promise<void> {
    const rec = c.rec;
    if (!isActive(rec)) return;
    c.watcher = undefined;
    this.stopHealth(c, true);
    const oom = c.cgroup ? await c.cgroup.oomKilled().catch(() => false) : false;
    await this.teardownRun(c);
    const ranMs = c.startedMs ? Date.now() - c.startedMs : 0;
    const code = info.error ? startFailureCode(info.error, info.code) : info.code;
    Object.assign(rec.state, {
      Status: 'exited', Running: false, Paused: false, Restarting: false, Pid: 0,
      ExitCode: code, Error: info.error ?? '', OOMKilled: oom, FinishedAt: info.finished || nowNano(),
    });
    const restart = this.shouldRestart(c, code);
    if (restart) Object.assign(rec.state, { Status: 'restarting', Running: true, Restarting: true });
    if (c.stopRequested) rec.manuallyStopped = true;
    await this.save(c);
    this.emit('die', rec, { exitCode: String(code), ...(oom ? { oomKilled: 'true' } : {}) });
    if (oom) this.emit('oom', rec);
    for (const w of c.exitWaiters.splice(0)) w(waitResult(rec));
    c.exited.resolve();
    if (restart) this.scheduleRestart(c, ranMs);
    else if (rec.hostConfig.AutoRemove && !c.removing) void this.serial(c, () => this.removeNow(c, { volumes: true })).catch((err) => log.warn('auto-remove failed', { id: rec.id, error: String(err) }));
  }

  /** Docker's backoff: 100 ms doubling to a minute; a run over 10 s resets it. */
  private scheduleRestart(c: Live, ranMs: number): void {
    if (ranMs >= this.backoff.resetAfterMs) c.backoffMs = 0;
    c.backoffMs = c.backoffMs ? Math.min(c.backoffMs * 2, this.backoff.maxMs) : this.backoff.initialMs;
    c.restartTimer = setTimeout(() => {
      c.restartTimer = undefined;
      void this.serial(c, async () => {
        if (c.rec.state.Status !== 'restarting' || c.stopRequested || c.removing || this.closed) return;
        c.rec.restartCount++;
        try { await this.startNow(c, true); } catch (err) {
          log.warn('restart failed', { id: c.rec.id, error: String(err) });
          if (this.shouldRestart(c, c.rec.state.ExitCode)) {
            Object.assign(c.rec.state, { Status: 'restarting', Running: true, Restarting: true });
            await this.save(c);
            this.scheduleRestart(c, 0);
          }
        }
      });
    }, c.backoffMs);
    c.restartTimer.unref?.();
  }

  // ---- stop, kill, restart, pause ----

  /** Waits until the current run's exit is handled, or `ms` passes; true when it exited. */
  private async waitExited(c: Live, ms: number): Promise<boolean> {
    if (!isActive(c.rec)) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => { timer = setTimeout(() => r(false), ms); });
    const done = await Promise.race([c.exited.promise.then(() => true as const), timeout]);
    clearTimeout(timer);
    return done;
  }

  private async signal(c: Live, sig: number): Promise<void> {
    try { await this.deps.runtime.signal(c.rec.id, sig); } catch (err) {
      // The process may have exited between our check and the signal.
      if (isActive(c.rec)) log.debug('signal not delivered', { id: c.rec.id, signal: sig, error: String(err) });
    }
  }

  private async forceKill(c: Live): Promise<void> {
    await this.signal(c, 9);
    await c.cgroup?.killAll('SIGKILL').catch(() => {});
  }

  stop(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<void> {
    const c = this.get(ref);
    return this.serial(c, () => this.stopNow(c, opts));
  }

  private async stopNow(c: Live, opts: { timeout?: number; signal?: string }): Promise<void> {
    const rec = c.rec;
    if (rec.state.Status === 'restarting') {
      if (c.restartTimer) clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      c.stopRequested = true;
      rec.manuallyStopped = true;
      Object.assign(rec.state, { Status: 'exited', Running: false, Restarting: false });
      await this.save(c);
      this.emit('stop', rec);
      return;
    }
    if (!isActive(rec)) throw new BerthError('ENOTMODIFIED', 'container already stopped');
    c.stopRequested = true;
    rec.manuallyStopped = true;
    const sig = parseSignal(opts.signal ?? rec.config.StopSignal ?? 'SIGTERM');
    const timeoutS = opts.timeout ?? rec.config.StopTimeout ?? 10;
    await this.signal(c, sig);
    this.emit('kill', rec, { signal: String(sig) });
    // A frozen process cannot act on the signal.
    if (rec.state.Status === 'paused') await this.thawForExit(c);
    const exited = timeoutS < 0 ? await c.exited.promise.then(() => true) : await this.waitExited(c, timeoutS * 1000);
    if (!exited) {
      await this.forceKill(c);
      this.emit('kill', rec, { signal: '9' });
      if (!(await this.waitExited(c, KILL_WAIT_MS))) throw new BerthError('EINTERNAL', `container ${rec.id} did not exit after SIGKILL`);
    }
    this.emit('stop', rec);
  }

  private async thawForExit(c: Live): Promise<void> {
    await c.cgroup?.thaw().catch(() => {});
    Object.assign(c.rec.state, { Status: 'running', Paused: false });
  }

  async kill(ref: string, signal?: string): Promise<void> {
    const c = this.get(ref);
    const rec = c.rec;
    const sig = parseSignal(signal, 9);
    if (!isActive(rec)) {
      if (rec.state.Status === 'restarting' && (sig === 9 || sig === parseSignal(rec.config.StopSignal))) { await this.stop(ref); return; }
      throw new BerthError('ECONFLICT', `Cannot kill container: ${ref}: container ${rec.id} is not running`);
    }
    // Killing with KILL or the stop signal is a user stop: restart policies leave it down.
    if (sig === 9 || sig === parseSignal(rec.config.StopSignal)) { c.stopRequested = true; rec.manuallyStopped = true; }
    if (sig === 9) await this.forceKill(c); else await this.signal(c, sig);
    this.emit('kill', rec, { signal: String(sig) });
  }

  restart(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<void> {
    const c = this.get(ref);
    return this.serial(c, async () => {
      try { await this.stopNow(c, opts); } catch (err) { if (!isBerthError(err, 'ENOTMODIFIED')) throw err; }
      await this.startNow(c, false);
      this.emit('restart', c.rec);
    });
  }

  pause(ref: string): Promise<void> {
    const c = this.get(ref);
    return this.serial(c, async () => {
      if (c.rec.state.Status === 'paused') throw new BerthError('ECONFLICT', `Container ${c.rec.id} is already paused`);
      if (c.rec.state.Status !== 'running' || !c.cgroup) throw new BerthError('ECONFLICT', `Container ${c.rec.id} is not running`);
      // A probe would hang in the frozen cgroup; the status stays as it was until unpause.
      this.stopHealth(c, false);
      await c.cgroup.freeze();
      Object.assign(c.rec.state, { Status: 'paused', Paused: true });
      await this.save(c);
      this.emit('pause', c.rec);
    });
  }

  unpause(ref: string): Promise<void> {
    const c = this.get(ref);
    return this.serial(c, async () => {
      if (c.rec.state.Status !== 'paused' || !c.cgroup) throw new BerthError('ECONFLICT', `Container ${c.rec.id} is not paused`);
      await c.cgroup.thaw();
      Object.assign(c.rec.state, { Status: 'running', Paused: false });
      this.startHealth(c, false);
      await this.save(c);
      this.emit('unpause', c.rec);
    });
  }

  // ---- remove, rename, prune ----

  remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const c = this.get(ref);
    return this.serial(c, () => this.removeNow(c, opts));
  }

  private async removeNow(c: Live, opts: { force?: boolean; volumes?: boolean }): Promise<void> {
    const rec = c.rec;
    const id = rec.id;
    if (!this.containers.has(id)) return;
    const live = isActive(rec) || rec.state.Status === 'restarting';
    if (live && !opts.force) {
      throw new BerthError('ECONFLICT', `cannot remove container "${rec.name}": container is ${rec.state.Status}: stop the container before removing or force remove`);
    }
    c.removing = true;
    this.stopHealth(c, false);
    if (c.restartTimer) { clearTimeout(c.restartTimer); c.restartTimer = undefined; }
    if (isActive(rec)) {
      await this.forceKill(c);
      if (!(await this.waitExited(c, KILL_WAIT_MS))) throw new BerthError('EINTERNAL', `container ${id} did not exit after SIGKILL`);
    }
    Object.assign(rec.state, { Status: 'removing', Running: false, Restarting: false, Paused: false });
    c.watcher?.abort();
    for (const pending of c.pendingAttaches.splice(0)) pending.end();
    const { runtime, storage, cgroups, graph } = this.deps;
    await runtime.remove(id);
    const cgroup = c.cgroup ?? await cgroups.open(id).catch(() => undefined);
    await cgroup?.remove({ killLeftovers: true });
    await storage.remove(id);
    await this.network.detach(id).catch(() => {});
    await this.network.removed?.(id).catch(() => {});
    graph.releaseLayers(id);
    if (opts.volumes) for (const m of rec.mounts) if (m.anonymous && m.Name) await removeVolume(this.volumesRoot, m.Name);
    this.containers.delete(id);
    if (this.names.get(rec.name) === id) this.names.delete(rec.name);
    for (const [execId, e] of this.execs) if (e.containerId === id) this.execs.delete(execId);
    await c.saving;
    await this.records.removeDir(id);
    this.emit('destroy', rec);
    for (const w of c.removedWaiters.splice(0)) w(waitResult(rec));
    for (const w of c.exitWaiters.splice(0)) w(waitResult(rec));
  }

  async rename(ref: string, newName: string): Promise<void> {
    const c = this.get(ref);
    const name = normaliseName(newName);
    const oldName = c.rec.name;
    if (name === oldName) throw new BerthError('EINVAL', 'Renaming a container with the same name as its current name');
    const holder = this.names.get(name);
    if (holder) throw nameConflict(name, holder);
    this.names.set(name, c.rec.id);
    this.names.delete(oldName);
    c.rec.name = name;
    await this.save(c);
    this.emit('rename', c.rec, { oldName });
  }

  async prune(): Promise<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const c of [...this.containers.values()]) {
      if (!['created', 'exited', 'dead'].includes(c.rec.state.Status)) continue;
      const size = await this.deps.storage.diffSize(c.rec.id).catch(() => 0);
      try {
        await this.serial(c, () => this.removeNow(c, {}));
        deleted.push(c.rec.id);
        reclaimed += size;
      } catch (err) { log.warn('prune: cannot remove container', { id: c.rec.id, error: String(err) }); }
    }
    return { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  // ---- wait, inspect, list ----

  wait(ref: string, condition: WaitCondition): { ready: Promise<void>; result: Promise<WaitResult> } {
    let c: Live;
    try { c = this.get(ref); } catch (err) {
      const failed = Promise.reject(err);
      failed.catch(() => {});
      return { ready: failed, result: failed as Promise<never> };
    }
    const rec = c.rec;
    let result: Promise<WaitResult>;
    if (condition === 'removed') {
      result = new Promise((r) => c.removedWaiters.push(r));
    } else if (condition === 'not-running' && !isActive(rec) && rec.state.Status !== 'restarting') {
      result = Promise.resolve(waitResult(rec));
    } else if (condition === 'not-running' || condition === 'next-exit') {
      result = new Promise((r) => c.exitWaiters.push(r));
    } else {
      const bad = Promise.reject(new BerthError('EINVAL', `invalid condition: "${String(condition)}"`));
      bad.catch(() => {});
      return { ready: bad, result: bad as Promise<never> };
    }
    return { ready: Promise.resolve(), result };
  }

  async inspect(ref: string): Promise<Record<string, unknown>> {
    const c = this.get(ref);
    const doc = inspectDocument(c.rec, this.driverDisplayName());
    const net = this.network.settings?.(c.rec.id, c.rec.hostConfig, c.rec.config.ExposedPorts);
    if (net) doc.NetworkSettings = net.NetworkSettings;
    const execIds = [...this.execs.values()].filter((e) => e.containerId === c.rec.id).map((e) => e.id);
    if (execIds.length) doc.ExecIDs = execIds;
    return doc;
  }

  private driverDisplayName(): string {
    return this.deps.storage.name === 'overlay' ? 'overlay2' : this.deps.storage.name;
  }

  private imageNameOf(rec: ContainerRecord): string {
    // ps shows what the user asked for while that still names the same image, else the id.
    const tags = this.deps.imageTags?.(rec.imageId);
    if (!tags) return rec.config.Image;
    const asked = rec.config.Image.includes(':') || rec.config.Image.includes('@') ? rec.config.Image : `${rec.config.Image}:latest`;
    if (tags.includes(asked)) return rec.config.Image;
    return tags[0] ?? rec.imageId;
  }

  async list(opts: { all?: boolean; limit?: number; filters?: Record<string, string[]>; size?: boolean } = {}): Promise<Array<Record<string, unknown>>> {
    const filters = opts.filters ?? {};
    const limit = opts.limit && opts.limit > 0 ? opts.limit : undefined;
    const showAll = opts.all || limit !== undefined || (filters.status?.length ?? 0) > 0 || (filters.exited?.length ?? 0) > 0;
    const ancestor = (value: string, rec: ContainerRecord) => {
      if (rec.imageId === value || rec.imageId === `sha256:${value}` || rec.imageId.startsWith(`sha256:${value}`) && value.length >= 12) return true;
      if (rec.config.Image === value) return true;
      const tags = this.deps.imageTags?.(rec.imageId) ?? [];
      return tags.includes(value) || tags.includes(`${value}:latest`);
    };
    const now = Date.now();
    const rows = [...this.containers.values()]
      .map((c) => c.rec)
      .filter((r) => showAll || isActive(r) || r.state.Status === 'restarting')
      .filter((r) => matchesFilters(r, filters, ancestor))
      .sort((a, b) => b.created.localeCompare(a.created));
    const picked = limit ? rows.slice(0, limit) : rows;
    const out: Array<Record<string, unknown>> = [];
    for (const r of picked) {
      const entry = listEntry(r, this.imageNameOf(r), now);
      const net = this.network.settings?.(r.id, r.hostConfig, r.config.ExposedPorts);
      if (net) Object.assign(entry, { Ports: net.Ports, NetworkSettings: { Networks: net.Networks } });
      if (opts.size) entry.SizeRw = await this.deps.storage.diffSize(r.id).catch(() => 0);
      out.push(entry);
    }
    return out;
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    let running = 0, paused = 0;
    for (const c of this.containers.values()) {
      if (c.rec.state.Status === 'paused') paused++;
      else if (c.rec.state.Status === 'running' || c.rec.state.Status === 'restarting') running++;
    }
    const total = this.containers.size;
    return { total, running, paused, stopped: total - running - paused };
  }

  // ---- logs, attach, resize, top, stats, update ----

  async *logs(ref: string, opts: LogsOptions, signal?: AbortSignal): AsyncIterable<LogEntry> {
    const c = this.get(ref);
    const logConfig = parseLogConfig(c.rec.hostConfig.LogConfig);
    // Following stops at the exit of the current run (at once when nothing runs).
    const stopWhen = isActive(c.rec) || c.rec.state.Status === 'restarting' ? c.exited.promise : Promise.resolve();
    if (logConfig.driver === 'none') throw new BerthError('EUNSUPPORTED', 'configured logging driver does not support reading');
    if (logConfig.driver === 'local') {
      if (!c.ring) return;
      yield* c.ring.read(opts, signal, stopWhen);
      return;
    }
    yield* readJsonFileLog(c.rec.logPath, logConfig.maxFiles, opts, signal, stopWhen);
  }

  async attach(ref: string, opts: { stdin: boolean }): Promise<AttachStream & { tty: boolean }> {
    const c = this.get(ref);
    const rec = c.rec;
    const tty = rec.config.Tty;
    if (rec.state.Status === 'removing') throw new BerthError('ECONFLICT', `container ${rec.id} is being removed`);
    let stream: AttachStream & { tty: boolean };
    if (rec.state.Status === 'running' || rec.state.Status === 'paused') {
      stream = { ...(await this.deps.runtime.attach(rec.id, { stdin: opts.stdin && rec.config.OpenStdin })), tty };
    } else {
      // Not running yet (docker run, docker start -a): wired up by the next start.
      const pending = new PendingAttach(opts.stdin && rec.config.OpenStdin);
      c.pendingAttaches.push(pending);
      void pending.closed.then(() => { const i = c.pendingAttaches.indexOf(pending); if (i >= 0) c.pendingAttaches.splice(i, 1); });
      stream = pending.asStream(tty);
    }
    this.emit('attach', rec);
    return stream;
  }

  async resize(ref: string, rows: number, cols: number): Promise<void> {
    const c = this.get(ref);
    if (!isActive(c.rec)) throw new BerthError('ECONFLICT', `Container ${c.rec.id} is not running`);
    if (!c.rec.config.Tty) return;
    await this.deps.runtime.resize(c.rec.id, rows, cols);
  }

  async top(ref: string, _psArgs?: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    const c = this.get(ref);
    if (!isActive(c.rec)) throw new BerthError('ECONFLICT', `Container ${c.rec.id} is not running`);
    let pids = (await c.cgroup?.pids().catch(() => [])) ?? [];
    if (!pids.length && c.rec.state.Pid) pids = await processTree(c.rec.state.Pid);
    return topTable(pids);
  }

  async stats(ref: string): Promise<Record<string, unknown>> {
    const c = this.get(ref);
    const read = new Date().toISOString();
    const zero = { memory: { usage: 0, limit: 0 }, cpu: { usageNanos: 0, onlineCpus: 0 }, pids: { current: 0 } };
    const stats = isActive(c.rec) && c.cgroup ? await c.cgroup.stats() : zero;
    const sample: StatsSample = { read, stats };
    const doc = statsDocument(c.rec, sample, c.lastStats);
    c.lastStats = isActive(c.rec) ? sample : undefined;
    return doc;
  }

  update(ref: string, update: HostConfig): Promise<{ Warnings: string[] }> {
    const c = this.get(ref);
    return this.serial(c, async () => {
      const next = updatedHostConfig(c.rec.hostConfig, update ?? {});
      const limits = limitsOf(next);
      validateLimits(limits);
      const support = this.deps.cgroups.supports(requestedLimitKeys(limits));
      if (!support.ok) throw new BerthError('EUNSUPPORTED', support.message!);
      if (isActive(c.rec) && c.cgroup) await c.cgroup.apply(limits);
      c.rec.hostConfig = next;
      await this.save(c);
      this.emit('update', c.rec);
      return { Warnings: support.notes };
    });
  }

  // ---- filesystem: archive, export, changes ----

  /**
   * Runs `use` with the container's rootfs path. A container that is not running is
   * mounted just for the call, and starts wait until it is done so the mount cannot be
   * pulled from under either of them.
   */
  async withRootfs<T>(ref: string, use: (rootfs: string) => Promise<T>): Promise<T> {
    const c = this.get(ref);
    if (c.removing || c.rec.state.Status === 'removing') throw new BerthError('ECONFLICT', `container ${c.rec.id} is being removed`);
    if (isActive(c.rec)) return use(await this.deps.storage.mount(c.rec.id));
    return this.serial(c, async () => {
      if (!this.containers.has(c.rec.id)) throw new BerthError('ENOCONTAINER', `No such container: ${ref}`);
      const rootfs = await this.deps.storage.mount(c.rec.id);
      try {
        return await use(rootfs);
      } finally {
        if (!isActive(c.rec)) await this.deps.storage.unmount(c.rec.id).catch((err) => log.warn('cannot unmount rootfs', { id: c.rec.id, error: String(err) }));
      }
    });
  }

  /** docker diff: what the container changed against its image, without the engine's own mount points. */
  async changes(ref: string): Promise<Change[]> {
    const c = this.get(ref);
    const lowers: LowerLayer[] = [];
    for (const chainId of c.rec.chainIds) {
      const layer = await this.deps.graph.layers.get(chainId);
      if (!layer) throw new BerthError('ECORRUPT', `layer ${chainId} of container ${c.rec.id} is missing`);
      lowers.push({ diffPath: this.deps.graph.layers.diffPath(chainId), whiteouts: layer.whiteouts, opaques: layer.opaques, whiteoutFormat: layer.whiteoutFormat });
    }
    const mountPoints = new Set(['/etc/hosts', '/etc/hostname', '/etc/resolv.conf', ...c.rec.mounts.map((m) => m.Destination.replace(/\/+$/, ''))]);
    return withoutMountPoints(await this.deps.storage.changes(c.rec.id, lowers), mountPoints);
  }

  // ---- exec ----

  async execCreate(ref: string, req: { Cmd: string[]; Env?: string[]; WorkingDir?: string; User?: string; Tty?: boolean; AttachStdin?: boolean; AttachStdout?: boolean; AttachStderr?: boolean; Privileged?: boolean }): Promise<{ Id: string }> {
    const c = this.get(ref);
    const rec = c.rec;
    if (rec.state.Status === 'paused') throw new BerthError('ECONFLICT', `Container ${rec.id} is paused, unpause the container before exec`);
    if (rec.state.Status !== 'running') throw new BerthError('ECONFLICT', `Container ${rec.id} is not running`);
    if (!Array.isArray(req.Cmd) || req.Cmd.length === 0) throw new BerthError('EINVAL', 'No exec command specified');
    this.forgetEndedExecs();
    const id = randomBytes(32).toString('hex');
    this.execs.set(id, {
      id, containerId: rec.id, running: false, started: false, exitCode: null, pid: 0,
      openStdin: !!req.AttachStdin, attachStdout: !!req.AttachStdout, attachStderr: !!req.AttachStderr,
      config: {
        args: req.Cmd,
        env: mergeEnv(processEnv(rec.config), req.Env),
        workingDir: req.WorkingDir || rec.config.WorkingDir || undefined,
        user: req.User || rec.config.User || undefined,
        tty: !!req.Tty,
        attachStdin: !!req.AttachStdin,
        privileged: !!req.Privileged,
      },
    });
    this.emit('exec_create', rec, { execID: id, exec_command: req.Cmd.join(' ') });
    return { Id: id };
  }

  private getExec(execId: string): ExecRecord {
    const e = this.execs.get(execId);
    if (!e) throw new BerthError('ENOTFOUND', `No such exec instance: ${execId}`);
    return e;
  }

  async execStart(execId: string, opts: { detach: boolean; stdin: boolean }): Promise<(AttachStream & { tty: boolean }) | undefined> {
    const e = this.getExec(execId);
    if (e.started) throw new BerthError('ECONFLICT', `Error: Exec command ${execId} is already running`);
    const c = this.containers.get(e.containerId);
    if (!c || c.rec.state.Status !== 'running') throw new BerthError('ECONFLICT', `Container ${e.containerId} is not running`);
    e.started = true;
    const { runtime, storage } = this.deps;
    const id = c.rec.id;
    const rootfs = await storage.mount(id);
    const netns = c.rec.hostConfig.NetworkMode === 'host' ? 'host' : undefined;
    let attach: AttachStream | undefined;
    try {
      await runtime.exec(id, execId, e.config, { ...this.processConfig(c, netns), rootfs, cgroupProcs: c.cgroup?.procsFiles() ?? [] });
      if (!opts.detach) attach = await runtime.execAttach(id, execId, { stdin: opts.stdin && e.config.attachStdin });
      await runtime.execStart(id, execId);
    } catch (err) {
      attach?.close();
      const exit = await runtime.execExited(id, execId).catch(() => undefined)
        ?? await runtime.execWaitExit(id, execId, AbortSignal.timeout(3000)).catch(() => undefined);
      e.exitCode = exit ? (exit.error ? startFailureCode(exit.error, exit.code) : exit.code) : 126;
      e.endedMs = Date.now();
      if (exit) this.removeExecFiles(id, execId);
      if (exit?.error) throw new BerthError('EINVAL', `OCI runtime exec failed: exec failed: unable to start container process: ${exit.error}`, { cause: err });
      throw err;
    }
    e.running = true;
    e.pid = (await runtime.execRunning(id, execId).catch(() => undefined))?.pid ?? 0;
    this.emit('exec_start', c.rec, { execID: execId, exec_command: e.config.args.join(' ') });
    runtime.execWaitExit(id, execId).then((exit) => {
      e.running = false;
      e.pid = 0;
      e.exitCode = exit.error ? startFailureCode(exit.error, exit.code) : exit.code;
      e.endedMs = Date.now();
      // The exit code now lives here; the files would pile up in the RAM-backed exec root.
      this.removeExecFiles(id, execId);
      if (this.containers.has(id)) this.emit('exec_die', c.rec, { execID: execId, exitCode: String(e.exitCode) });
    }, (err) => { e.running = false; e.endedMs = Date.now(); log.debug('exec wait ended', { id, execId, error: String(err) }); });
    return attach ? { ...attach, tty: e.config.tty } : undefined;
  }

  private removeExecFiles(id: string, execId: string): void {
    void this.deps.runtime.execRemove?.(id, execId).catch((err) => log.debug('cannot remove exec files', { id, execId, error: String(err) }));
  }

  /** Drops records of execs that ended more than EXEC_RECORD_TTL_MS ago (Docker's exec GC), so a monitor's execs do not grow the daemon. */
  private forgetEndedExecs(now = Date.now()): void {
    for (const [execId, e] of this.execs) if (e.endedMs !== undefined && now - e.endedMs > EXEC_RECORD_TTL_MS) this.execs.delete(execId);
  }

  async execResize(execId: string, rows: number, cols: number): Promise<void> {
    const e = this.getExec(execId);
    if (!e.running) throw new BerthError('ECONFLICT', `Exec ${execId} is not running`);
    if (e.config.tty) await this.deps.runtime.execResize(e.containerId, execId, rows, cols);
  }

  async execInspect(execId: string): Promise<Record<string, unknown>> {
    const e = this.getExec(execId);
    return {
      ID: e.id, Running: e.running, ExitCode: e.exitCode, CanRemove: !e.running && e.started,
      ContainerID: e.containerId, DetachKeys: '', OpenStdin: e.openStdin, OpenStdout: e.attachStdout, OpenStderr: e.attachStderr,
      ProcessConfig: { tty: e.config.tty, entrypoint: e.config.args[0], arguments: e.config.args.slice(1), privileged: !!e.config.privileged, ...(e.config.user ? { user: e.config.user } : {}) },
      Pid: e.pid,
    };
  }

  // ---- health checks ----

  /** Starts the checks of a running container; `fresh` (a start, a live restore) begins at "starting". */
  private startHealth(c: Live, fresh: boolean): void {
    this.stopHealth(c, false);
    const rec = c.rec;
    const command = probeCommand(rec.config.Healthcheck);
    if (!command || this.closed) return;
    if (fresh || !rec.state.Health) rec.state.Health = { Status: 'starting', FailingStreak: 0, Log: rec.state.Health?.Log ?? [] };
    const monitor: HealthMonitor = new HealthMonitor({
      config: rec.config.Healthcheck!,
      command,
      state: rec.state.Health,
      startedMs: Date.parse(rec.state.StartedAt) || Date.now(),
      probe: (cmd, signal) => this.runProbe(c, cmd, signal),
      onResult: (changed) => {
        // Saved on status changes only: a write per probe would wear out a router's flash.
        if (!changed || c.health !== monitor || !this.containers.has(rec.id)) return;
        void this.save(c);
        this.emit(`health_status: ${rec.state.Health!.Status}`, rec);
      },
    });
    c.health = monitor;
    monitor.start();
  }

  /** Stops the checks. When the run ended Docker reports the last status as unhealthy. */
  private stopHealth(c: Live, runEnded: boolean): void {
    c.health?.stop();
    c.health = undefined;
    if (runEnded && c.rec.state.Health) c.rec.state.Health.Status = 'unhealthy';
  }

  /** One probe: an exec the engine does not list (no exec_* events), its output captured and capped. */
  private async runProbe(c: Live, command: string[], signal: AbortSignal): Promise<{ exitCode: number; output: string }> {
    const rec = c.rec;
    const id = rec.id;
    if (rec.state.Status !== 'running') throw new BerthError('ECONFLICT', `Container ${id} is not running`);
    const { runtime, storage } = this.deps;
    const execId = randomBytes(32).toString('hex');
    const config: ExecConfig = {
      args: command, env: processEnv(rec.config), tty: false, attachStdin: false,
      ...(rec.config.WorkingDir ? { workingDir: rec.config.WorkingDir } : {}),
      ...(rec.config.User ? { user: rec.config.User } : {}),
    };
    const netns = rec.hostConfig.NetworkMode === 'host' ? 'host' : undefined;
    const output = new LimitedOutput();
    const kill = () => { void runtime.execRunning(id, execId).then((running) => { if (running) killProcessGroup(running.pid); }); };
    let attach: AttachStream | undefined;
    let exited = false;
    try {
      const rootfs = await storage.mount(id);
      await runtime.exec(id, execId, config, { ...this.processConfig(c, netns), rootfs, cgroupProcs: c.cgroup?.procsFiles() ?? [] });
      attach = await runtime.execAttach(id, execId, { stdin: false });
      attach.stdout.on('data', (chunk: Buffer) => output.write(chunk));
      attach.stderr.on('data', (chunk: Buffer) => output.write(chunk));
      signal.addEventListener('abort', kill, { once: true });
      await runtime.execStart(id, execId);
      // Timed out while the exec was being set up: the listener fired before there was a process.
      if (signal.aborted) kill();
      const exit = await runtime.execWaitExit(id, execId, signal);
      exited = true;
      if (exit.error) throw new BerthError('EINVAL', `OCI runtime exec failed: exec failed: unable to start container process: ${exit.error}`);
      // The helper closes the attach once the output is flushed; an orphan holding the pipe must not stall the check.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([attach.closed, new Promise<void>((r) => { timer = setTimeout(r, PROBE_OUTPUT_WAIT_MS); })]);
      clearTimeout(timer);
      return { exitCode: exit.code, output: output.toString() };
    } finally {
      signal.removeEventListener('abort', kill);
      attach?.close();
      if (runtime.execRemove) {
        const settled = exited ? Promise.resolve() : runtime.execWaitExit(id, execId, AbortSignal.any([AbortSignal.timeout(PROBE_CLEANUP_WAIT_MS), this.closing.signal])).then(() => {}, () => {});
        void settled.then(() => runtime.execRemove!(id, execId)).catch(() => {});
      }
    }
  }

  // ---- live restore and shutdown ----

  /** Loads records, re-adopts running containers, collects exits and leftovers. */
  async restore(): Promise<void> {
    const { runtime, storage, cgroups, graph } = this.deps;
    const holds = new Map<string, Digest[]>();
    const toRestart: Live[] = [];
    for (const { id, record } of await this.records.loadAll()) {
      if (!record) {
        // Create never finished: nothing refers to what it left.
        log.info('removing a half-created container', { id });
        await runtime.remove(id).catch(() => {});
        await (await cgroups.open(id).catch(() => undefined))?.remove({ killLeftovers: true }).catch(() => {});
        await storage.remove(id).catch(() => {});
        await this.records.removeDir(id);
        continue;
      }
      const c = new Live(record);
      this.containers.set(id, c);
      this.names.set(record.name, id);
      holds.set(id, record.chainIds);
      if (record.state.Status === 'removing') {
        c.removing = true;
        toRestart.push(c); // finished below, as a removal
        continue;
      }
      if (record.state.Status === 'restarting') { toRestart.push(c); continue; }
      if (!isActive(record)) continue;
      const exit = await runtime.exited(id).catch(() => undefined);
      if (exit) {
        c.cgroup = await cgroups.open(id).catch(() => undefined);
        await this.handleExit(c, exit);
        continue;
      }
      if (await runtime.helperAlive(id)) {
        c.cgroup = await cgroups.open(id).catch(() => undefined);
        c.startedMs = Date.parse(record.state.StartedAt) || Date.now();
        if (parseLogConfig(record.hostConfig.LogConfig).driver === 'local') {
          c.ring = new RingLog(parseLogConfig(record.hostConfig.LogConfig).maxBytes);
          await runtime.attach(id, { stdin: false }).then((a) => this.feedRing(c, a), () => {});
        }
        this.watch(c);
        // Docker restarts the checks of a live-restored container from "starting".
        if (record.state.Status === 'running') this.startHealth(c, true);
        log.info('re-adopted a running container', { id, name: record.name });
        continue;
      }
      // The helper died without writing an exit status (killed, or a reboot).
      c.cgroup = await cgroups.open(id).catch(() => undefined);
      await this.handleExit(c, { code: 255, signal: 0, finished: nowNano(), error: 'container helper exited without reporting a status' });
    }
    graph.setExternalHolds(holds);
    const known = new Set(this.containers.keys());
    for (const id of await cgroups.listOwned().catch(() => [])) {
      const c = this.containers.get(id);
      if (c && isActive(c.rec)) continue;
      await (await cgroups.open(id).catch(() => undefined))?.remove({ killLeftovers: true }).catch((err) => log.warn('cannot remove leftover cgroup', { id, error: String(err) }));
    }
    await storage.cleanup(known);
    for (const id of await runtime.list().catch(() => [])) {
      const c = this.containers.get(id);
      if (!c || !isActive(c.rec)) await runtime.remove(id).catch(() => {});
    }
    const running = new Set([...this.containers.values()].filter((c) => isActive(c.rec)).map((c) => c.rec.id));
    await this.network.reconcile?.(running).catch((err) => log.warn('cannot clean up stale networking', { error: String(err) }));
    for (const c of toRestart) {
      if (c.removing) { await this.serial(c, () => this.removeNow(c, { force: true })).catch(() => {}); continue; }
      Object.assign(c.rec.state, { Status: 'exited', Running: false, Restarting: false });
    }
    // Docker on daemon start: always and unless-stopped (not stopped by the user) come back.
    for (const c of this.containers.values()) {
      const policy = c.rec.hostConfig.RestartPolicy?.Name;
      const wanted = policy === 'always' || (policy === 'unless-stopped' && !c.rec.manuallyStopped)
        || (toRestart.includes(c) && policy === 'on-failure');
      if (!wanted || isActive(c.rec)) continue;
      await this.serial(c, () => this.startNow(c, true)).catch((err) => log.warn('cannot restart container at daemon start', { id: c.rec.id, error: String(err) }));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    for (const c of this.containers.values()) {
      c.watcher?.abort();
      c.ringFeed?.close();
      if (c.restartTimer) clearTimeout(c.restartTimer);
      for (const p of c.pendingAttaches.splice(0)) p.end();
      // Status changes are saved as they happen; this keeps the latest results too.
      if (c.health) { this.stopHealth(c, false); void this.save(c); }
    }
    await Promise.all([...this.containers.values()].map((c) => c.queue.then(() => c.saving)));
  }
}

/** Opens the engine over the data root: loads records and restores running containers. */
export async function openEngine(deps: EngineDeps): Promise<ContainerEngine> {
  await fsp.mkdir(join(deps.dataRoot, 'volumes'), { recursive: true, mode: 0o700 });
  const engine = new ContainerEngine(deps);
  await engine.restore();
  return engine;
}
