// The fleet agent: one outgoing MQTT connection per daemon. It takes commands (QoS 1,
// persistent session), replies per request, keeps a retained status with a last will,
// sends telemetry and events, and converges desired-state manifests. Nothing in here
// may take the daemon down: every payload is checked, every failure becomes a reply
// or a log line.
import { join } from 'node:path';
import { arch, loadavg, totalmem, freemem } from 'node:os';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { BerthError, toBerthError } from '../util/errors';
import { logger } from '../util/log';
import type { FleetConfig } from './config';
import { clientOptions, backoffDelay } from './connection';
import { deviceTopics, groupTopics, type DeviceTopics } from './topics';
import { BadRequest, errorBody, errorReply, okReply, parseRequest, type FleetReply, type FleetRequest } from './protocol';
import { verifyRequest, parsePublicKey } from './signing';
import { RecentRequestIds } from './dedupe';
import { runAction, condensedStats, type ActionContext } from './actions';
import { engineStackBackend, type FleetEngine, type FleetImages } from './backend';
import { LABEL_SOURCE, parseManifest, contentHash, type StackManifest } from './manifest';
import { reconcileStack, removeStack, type StackBackend, type StackStatus } from './reconciler';

const log = logger('fleet');

export interface FleetAgentDeps {
  config: FleetConfig;
  engine: FleetEngine;
  images: FleetImages;
  /** The daemon's data root: the agent keeps its dedupe log under fleet/. */
  dataRoot: string;
  version: string;
  startedAt: Date;
}

export interface FleetAgent {
  readonly connected: boolean;
  close(): Promise<void>;
}

/** Replies kept while the broker is unreachable; beyond this the oldest are dropped. */
const MAX_BUFFERED = 500;
/** Commands run at the same time; more wait in order. Routers have little CPU. */
const MAX_CONCURRENT = 4;
const STATUS_EVERY_MS = 60_000;
const PROGRESS_EVERY_MS = 250;

interface Outgoing { topic: string; payload: string; retain: boolean; qos: 0 | 1; correlationData?: Buffer }

type DesiredEntry =
  | { kind: 'manifest'; manifest: StackManifest; hash: string }
  | { kind: 'invalid'; error: { code: string; message: string } }
  | { kind: 'absent' };

interface SourceState { stack?: string; generation?: string; status: string; services?: StackStatus['services']; removed?: string[]; error?: { code: string; message: string }; updatedAt: string }

/** Default stack name for a desired-state source; manifests may name their own. */
function defaultStackName(source: string): string {
  return source === 'dev' ? 'fleet' : `fleet-${source.slice(4).toLowerCase().replace(/[^a-z0-9_-]/g, '-')}`.slice(0, 63);
}

export async function startFleetAgent(deps: FleetAgentDeps): Promise<FleetAgent> {
  const { config } = deps;
  const keys = config.commandKeys.map(parsePublicKey);
  const recent = await RecentRequestIds.open(join(deps.dataRoot, 'fleet', 'request-ids'));
  const topics: DeviceTopics = deviceTopics(config.prefix, config.deviceId);
  const commandTopics = new Set([topics.commands, ...config.groups.map((g) => groupTopics(config.prefix, g).commands)]);
  const desiredSources = new Map<string, string>([[topics.desired, 'dev'], ...config.groups.map((g) => [groupTopics(config.prefix, g).desired, `grp:${g}`] as [string, string])]);
  const stacks: StackBackend = engineStackBackend(deps.engine, deps.images);

  const client: MqttClient = mqtt.connect(config.broker, clientOptions({
    clientId: `berth-${config.deviceId}`, persistent: true,
    ca: config.ca, cert: config.cert, key: config.key, username: config.username, password: config.password,
    will: { topic: topics.status, payload: JSON.stringify({ online: false }) },
  }));

  let closing = false;
  let attempt = 0;
  let reconnectTimer: NodeJS.Timeout | undefined;
  const buffer: Outgoing[] = [];

  // --- publishing -------------------------------------------------------------------
  const send = (o: Outgoing): void => {
    client.publish(o.topic, o.payload, { qos: o.qos, retain: o.retain, ...(o.correlationData ? { properties: { correlationData: o.correlationData } } : {}) }, (err) => {
      if (err && !closing) log.debug('publish failed', { topic: o.topic, error: err.message });
    });
  };
  /** Publishes now, or keeps it for the next connection (retained topics keep only their latest). */
  const publish = (o: Outgoing): void => {
    if (client.connected) return send(o);
    if (o.qos === 0) return; // telemetry and events are worthless late
    if (o.retain) {
      const i = buffer.findIndex((b) => b.retain && b.topic === o.topic);
      if (i !== -1) buffer.splice(i, 1);
    }
    buffer.push(o);
    if (buffer.length > MAX_BUFFERED) {
      buffer.shift();
      log.warn('offline reply buffer full; dropped the oldest message', { bound: MAX_BUFFERED });
    }
  };

  // --- status, telemetry, events ------------------------------------------------------
  const statusDoc = () => ({
    online: true, device: config.deviceId, groups: config.groups, version: deps.version, arch: arch(),
    uptime: Math.round((Date.now() - deps.startedAt.getTime()) / 1000), containers: deps.engine.counts(), updatedAt: new Date().toISOString(),
  });
  const publishStatus = (): void => publish({ topic: topics.status, payload: JSON.stringify(statusDoc()), retain: true, qos: 1 });
  let statusSoon: NodeJS.Timeout | undefined;
  const unsubscribeEvents = deps.engine.onEvent((e) => {
    if (client.connected) {
      send({ topic: topics.events, qos: 0, retain: false, payload: JSON.stringify({ type: e.Type, action: e.Action, id: e.Actor.ID, name: e.Actor.Attributes.name, time: e.time }) });
    }
    // Container counts in the status follow lifecycle changes, debounced.
    statusSoon ??= setTimeout(() => { statusSoon = undefined; if (client.connected) publishStatus(); }, 2000);
  });
  const statusTimer = setInterval(() => { if (client.connected) publishStatus(); }, STATUS_EVERY_MS);
  const telemetryTimer = config.telemetryInterval > 0 ? setInterval(() => { void publishTelemetry(); }, config.telemetryInterval * 1000) : undefined;
  async function publishTelemetry(): Promise<void> {
    if (!client.connected) return;
    try {
      const containers: Record<string, unknown> = {};
      for (const c of await deps.engine.list({})) {
        const name = ((c.Names as string[])[0] ?? '').replace(/^\//, '');
        const health = (c.Health as { Status?: string } | undefined)?.Status;
        containers[name || (c.Id as string)] = { ...condensedStats(await deps.engine.stats(c.Id as string).catch(() => ({}))), ...(health ? { health } : {}) };
      }
      send({ topic: topics.telemetry, qos: 0, retain: false, payload: JSON.stringify({ device: config.deviceId, time: new Date().toISOString(), host: { load: loadavg(), memTotal: totalmem(), memFree: freemem() }, containers }) });
    } catch (err) {
      log.debug('telemetry failed', { error: toBerthError(err).message });
    }
  }

  // --- commands -----------------------------------------------------------------------
  let running = 0;
  const waiting: Array<() => void> = [];
  const slot = async (): Promise<() => void> => {
    if (running >= MAX_CONCURRENT) await new Promise<void>((r) => waiting.push(r));
    running++;
    return () => { running--; waiting.shift()?.(); };
  };

  const replyTarget = (packet: IPublishPacket, id: string): { topic: string; correlationData?: Buffer } => {
    const props = packet.properties;
    // MQTT 5 request/response: the requester named where it listens.
    if (props?.responseTopic && !/[+#]/.test(props.responseTopic)) return { topic: props.responseTopic, correlationData: props.correlationData };
    return { topic: topics.reply(id) };
  };
  const reply = (target: { topic: string; correlationData?: Buffer }, body: FleetReply): void => {
    publish({ topic: target.topic, payload: JSON.stringify(body), retain: false, qos: 1, correlationData: target.correlationData });
  };

  /** Checks a command; returns it when it should run. Claims its id durably first (at most once). */
  async function admit(packet: IPublishPacket): Promise<{ req: FleetRequest; target: { topic: string; correlationData?: Buffer } } | undefined> {
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    let req: FleetRequest;
    try {
      req = parseRequest(payload, config.maxPayload);
    } catch (err) {
      const id = err instanceof BadRequest && err.requestId ? err.requestId : 'invalid';
      reply(replyTarget(packet, id), errorReply(id, config.deviceId, err));
      log.warn('malformed fleet command refused', { topic: packet.topic, error: (err as Error).message });
      return undefined;
    }
    const target = replyTarget(packet, req.id);
    try {
      if (!config.allowedActions.includes(req.action)) throw new BerthError('EDENIED', `action "${req.action}" is not allowed on this device`);
      if (keys.length) verifyRequest(req, keys);
    } catch (err) {
      reply(target, errorReply(req.id, config.deviceId, err));
      return undefined;
    }
    if (!(await recent.claim(req.id))) {
      reply(target, errorReply(req.id, config.deviceId, new BerthError('ECONFLICT', `request ${req.id} was already executed; not running it again`)));
      return undefined;
    }
    return { req, target };
  }

  async function execute(req: FleetRequest, target: { topic: string; correlationData?: Buffer }): Promise<void> {
    const release = await slot();
    let lastProgress = 0;
    const ctx: ActionContext = {
      engine: deps.engine, images: deps.images, stacks, deviceId: config.deviceId, groups: config.groups,
      version: deps.version, startedAt: deps.startedAt, maxPayload: config.maxPayload,
      progress: (msg) => {
        const now = Date.now();
        if (now - lastProgress < PROGRESS_EVERY_MS) return;
        lastProgress = now;
        reply(target, { id: req.id, device: config.deviceId, progress: msg });
      },
    };
    try {
      const result = await runAction(req.action, req.args, ctx);
      reply(target, okReply(req.id, config.deviceId, result));
    } catch (err) {
      reply(target, errorReply(req.id, config.deviceId, err));
    } finally {
      release();
    }
    log.debug('fleet command done', { id: req.id, action: req.action });
  }

  // --- desired state ------------------------------------------------------------------
  const desired = new Map<string, DesiredEntry>();
  const appliedHash = new Map<string, string>();
  const stateBySource: Record<string, SourceState> = {};
  const dirty = new Set<string>();
  let reconciling: Promise<void> | undefined;

  const publishState = (): void => publish({
    topic: topics.state, retain: true, qos: 1,
    payload: JSON.stringify({ device: config.deviceId, updatedAt: new Date().toISOString(), sources: stateBySource }),
  });

  function onDesired(source: string, payload: Buffer): void {
    let entry: DesiredEntry;
    if (payload.length === 0) entry = { kind: 'absent' };
    else if (payload.length > config.maxPayload) entry = { kind: 'invalid', error: { code: 'too_large', message: `manifest of ${payload.length} bytes exceeds the limit of ${config.maxPayload}` } };
    else {
      try {
        const manifest = parseManifest(payload.toString('utf8'));
        entry = { kind: 'manifest', manifest, hash: contentHash(manifest) };
      } catch (err) {
        entry = { kind: 'invalid', error: errorBody(err) };
      }
    }
    desired.set(source, entry);
    dirty.add(source);
    reconciling ??= reconcileLoop().finally(() => { reconciling = undefined; });
  }

  async function reconcileLoop(): Promise<void> {
    while (dirty.size && !closing) {
      const source = dirty.values().next().value!;
      dirty.delete(source);
      const entry = desired.get(source)!;
      const sourceLabel = `fleet:${source}`;
      try {
        if (entry.kind === 'invalid') {
          // A bad manifest changes nothing: the containers of the last good one keep running.
          stateBySource[source] = { ...stateBySource[source], status: 'invalid', error: entry.error, updatedAt: new Date().toISOString() };
          publishState();
          continue;
        }
        const stackName = entry.kind === 'manifest' ? entry.manifest.name ?? defaultStackName(source) : undefined;
        // Stacks this source created earlier under another name are no longer wanted.
        const owned = await stacks.listStackContainers();
        const stale = new Set(owned.filter((c) => c.labels[LABEL_SOURCE] === sourceLabel && c.labels['io.berth.stack'] !== stackName).map((c) => c.labels['io.berth.stack']!));
        const removed: string[] = [];
        for (const name of stale) removed.push(...await removeStack(stacks, name));
        if (entry.kind === 'absent') {
          appliedHash.delete(source);
          stateBySource[source] = { status: 'removed', removed, updatedAt: new Date().toISOString() };
          publishState();
          continue;
        }
        stateBySource[source] = { stack: stackName, generation: entry.manifest.generation, status: 'converging', updatedAt: new Date().toISOString() };
        publishState();
        const result = await reconcileStack(stacks, stackName!, entry.manifest, { labels: { [LABEL_SOURCE]: sourceLabel } });
        appliedHash.set(source, entry.hash);
        stateBySource[source] = { stack: stackName, generation: result.generation, status: result.status, services: result.services, removed: [...removed, ...result.removed], updatedAt: new Date().toISOString() };
        log.info('desired state applied', { source, stack: stackName, generation: result.generation, status: result.status });
      } catch (err) {
        const error = errorBody(err);
        stateBySource[source] = { ...stateBySource[source], status: 'error', error, updatedAt: new Date().toISOString() };
        log.warn('desired state failed', { source, error: error.message });
      }
      publishState();
    }
  }

  // --- the connection -----------------------------------------------------------------
  client.handleMessage = (packet: IPublishPacket, done) => {
    const source = desiredSources.get(packet.topic);
    if (source) {
      done();
      onDesired(source, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
      return;
    }
    if (!commandTopics.has(packet.topic)) { done(); return; }
    // The puback goes out only after the id is on disk: a crash before that means the
    // broker redelivers and we run it; after that, a redelivery is recognised.
    admit(packet).then((admitted) => {
      done();
      if (admitted) void execute(admitted.req, admitted.target);
    }, (err) => {
      log.error('fleet command intake failed', { error: toBerthError(err).message });
      done();
    });
  };

  client.on('connect', (connack) => {
    attempt = 0;
    log.info('connected to the fleet broker', { broker: config.broker, sessionPresent: connack.sessionPresent });
    // Subscribing again each time also makes the broker resend the retained manifests.
    client.subscribe([...commandTopics, ...desiredSources.keys()], { qos: 1 }, (err) => {
      if (err) log.warn('subscribe failed', { error: err.message });
    });
    publishStatus();
    publishState();
    for (const o of buffer.splice(0)) send(o);
  });
  client.on('error', (err) => log.warn('fleet broker error', { error: err.message }));
  client.on('close', () => {
    if (closing || reconnectTimer) return;
    const delay = backoffDelay(attempt++, { baseMs: 500, maxMs: 30_000 });
    log.debug('fleet broker connection closed; reconnecting', { inMs: delay });
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      if (!closing) client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    }, delay);
  });

  return {
    get connected() { return client.connected; },
    async close() {
      closing = true;
      clearTimeout(reconnectTimer);
      clearInterval(statusTimer);
      clearTimeout(statusSoon);
      if (telemetryTimer) clearInterval(telemetryTimer);
      unsubscribeEvents();
      if (client.connected) {
        // A clean stop is no crash: say offline ourselves, as the will would not be sent.
        await new Promise<void>((resolve) => client.publish(topics.status, JSON.stringify({ online: false }), { qos: 1, retain: true }, () => resolve()));
      }
      await Promise.race([reconciling, new Promise((r) => setTimeout(r, 2000))]);
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    },
  };
}
