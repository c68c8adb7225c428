// One function per fleet action: read and check args, call the engine or image service,
// shape a compact result (routers send these over metered links, so no full inspect
// documents where a summary does).
import { arch, loadavg, totalmem, freemem, uptime as hostUptime } from 'node:os';
import { BerthError } from '../util/errors';
import { arg, type Action } from './protocol';
import type { FleetEngine, FleetImages } from './backend';
import { parseManifest, toCreateRequest, type ServiceSpec } from './manifest';
import { reconcileStack, type StackBackend } from './reconciler';

export interface ActionContext {
  engine: FleetEngine;
  images: FleetImages;
  stacks: StackBackend;
  deviceId: string;
  groups: string[];
  version: string;
  startedAt: Date;
  maxPayload: number;
  /** Sends a progress message ahead of the final reply. */
  progress(msg: unknown): void;
}

type Handler = (args: Record<string, unknown>, ctx: ActionContext) => Promise<unknown>;

/** Output kept from exec and logs: replies must stay well under the broker's limits. */
const MAX_OUTPUT = 64 * 1024;

function summary(c: Record<string, unknown>): Record<string, unknown> {
  return {
    id: c.Id, name: ((c.Names as string[] | undefined)?.[0] ?? '').replace(/^\//, ''), image: c.Image,
    state: c.State, status: c.Status, labels: c.Labels ?? {},
    ...(c.Health ? { health: (c.Health as { Status: string }).Status } : {}),
  };
}

/** `run`/`create` args are one manifest service plus an optional name. */
function createFromArgs(args: Record<string, unknown>): { name?: string; req: ReturnType<typeof toCreateRequest> } {
  const { name, pull: _pull, ...service } = args;
  if (name !== undefined && (typeof name !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name))) throw new BerthError('EINVAL', 'args.name must be a container name');
  const spec: ServiceSpec = parseManifest({ services: { run: service } }).services.run!;
  const req = toCreateRequest('', '', spec);
  // Ad-hoc containers belong to no stack: drop the ownership labels the reconciler reads.
  const labels = { ...req.Labels };
  delete labels['io.berth.stack']; delete labels['io.berth.service']; delete labels['io.berth.hash'];
  return { name: name as string | undefined, req: { ...req, Labels: labels } };
}

async function ensureImage(ctx: ActionContext, image: string, policy: unknown): Promise<void> {
  if (policy !== undefined && !['missing', 'always', 'never'].includes(policy as string)) throw new BerthError('EINVAL', 'args.pull must be missing, always or never');
  if (policy === 'never') return;
  if (policy !== 'always') {
    try { await ctx.images.resolve(image); return; } catch { /* missing: pull */ }
  }
  await ctx.images.pull(image, {}, (m) => ctx.progress(m));
}

async function createContainer(args: Record<string, unknown>, ctx: ActionContext): Promise<{ id: string; name?: string; warnings: string[] }> {
  const { name, req } = createFromArgs(args);
  await ensureImage(ctx, req.Image, args.pull);
  const created = await ctx.engine.create(req, name);
  return { id: created.Id, ...(name ? { name } : {}), warnings: created.Warnings };
}

async function collect(stream: NodeJS.ReadableStream | undefined, into: { text: string; truncated: boolean }): Promise<void> {
  if (!stream) return;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    if (into.text.length >= MAX_OUTPUT) { into.truncated = true; continue; }
    into.text += chunk.toString();
    if (into.text.length > MAX_OUTPUT) { into.text = into.text.slice(0, MAX_OUTPUT); into.truncated = true; }
  }
}

const handlers: Record<Action, Handler> = {
  async ping(_args, ctx) {
    return { pong: true, device: ctx.deviceId, time: new Date().toISOString() };
  },
  async info(_args, ctx) {
    return {
      device: ctx.deviceId, groups: ctx.groups, version: ctx.version, arch: arch(),
      uptime: Math.round((Date.now() - ctx.startedAt.getTime()) / 1000), hostUptime: Math.round(hostUptime()),
      containers: ctx.engine.counts(), images: (await ctx.images.list()).length,
      memory: { total: totalmem(), free: freemem() }, load: loadavg(),
    };
  },
  async ps(args, ctx) {
    return (await ctx.engine.list({ all: arg.optBool(args, 'all') ?? false })).map(summary);
  },
  async images(_args, ctx) {
    return (await ctx.images.list()).map((i) => ({ id: i.Id, tags: i.RepoTags, size: i.Size, created: i.Created }));
  },
  async pull(args, ctx) {
    const image = arg.string(args, 'image');
    await ctx.images.pull(image, { platform: arg.optString(args, 'platform') }, (m) => ctx.progress(m));
    const inspected = await ctx.images.inspect(image);
    return { image, id: inspected.Id };
  },
  async create(args, ctx) {
    return createContainer(args, ctx);
  },
  async run(args, ctx) {
    const created = await createContainer(args, ctx);
    await ctx.engine.start(created.id);
    return created;
  },
  async start(args, ctx) {
    await ctx.engine.start(arg.string(args, 'container'));
    return { started: true };
  },
  async stop(args, ctx) {
    await ctx.engine.stop(arg.string(args, 'container'), { timeout: arg.optNumber(args, 'timeout', 0, 3600) });
    return { stopped: true };
  },
  async restart(args, ctx) {
    await ctx.engine.restart(arg.string(args, 'container'), { timeout: arg.optNumber(args, 'timeout', 0, 3600) });
    return { restarted: true };
  },
  async rm(args, ctx) {
    await ctx.engine.remove(arg.string(args, 'container'), { force: arg.optBool(args, 'force') ?? false, volumes: arg.optBool(args, 'volumes') ?? false });
    return { removed: true };
  },
  async rmi(args, ctx) {
    return ctx.images.remove(arg.string(args, 'image'), { force: arg.optBool(args, 'force') ?? false });
  },
  async logs(args, ctx) {
    const tail = arg.optNumber(args, 'tail', 0, 10_000) ?? 100;
    const out = { text: '', truncated: false };
    const lines: Array<{ stream: string; line: string }> = [];
    for await (const entry of ctx.engine.logs(arg.string(args, 'container'), { stdout: true, stderr: true, tail, follow: false, timestamps: false })) {
      if (out.text.length > MAX_OUTPUT) { out.truncated = true; continue; }
      const line = entry.line.toString('utf8').replace(/\n$/, '');
      out.text += line;
      lines.push({ stream: entry.stream, line });
    }
    return { lines, truncated: out.truncated };
  },
  async exec(args, ctx) {
    const container = arg.string(args, 'container');
    const cmd = arg.command(args, 'cmd');
    const timeout = (arg.optNumber(args, 'timeout', 1, 3600) ?? 60) * 1000;
    const env = args.env === undefined ? undefined : parseManifest({ services: { x: { image: 'x', env: args.env } } }).services.x!.env;
    const { Id } = await ctx.engine.execCreate(container, {
      Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false,
      ...(env ? { Env: Object.entries(env).map(([k, v]) => `${k}=${v}`) } : {}),
      ...(arg.optString(args, 'user') ? { User: arg.optString(args, 'user') } : {}),
      ...(arg.optString(args, 'workdir') ? { WorkingDir: arg.optString(args, 'workdir') } : {}),
    });
    const attached = await ctx.engine.execStart(Id, { detach: false, stdin: false });
    const stdout = { text: '', truncated: false };
    const stderr = { text: '', truncated: false };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.all([collect(attached?.stdout, stdout), collect(attached?.stderr, stderr), attached?.closed]).then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), timeout); }),
    ]);
    clearTimeout(timer);
    attached?.close();
    if (timedOut) throw new BerthError('EINVAL', `exec did not finish within ${timeout / 1000} s (output so far: ${stdout.text.slice(0, 200)})`);
    // The exit code is recorded a moment after the stream closes.
    let info = await ctx.engine.execInspect(Id);
    for (let i = 0; i < 100 && info.Running === true; i++) {
      await new Promise((r) => setTimeout(r, 20));
      info = await ctx.engine.execInspect(Id);
    }
    return { exitCode: info.ExitCode, stdout: stdout.text, stderr: stderr.text, truncated: stdout.truncated || stderr.truncated };
  },
  async inspect(args, ctx) {
    if (args.image !== undefined) return ctx.images.inspect(arg.string(args, 'image'));
    return ctx.engine.inspect(arg.string(args, 'container'));
  },
  async stats(args, ctx) {
    const one = arg.optString(args, 'container');
    const ids = one ? [one] : (await ctx.engine.list({})).map((c) => c.Id as string);
    const out: Record<string, unknown> = {};
    for (const id of ids) out[id] = condensedStats(await ctx.engine.stats(id));
    return out;
  },
  async prune(args, ctx) {
    const containers = await ctx.engine.prune();
    const images = arg.optBool(args, 'images') === false ? null : await ctx.images.prune({ all: arg.optBool(args, 'all') ?? false });
    return { containers, images };
  },
  async deploy(args, ctx) {
    const manifest = parseManifest(args.manifest);
    const stack = arg.optString(args, 'name') ?? manifest.name;
    if (!stack || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(stack)) throw new BerthError('EINVAL', 'deploy needs args.name or a manifest name (lower-case letters, digits, "_", "-")');
    return reconcileStack(ctx.stacks, stack, manifest, { progress: (m) => ctx.progress(m), labels: { 'io.berth.source': 'fleet:deploy' } });
  },
};

/** The figures telemetry and `stats` need from Docker's large stats document. */
export function condensedStats(s: Record<string, any>): Record<string, unknown> {
  const cpu = s.cpu_stats ?? {};
  const pre = s.precpu_stats ?? {};
  const cpuDelta = (cpu.cpu_usage?.total_usage ?? 0) - (pre.cpu_usage?.total_usage ?? 0);
  const sysDelta = (cpu.system_cpu_usage ?? 0) - (pre.system_cpu_usage ?? 0);
  const cpus = cpu.online_cpus ?? 1;
  const nets = Object.values(s.networks ?? {}) as Array<{ rx_bytes?: number; tx_bytes?: number }>;
  return {
    cpuPercent: sysDelta > 0 ? Math.round((cpuDelta / sysDelta) * cpus * 10000) / 100 : 0,
    cpuTotalNs: cpu.cpu_usage?.total_usage ?? 0,
    memory: s.memory_stats?.usage ?? 0,
    memoryLimit: s.memory_stats?.limit ?? 0,
    pids: s.pids_stats?.current ?? 0,
    net: { rx: nets.reduce((a, n) => a + (n.rx_bytes ?? 0), 0), tx: nets.reduce((a, n) => a + (n.tx_bytes ?? 0), 0) },
  };
}

export function runAction(action: Action, args: Record<string, unknown>, ctx: ActionContext): Promise<unknown> {
  return handlers[action](args, ctx);
}
