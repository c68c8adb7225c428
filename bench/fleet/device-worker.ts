// One bench worker process: a slice of the simulated fleet. Every device is berth's real
// fleet agent (src/fleet/agent.ts: its mqtt.js client, connection.ts options and backoff,
// protocol.ts parsing and replies, dedupe.ts at-most-once log, actions.ts handlers) with
// a simulated engine that answers from memory. The only thing not real is the engine.
//
// Optionally the devices reach the broker through a "link" in this process: a TCP relay
// that can be cut (every socket reset, both sides, no DISCONNECT packet: the broker
// publishes the last wills) and refuses connections until it is restored.
// Talks to bench.ts over IPC; exits when told to, when the parent goes, or after a bound.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFleetAgent, type FleetAgent } from '../../src/fleet/agent';
import type { FleetEngine, FleetImages } from '../../src/fleet/backend';
import { ACTIONS } from '../../src/fleet/protocol';
import { DEFAULT_MAX_PAYLOAD } from '../../src/fleet/config';
import { setLogSink, setLogLevel } from '../../src/util/log';

export interface WorkerStart {
  type: 'start';
  brokerPort: number;
  devices: string[];
  groups: string[];
  dataDir: string;
  /** Devices started per second by this worker. */
  rampPerSec: number;
  /** Route the devices through a cuttable relay. */
  link: boolean;
  /** Hard bound on this process's life. */
  maxLifeMs: number;
}
export type ToWorker = WorkerStart | { type: 'cut' } | { type: 'restore' } | { type: 'report' } | { type: 'resetCounts' } | { type: 'stop' };
export interface WorkerReport {
  type: 'report';
  started: number;
  connected: number;
  /** engine.list calls (the `ps` action) per device since the last resetCounts. */
  psCalls: Record<string, number>;
  vmRssKb: number;
  vmHwmKb: number;
  baselineRssKb: number;
  logLines: Record<string, number>;
  link?: { accepted: number; refused: number; cut: number };
}

function procStatusKb(field: 'VmRSS' | 'VmHWM', pid: number | 'self' = 'self'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

const send = (msg: unknown): void => { if (process.connected) process.send!(msg); };
const baselineRssKb = procStatusKb('VmRSS');

// Log lines are counted, not printed: thousands of devices saying "reconnecting" is noise.
const logLines: Record<string, number> = {};
setLogLevel('debug');
setLogSink((line) => {
  const m = /^\S+ (\w+)\s+\[[^\]]+\] (.*?)(?: \w+=|$)/.exec(line);
  const key = m ? `${m[1]} ${m[2]}` : line.slice(0, 80);
  logLines[key] = (logLines[key] ?? 0) + 1;
});

/** The simulated engine: no containers, a fixed image list, calls counted per device. */
function simulatedBackend(device: string, psCalls: Map<string, number>): { engine: FleetEngine; images: FleetImages } {
  const containers = [{ Id: `${device}-c1`.padEnd(64, '0'), Names: ['/web'], Image: 'nginx:alpine', State: 'running', Status: 'Up 2 hours', Labels: {} }];
  const refuse = async (): Promise<never> => { throw Object.assign(new Error('not simulated'), { code: 'ENOTSUP' }); };
  const engine = {
    async list(opts: { filters?: Record<string, string[]> }) {
      if (!opts.filters) psCalls.set(device, (psCalls.get(device) ?? 0) + 1);
      return opts.filters ? [] : containers;
    },
    counts: () => ({ total: 1, running: 1, paused: 0, stopped: 0 }),
    onEvent: () => () => {},
    create: refuse, start: refuse, stop: refuse, restart: refuse, remove: refuse, inspect: refuse,
    logs: refuse, stats: refuse, execCreate: refuse, execStart: refuse, execInspect: refuse, prune: refuse,
  } as unknown as FleetEngine;
  const images: FleetImages = {
    pull: refuse, inspect: refuse, remove: refuse, prune: refuse, resolve: refuse,
    list: async () => [{ Id: 'sha256:' + '1'.repeat(64), RepoTags: ['nginx:alpine'], Size: 23_000_000, Created: 0 }],
  };
  return { engine, images };
}

/** A cuttable TCP relay to the broker on 127.0.0.1. */
class Link {
  private server: Server | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  port = 0;
  accepted = 0;
  refused = 0;
  cut = 0;
  private up = true;
  constructor(private readonly brokerPort: number) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      if (!this.up) { this.refused++; client.resetAndDestroy(); return; }
      this.accepted++;
      const upstream = connect(this.brokerPort, '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      const end = (): void => { this.pairs.delete(pair); client.destroy(); upstream.destroy(); };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    server.maxConnections = 20_000;
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(this.port, '127.0.0.1', 4096, () => resolve()); });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Resets every connection on both sides; new ones are reset until restore(). */
  down(): void {
    this.up = false;
    for (const [a, b] of this.pairs) { a.resetAndDestroy(); b.resetAndDestroy(); this.cut++; }
    this.pairs.clear();
  }

  restore(): void { this.up = true; }

  close(): void {
    this.down();
    this.server?.close();
  }
}

const agents: FleetAgent[] = [];
const psCalls = new Map<string, number>();
let link: Link | undefined;
let started = 0;
let stopping = false;

async function start(cfg: WorkerStart): Promise<void> {
  const lifeTimer = setTimeout(() => { process.stderr.write('worker: life bound reached, exiting\n'); process.exit(3); }, cfg.maxLifeMs);
  lifeTimer.unref();
  let port = cfg.brokerPort;
  if (cfg.link) {
    link = new Link(cfg.brokerPort);
    await link.open();
    port = link.port;
  }
  const startedAt = new Date();
  const batch = Math.max(1, Math.ceil(cfg.rampPerSec / 20));
  for (let i = 0; i < cfg.devices.length && !stopping; i += batch) {
    await Promise.all(cfg.devices.slice(i, i + batch).map(async (device) => {
      const { engine, images } = simulatedBackend(device, psCalls);
      const dataRoot = join(cfg.dataDir, device);
      mkdirSync(dataRoot, { recursive: true });
      agents.push(await startFleetAgent({
        config: {
          broker: `mqtt://127.0.0.1:${port}`, deviceId: device, groups: cfg.groups, prefix: 'berth', telemetryInterval: 0,
          allowedActions: [...ACTIONS], commandKeys: [], maxPayload: DEFAULT_MAX_PAYLOAD,
        },
        engine, images, dataRoot, version: '0.1.0-bench', startedAt,
      }));
      started++;
    }));
    await new Promise((r) => setTimeout(r, 50));
  }
}

function report(): WorkerReport {
  return {
    type: 'report', started, connected: agents.filter((a) => a.connected).length,
    psCalls: Object.fromEntries(psCalls), vmRssKb: procStatusKb('VmRSS'), vmHwmKb: procStatusKb('VmHWM'), baselineRssKb,
    logLines: { ...logLines },
    ...(link ? { link: { accepted: link.accepted, refused: link.refused, cut: link.cut } } : {}),
  };
}

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  link?.close();
  // Agents whose link is gone cannot say goodbye; close() is bounded inside, and so is this.
  await Promise.race([Promise.allSettled(agents.map((a) => a.close())), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(0);
}

process.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'start': start(msg).then(() => send({ type: 'started', started }), (err) => { send({ type: 'failed', error: String(err?.stack ?? err) }); process.exit(2); }); break;
    case 'cut': link?.down(); send({ type: 'cut' }); break;
    case 'restore': link?.restore(); send({ type: 'restored' }); break;
    case 'resetCounts': psCalls.clear(); send({ type: 'countsReset' }); break;
    case 'report': send(report()); break;
    case 'stop': void stop(); break;
  }
});
// The parent went away (crash, kill): do not linger.
process.on('disconnect', () => { void stop(); });
send({ type: 'ready' });
