// bench/fleet coordinator: one mosquitto on 127.0.0.1, WORKERS child processes each
// running a slice of DEVICES real berth fleet agents (device-worker.ts), and an operator
// using berth's operator code (src/fleet/operator.ts). Scenarios:
//   group:  every device online (retained status seen by the operator), then one command
//           per action to the group holding all devices; time from the operator's send
//           to each device's final reply (p50, p99, max); broker and worker memory.
//   storm:  every device's link is cut (sockets reset, wills fire), a group `ps` (QoS 1)
//           is sent while all are offline, the links come back, the devices reconnect
//           with berth's backoff and jitter; every device must run it exactly once.
// Prints one JSON document on stdout; run.sh turns it into bench/results/fleet.md.
// Every wait is bounded; the broker and workers are killed in `finally` and on signals.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, connect } from 'node:net';
import type { MqttClient } from 'mqtt';
import { connectOperator, closeOperator, sendCommand } from '../../src/fleet/operator';
import type { FleetReply } from '../../src/fleet/protocol';
import type { ToWorker, WorkerReport, WorkerStart } from './device-worker';

const scenario = process.env.SCENARIO ?? 'group';
const DEVICES = Number(process.env.DEVICES ?? 1000);
const WORKERS = Number(process.env.WORKERS ?? 4);
const RAMP = Number(process.env.RAMP ?? 500); // devices started per second per worker
const WORK = process.env.WORK_DIR!;
const ONLINE_TIMEOUT_MS = Number(process.env.ONLINE_TIMEOUT_MS ?? 180_000);
const REPLY_TIMEOUT_MS = Number(process.env.REPLY_TIMEOUT_MS ?? 120_000);
const OUTAGE_MS = Number(process.env.OUTAGE_MS ?? 5000);
const MAX_LIFE_MS = Number(process.env.MAX_LIFE_MS ?? 15 * 60_000);
const PREFIX = 'berth';
const GROUP = 'bench-all';
if (!WORK) throw new Error('WORK_DIR must be set (run.sh does)');

const children: ChildProcess[] = [];
let broker: ChildProcess | undefined;
const pidFile = join(WORK, 'pids');
const notePids = (): void => writeFileSync(pidFile, [broker?.pid, ...children.map((c) => c.pid)].filter(Boolean).join('\n') + '\n');
const log = (msg: string): void => { process.stderr.write(`[fleet-bench ${new Date().toISOString().slice(11, 23)}] ${msg}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function procKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

async function until(what: string, timeoutMs: number, fn: () => boolean | Promise<boolean>, everyMs = 100): Promise<number> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
  return Date.now() - t0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => { const p = (srv.address() as { port: number }).port; srv.close(() => resolve(p)); });
    srv.on('error', reject);
  });
}

async function startBroker(): Promise<{ port: number; conf: string }> {
  const port = await freePort();
  const dir = join(WORK, 'mosquitto');
  mkdirSync(dir, { recursive: true });
  const conf = [
    'user root',
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // No connection cap (the default is none as well; said for the reader), limited by the fd limit run.sh sets.
    'max_connections -1',
    // Queued QoS 1 messages per client beyond the in-flight window. The default, 1000, would
    // drop replies on their way to an operator when 10,000 devices answer at once.
    `max_queued_messages ${process.env.MAX_QUEUED ?? 100000}`,
    // Sessions and retained messages live in memory only: a bench broker never restarts, and
    // writing mosquitto.db (default autosave every 1800 s) would only add noise.
    'persistence false',
    'log_dest stderr', 'log_type error', 'log_type warning',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'mosquitto.conf'), conf);
  broker = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  broker.stderr!.on('data', (d: Buffer) => { if (logs.length < 100_000) logs += d; });
  notePids();
  await until('mosquitto to accept connections', 10_000, () => new Promise<boolean>((resolve) => {
    if (broker!.exitCode !== null) throw new Error(`mosquitto exited: ${logs}`);
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  }), 50);
  return { port, conf };
}

interface Worker { proc: ChildProcess; devices: string[]; reports: WorkerReport[] }

function waitFor<T>(w: Worker, type: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { w.proc.off('message', on); reject(new Error(`worker ${w.proc.pid}: no "${type}" within ${timeoutMs} ms`)); }, timeoutMs);
    const on = (msg: any): void => {
      if (msg?.type === 'failed') { clearTimeout(timer); w.proc.off('message', on); reject(new Error(`worker ${w.proc.pid} failed: ${msg.error}`)); }
      if (msg?.type !== type) return;
      clearTimeout(timer);
      w.proc.off('message', on);
      resolve(msg as T);
    };
    w.proc.on('message', on);
  });
}

async function tell<T>(workers: Worker[], msg: ToWorker, answer: string, timeoutMs = 30_000): Promise<T[]> {
  return Promise.all(workers.map((w) => { const p = waitFor<T>(w, answer, timeoutMs); w.proc.send(msg); return p; }));
}

async function startWorkers(brokerPort: number, link: boolean, runTag: string): Promise<Worker[]> {
  const workers: Worker[] = [];
  const per = Math.ceil(DEVICES / WORKERS);
  for (let i = 0; i < WORKERS; i++) {
    const devices = Array.from({ length: Math.min(per, DEVICES - i * per) }, (_, j) => `${runTag}-${String(i * per + j).padStart(5, '0')}`);
    if (!devices.length) break;
    const proc = fork(join(__dirname, 'device-worker.ts'), [], {
      execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, UV_THREADPOOL_SIZE: '4' },
    });
    children.push(proc);
    notePids();
    const w: Worker = { proc, devices, reports: [] };
    await waitFor(w, 'ready', 30_000);
    workers.push(w);
  }
  const dataDir = join(WORK, 'devices');
  await Promise.all(workers.map((w) => {
    const cfg: WorkerStart = { type: 'start', brokerPort, devices: w.devices, groups: [GROUP], dataDir, rampPerSec: RAMP, link, maxLifeMs: MAX_LIFE_MS };
    const p = waitFor(w, 'started', ONLINE_TIMEOUT_MS);
    w.proc.send(cfg);
    return p;
  }));
  return workers;
}

/** Tracks every device's retained status as the operator sees it. */
function watchStatus(op: MqttClient): { online: Set<string>; offline: Set<string>; stop(): void } {
  const online = new Set<string>();
  const offline = new Set<string>();
  const re = new RegExp(`^${PREFIX}/dev/([^/]+)/status$`);
  const on = (topic: string, payload: Buffer): void => {
    const m = re.exec(topic);
    if (!m || !payload.length) return;
    let doc: { online?: boolean };
    try { doc = JSON.parse(payload.toString()); } catch { return; }
    if (doc.online) { online.add(m[1]!); offline.delete(m[1]!); } else { offline.add(m[1]!); online.delete(m[1]!); }
  };
  op.on('message', on);
  void op.subscribeAsync(`${PREFIX}/dev/+/status`, { qos: 1 });
  return { online, offline, stop: () => { op.off('message', on); } };
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface CommandResult { action: string; devices: number; replied: number; ok: number; p50: number; p99: number; max: number; min: number; extraReplies: number; errors: Record<string, number> }

/** One group command; latency = operator send -> that device's final reply at the operator. `arrivals` are performance.now() stamps. */
async function groupCommand(op: MqttClient, action: string, expected: number, timeoutMs: number, requestId: string): Promise<{ result: CommandResult; arrivals: Map<string, number> }> {
  const arrivals = new Map<string, number>();
  const errors: Record<string, number> = {};
  let finalsSeen = 0;
  const t0 = performance.now();
  const finals = await sendCommand(op, PREFIX, { kind: 'grp', name: GROUP }, action, {}, {
    timeoutMs, expect: expected, requestId,
    onReply: (r: FleetReply) => {
      if (!('ok' in r)) return;
      finalsSeen++;
      if (!arrivals.has(r.device)) arrivals.set(r.device, performance.now());
      if (!r.ok) errors[r.error.code] = (errors[r.error.code] ?? 0) + 1;
    },
  });
  const lat = [...arrivals.values()].map((t) => t - t0).sort((a, b) => a - b);
  const ok = [...finals.values()].filter((r) => 'ok' in r && r.ok).length;
  return {
    arrivals,
    result: { action, devices: expected, replied: finals.size, ok, min: lat[0]!, p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat.at(-1)!, extraReplies: finalsSeen - arrivals.size, errors },
  };
}

function memory(workers: Worker[], reports: WorkerReport[]): Record<string, unknown> {
  const pid = broker!.pid!;
  return {
    brokerRssKb: procKb(pid, 'VmRSS'), brokerHwmKb: procKb(pid, 'VmHWM'),
    workers: reports.map((r, i) => ({ pid: workers[i]!.proc.pid, devices: workers[i]!.devices.length, baselineRssKb: r.baselineRssKb, rssKb: r.vmRssKb, hwmKb: r.vmHwmKb })),
    operatorHwmKb: procKb(process.pid, 'VmHWM'),
  };
}

function mergeLogLines(reports: WorkerReport[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.logLines)) out[k] = (out[k] ?? 0) + v;
  return out;
}

async function main(): Promise<void> {
  const runTag = `b${Date.now().toString(36)}`;
  const out: Record<string, unknown> = { scenario, devices: DEVICES, workers: WORKERS, rampPerSecPerWorker: RAMP };
  const { port, conf } = await startBroker();
  out.brokerConf = conf;
  log(`mosquitto pid ${broker!.pid} on 127.0.0.1:${port}; starting ${DEVICES} devices in ${WORKERS} workers`);
  const op = await connectOperator({ broker: `mqtt://127.0.0.1:${port}`, prefix: PREFIX });
  const status = watchStatus(op);
  const tStart = Date.now();
  const workers = await startWorkers(port, scenario === 'storm', runTag);
  log(`all agents started in ${Date.now() - tStart} ms; waiting for ${DEVICES} online statuses`);
  await until(`${DEVICES} devices online`, ONLINE_TIMEOUT_MS, () => status.online.size >= DEVICES, 200);
  out.allOnlineMs = Date.now() - tStart;
  log(`all ${DEVICES} online after ${out.allOnlineMs} ms`);
  await sleep(2000); // let the connect burst settle before timing

  if (scenario === 'group') {
    const rounds: CommandResult[] = [];
    for (const action of ['ping', 'info', 'ps', 'ps', 'ps']) {
      const { result } = await groupCommand(op, action, DEVICES, REPLY_TIMEOUT_MS, `${runTag}-${action}-${rounds.length}`);
      log(`${action}: ${result.replied}/${DEVICES} replied; p50 ${result.p50.toFixed(0)} ms, p99 ${result.p99.toFixed(0)} ms, max ${result.max.toFixed(0)} ms`);
      rounds.push(result);
      await sleep(1500);
    }
    out.rounds = rounds;
    const reports = await tell<WorkerReport>(workers, { type: 'report' }, 'report');
    const psCalls = reports.flatMap((r) => Object.values(r.psCalls));
    out.psExecutionsPerDevice = { devices: psCalls.length, min: Math.min(...psCalls), max: Math.max(...psCalls), expected: 3 };
    out.memory = memory(workers, reports);
    out.logLines = mergeLogLines(reports);
  } else {
    await tell(workers, { type: 'resetCounts' }, 'countsReset');
    const cutAt = Date.now();
    await tell(workers, { type: 'cut' }, 'cut');
    // The broker must have noticed: every last will published before the command goes out.
    await until(`${DEVICES} last wills`, 30_000, () => status.offline.size >= DEVICES, 20);
    out.allOfflineMs = Date.now() - cutAt;
    log(`links cut; all ${DEVICES} offline (last wills) after ${out.allOfflineMs} ms; sending a group ps while they are offline`);
    const id = `${runTag}-storm`;
    const pending = groupCommand(op, 'ps', DEVICES, OUTAGE_MS + REPLY_TIMEOUT_MS, id);
    const sentAt = Date.now();
    await sleep(Math.max(0, OUTAGE_MS - (sentAt - cutAt)));
    const restoredAt = Date.now();
    const restoredPerf = performance.now();
    await tell(workers, { type: 'restore' }, 'restored');
    log(`links restored ${restoredAt - cutAt} ms after the cut; waiting for replies`);
    const { result, arrivals } = await pending;
    // Measured from the restore, which is when the devices could first get the command.
    const sinceRestore = [...arrivals.values()].map((t) => t - restoredPerf).sort((a, b) => a - b);
    const allOnlineAgainMs = await until(`${DEVICES} online again`, 60_000, () => status.online.size >= DEVICES, 100).then(() => Date.now() - restoredAt).catch(() => -1);
    await sleep(5000); // any duplicate delivery would be executed (or refused) in this window
    const reports = await tell<WorkerReport>(workers, { type: 'report' }, 'report');
    const counts = new Map<string, number>();
    for (const r of reports) for (const [d, n] of Object.entries(r.psCalls)) counts.set(d, n);
    const all = workers.flatMap((w) => w.devices);
    const lost = all.filter((d) => !counts.get(d));
    const duplicated = all.filter((d) => (counts.get(d) ?? 0) > 1);
    out.storm = {
      outageMs: restoredAt - cutAt, commandSentAfterCutMs: sentAt - cutAt, result,
      sinceRestoreMs: { p50: percentile(sinceRestore, 50), p99: percentile(sinceRestore, 99), max: sinceRestore.at(-1) },
      allOnlineAgainAfterRestoreMs: allOnlineAgainMs,
      executions: { devices: all.length, executedOnce: all.length - lost.length - duplicated.length, lost: lost.length, duplicated: duplicated.length, lostSample: lost.slice(0, 5), duplicatedSample: duplicated.slice(0, 5) },
      link: reports.map((r) => r.link),
    };
    out.memory = memory(workers, reports);
    out.logLines = mergeLogLines(reports);
    log(`storm: ${result.replied}/${DEVICES} replied; executed once ${all.length - lost.length - duplicated.length}, lost ${lost.length}, duplicated ${duplicated.length}`);
  }
  status.stop();
  await closeOperator(op);
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

async function cleanup(): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.connected) c.send({ type: 'stop' });
  const deadline = Date.now() + 8000;
  while (children.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await sleep(100);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (broker && broker.exitCode === null) {
    broker.kill('SIGTERM');
    await Promise.race([new Promise((r) => broker!.once('exit', r)), sleep(5000)]);
    if (broker.exitCode === null && broker.signalCode === null) broker.kill('SIGKILL');
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { void cleanup().finally(() => process.exit(130)); });
const lifeTimer = setTimeout(() => { log('life bound reached'); void cleanup().finally(() => process.exit(3)); }, MAX_LIFE_MS);
lifeTimer.unref();
main().then(() => cleanup(), async (err) => { log(`FAILED: ${err?.stack ?? err}`); await cleanup(); process.exitCode = 1; });
