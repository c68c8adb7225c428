// Container routes of the Docker Engine API. Handlers check what arrives over HTTP
// (types, required fields, query values), call the engine, and shape the answer the
// way docker's clients read it; container rules live in the engine.
import { BerthError } from '../../util/errors';
import type { CreateRequest, HostConfig, LogsOptions, WaitCondition } from '../../engine/types';
import type { Router } from '../router';
import type { RequestContext } from '../context';
import { JSON_TYPE, JsonStream, sendEmpty, sendJson } from '../response';
import { encodeFrame, parseDetachKeys, relayAttach, streamContentType, takeOverConnection } from '../hijack';
import { engineOf } from './engine-service';

/** Create and update bodies are small documents; anything bigger is a mistake or an attack. */
export const CONFIG_BODY_LIMIT = 1024 * 1024;

export function registerContainerRoutes(router: Router): void {
  router.add('POST', '/containers/create', create);
  router.add('GET', '/containers/json', list);
  router.add('POST', '/containers/prune', prune);
  router.add('GET', '/containers/{id}/json', inspect);
  router.add('POST', '/containers/{id}/start', start);
  router.add('POST', '/containers/{id}/stop', stop);
  router.add('POST', '/containers/{id}/restart', restart);
  router.add('POST', '/containers/{id}/kill', kill);
  router.add('POST', '/containers/{id}/pause', pause);
  router.add('POST', '/containers/{id}/unpause', unpause);
  router.add('POST', '/containers/{id}/rename', rename);
  router.add('POST', '/containers/{id}/wait', wait);
  router.add('POST', '/containers/{id}/attach', attach, { upgrade: true });
  router.add('GET', '/containers/{id}/logs', logs);
  router.add('POST', '/containers/{id}/resize', resize);
  router.add('GET', '/containers/{id}/top', top);
  router.add('GET', '/containers/{id}/stats', stats);
  router.add('POST', '/containers/{id}/update', update);
  router.add('DELETE', '/containers/{id}', remove);
  router.add('GET', '/system/df', systemDf);
}

// ---- body validation ----

type Kind = 'string' | 'bool' | 'int' | 'number' | 'strings' | 'stringOrStrings' | 'stringMap' | 'object' | 'array';

/** Expected JSON types of the fields we read. null is always accepted, as Go's decoder does. */
const CONFIG_FIELDS: Record<string, Kind> = {
  Image: 'string', Cmd: 'stringOrStrings', Entrypoint: 'stringOrStrings', Env: 'strings', WorkingDir: 'string', User: 'string',
  Hostname: 'string', Domainname: 'string', Tty: 'bool', OpenStdin: 'bool', StdinOnce: 'bool', AttachStdin: 'bool',
  AttachStdout: 'bool', AttachStderr: 'bool', Labels: 'stringMap', ExposedPorts: 'object', Volumes: 'object',
  StopSignal: 'string', StopTimeout: 'int', HostConfig: 'object', NetworkingConfig: 'object', Healthcheck: 'object',
};

const HEALTHCHECK_FIELDS: Record<string, Kind> = { Test: 'strings', Interval: 'int', Timeout: 'int', StartPeriod: 'int', StartInterval: 'int', Retries: 'int' };

const HOST_CONFIG_FIELDS: Record<string, Kind> = {
  Binds: 'strings', Mounts: 'array', Tmpfs: 'stringMap', PortBindings: 'object', NetworkMode: 'string', RestartPolicy: 'object',
  AutoRemove: 'bool', Memory: 'int', MemorySwap: 'int', MemoryReservation: 'int', NanoCpus: 'int', CpuShares: 'int', CpuQuota: 'int', CpuPeriod: 'int',
  CpusetCpus: 'string', CpusetMems: 'string', PidsLimit: 'int', BlkioWeight: 'int', Privileged: 'bool', CapAdd: 'strings',
  CapDrop: 'strings', ReadonlyRootfs: 'bool', Dns: 'strings', DnsSearch: 'strings', DnsOptions: 'strings', ExtraHosts: 'strings', LogConfig: 'object',
  Init: 'bool', GroupAdd: 'strings', Ulimits: 'array',
};

const RESTART_POLICY_FIELDS: Record<string, Kind> = { Name: 'string', MaximumRetryCount: 'int' };

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matches(kind: Kind, value: unknown): boolean {
  switch (kind) {
    case 'string': return typeof value === 'string';
    case 'bool': return typeof value === 'boolean';
    case 'int': return typeof value === 'number' && Number.isInteger(value);
    case 'number': return typeof value === 'number';
    case 'strings': return Array.isArray(value) && value.every((v) => typeof v === 'string');
    case 'stringOrStrings': return typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
    case 'stringMap': return typeof value === 'object' && !Array.isArray(value) && Object.values(value as object).every((v) => typeof v === 'string');
    case 'object': return typeof value === 'object' && !Array.isArray(value);
    case 'array': return Array.isArray(value);
  }
}

const KIND_NAMES: Record<Kind, string> = {
  string: 'a string', bool: 'a boolean', int: 'an integer', number: 'a number', strings: 'an array of strings',
  stringOrStrings: 'a string or an array of strings', stringMap: 'an object of strings', object: 'an object', array: 'an array',
};

/** Throws a 400 naming the first field whose JSON type is wrong; unknown fields pass. */
export function checkFields(value: Record<string, unknown>, fields: Record<string, Kind>, prefix = ''): void {
  for (const [name, kind] of Object.entries(fields)) {
    const v = value[name];
    if (v === undefined || v === null) continue;
    if (!matches(kind, v)) throw new BerthError('EINVAL', `invalid type for field "${prefix}${name}": expected ${KIND_NAMES[kind]}, got ${kindOf(v)}`);
  }
}

function checkHostConfig(hostConfig: Record<string, unknown>, prefix: string): void {
  checkFields(hostConfig, HOST_CONFIG_FIELDS, prefix);
  const policy = hostConfig.RestartPolicy;
  if (policy && typeof policy === 'object') checkFields(policy as Record<string, unknown>, RESTART_POLICY_FIELDS, `${prefix}RestartPolicy.`);
}

async function jsonObject(ctx: RequestContext, what: string): Promise<Record<string, unknown> | undefined> {
  const body = await ctx.json<unknown>(CONFIG_BODY_LIMIT);
  if (body === undefined || body === null) return undefined;
  if (typeof body !== 'object' || Array.isArray(body)) throw new BerthError('EINVAL', `${what} must be a JSON object`);
  return body as Record<string, unknown>;
}

/** Docker's container name rule; a leading "/" is accepted and dropped. */
const VALID_NAME = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

// ---- helpers ----

function id(ctx: RequestContext): string {
  return ctx.param('id');
}

interface DockerFilters { [key: string]: string[] | Record<string, boolean> }

/** Docker sends filters as {"k":["v"]} (new) or {"k":{"v":true}} (old); the engine takes the first form. */
export function normalizeFilters(raw: DockerFilters | undefined): Record<string, string[]> | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const out: Record<string, string[]> = {};
  for (const [key, v] of Object.entries(raw)) {
    if (Array.isArray(v)) out[key] = v.map(String);
    else if (v && typeof v === 'object') out[key] = Object.keys(v).filter((k) => (v as Record<string, boolean>)[k]);
    else throw new BerthError('EINVAL', `invalid filter '${key}'`);
  }
  return out;
}

/** Docker's time parameters: unix seconds (with an optional fraction) or RFC 3339. */
export function parseTimeParam(ctx: RequestContext, name: string): number | undefined {
  const raw = ctx.query.string(name);
  if (raw === undefined || raw.trim() === '' || raw === '0') return undefined;
  if (/^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new BerthError('EINVAL', `invalid value for ${name}: ${JSON.stringify(raw)} is not a timestamp`);
  return t / 1000;
}

function stopOptions(ctx: RequestContext): { timeout?: number; signal?: string } {
  const timeout = ctx.query.int('t');
  const signal = ctx.query.string('signal') || undefined;
  return { ...(timeout !== undefined ? { timeout } : {}), ...(signal ? { signal } : {}) };
}

/** Sends 200 with the headers at once, for clients that block until they see them. */
function startStream(ctx: RequestContext, contentType: string): void {
  ctx.res.setHeader('Content-Type', contentType);
  ctx.res.writeHead(200);
  ctx.res.flushHeaders();
}

/** Aborts when the client goes away, so follow-mode loops stop. */
function clientGone(ctx: RequestContext): AbortSignal {
  const controller = new AbortController();
  ctx.res.on('close', () => controller.abort());
  return controller.signal;
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void { clearTimeout(timer); signal.removeEventListener('abort', done); resolve(); }
    signal.addEventListener('abort', done);
  });
}

// ---- handlers ----

async function create(ctx: RequestContext): Promise<void> {
  const body = await jsonObject(ctx, 'container config');
  if (!body) throw new BerthError('EINVAL', 'Config cannot be empty in order to create a container');
  checkFields(body, CONFIG_FIELDS);
  if (body.HostConfig) checkHostConfig(body.HostConfig as Record<string, unknown>, 'HostConfig.');
  if (body.Healthcheck) checkFields(body.Healthcheck as Record<string, unknown>, HEALTHCHECK_FIELDS, 'Healthcheck.');
  if (typeof body.Image !== 'string' || body.Image === '') throw new BerthError('EINVAL', 'field "Image" is required: no image specified');
  const name = ctx.query.string('name') || undefined;
  if (name !== undefined && !VALID_NAME.test(name)) {
    throw new BerthError('EINVAL', `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
  const created = await engineOf(ctx).create(body as CreateRequest, name?.replace(/^\//, ''));
  sendJson(ctx.res, 201, { Id: created.Id, Warnings: created.Warnings ?? [] });
}

async function list(ctx: RequestContext): Promise<void> {
  const limit = ctx.query.int('limit');
  const rows = await engineOf(ctx).list({
    all: ctx.query.bool('all'),
    ...(limit !== undefined && limit > 0 ? { limit } : {}),
    size: ctx.query.bool('size'),
    filters: normalizeFilters(ctx.query.json<DockerFilters>('filters')),
  });
  sendJson(ctx.res, 200, rows);
}

async function inspect(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, await engineOf(ctx).inspect(id(ctx)));
}

async function start(ctx: RequestContext): Promise<void> {
  await engineOf(ctx).start(id(ctx));
  sendEmpty(ctx.res, 204);
}

async function stop(ctx: RequestContext): Promise<void> {
  await engineOf(ctx).stop(id(ctx), stopOptions(ctx));
  sendEmpty(ctx.res, 204);
}

async function restart(ctx: RequestContext): Promise<void> {
  await engineOf(ctx).restart(id(ctx), stopOptions(ctx));
  sendEmpty(ctx.res, 204);
}

async function kill(ctx: RequestContext): Promise<void> {
  await engineOf(ctx).kill(id(ctx), ctx.query.string('signal') || undefined);
  sendEmpty(ctx.res, 204);
}

async function pause(ctx: RequestContext): Promise<void> {
  await engineOf(ctx).pause(id(ctx));
  sendEmpty(ctx.res, 204);
}

async function unpause(ctx: RequestContext): Promise<void> {
  await engineOf(ctx).unpause(id(ctx));
  sendEmpty(ctx.res, 204);
}

async function rename(ctx: RequestContext): Promise<void> {
  const name = ctx.query.string('name');
  if (!name) throw new BerthError('EINVAL', 'name is required: use ?name=');
  if (!VALID_NAME.test(name)) throw new BerthError('EINVAL', `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  await engineOf(ctx).rename(id(ctx), name.replace(/^\//, ''));
  sendEmpty(ctx.res, 204);
}

const WAIT_CONDITIONS = new Set<WaitCondition>(['not-running', 'next-exit', 'removed']);

/**
 * `docker run` sends wait before start and blocks until our headers arrive, so they go
 * out as soon as the engine has registered the wait; the body follows at exit.
 */
async function wait(ctx: RequestContext): Promise<void> {
  const condition = (ctx.query.string('condition') || 'not-running') as WaitCondition;
  if (!WAIT_CONDITIONS.has(condition)) throw new BerthError('EINVAL', `invalid condition: "${condition}"`);
  const waiting = engineOf(ctx).wait(id(ctx), condition);
  // If registration fails the result fails too; that failure is reported through `ready`.
  waiting.result.catch(() => {});
  await waiting.ready;
  startStream(ctx, JSON_TYPE);
  let answer: { StatusCode: number; Error: { Message: string } | null };
  try {
    answer = await waiting.result;
  } catch (err) {
    answer = { StatusCode: -1, Error: { Message: (err as Error).message } };
  }
  if (!ctx.res.destroyed) ctx.res.end(JSON.stringify({ StatusCode: answer.StatusCode, Error: answer.Error ?? null }) + '\n');
}

async function attach(ctx: RequestContext): Promise<void> {
  const engine = engineOf(ctx);
  const q = ctx.query;
  const wantStdin = q.bool('stdin');
  const wantStdout = q.bool('stdout');
  const wantStderr = q.bool('stderr');
  const detachKeys = parseDetachKeys(q.string('detachKeys'));
  const live = q.bool('stream');
  const replayLogs = q.bool('logs');
  if (!live && !replayLogs) throw new BerthError('EINVAL', 'Bad parameters: you must choose at least one stream (stream or logs)');

  const attached = live ? await engine.attach(id(ctx), { stdin: wantStdin }) : undefined;
  const tty = attached ? attached.tty : Boolean(((await engine.inspect(id(ctx))).Config as { Tty?: boolean } | undefined)?.Tty);
  const prelude: Buffer[] = [];
  if (replayLogs && (wantStdout || wantStderr)) {
    for await (const entry of engine.logs(id(ctx), { stdout: wantStdout, stderr: wantStderr, follow: false, timestamps: false })) {
      prelude.push(tty ? entry.line : encodeFrame(entry.stream, entry.line));
    }
  }
  const conn = takeOverConnection(ctx, streamContentType(ctx, tty));
  if (!attached) {
    for (const chunk of prelude) conn.write(chunk);
    conn.end();
    return;
  }
  await relayAttach(attached, conn, {
    framed: !tty,
    stdin: wantStdin,
    stdout: wantStdout,
    stderr: wantStderr,
    detachKeys: tty ? detachKeys : undefined,
    prelude,
  });
}

async function logs(ctx: RequestContext): Promise<void> {
  const engine = engineOf(ctx);
  const q = ctx.query;
  const opts: LogsOptions = {
    stdout: q.bool('stdout'),
    stderr: q.bool('stderr'),
    follow: q.bool('follow'),
    timestamps: q.bool('timestamps'),
  };
  if (!opts.stdout && !opts.stderr) throw new BerthError('EINVAL', 'Bad parameters: you must choose at least one stream');
  const since = parseTimeParam(ctx, 'since');
  const until = parseTimeParam(ctx, 'until');
  if (since !== undefined) opts.since = since;
  if (until !== undefined) opts.until = until;
  const tail = q.string('tail');
  if (tail !== undefined && tail !== '' && tail !== 'all') {
    const n = Number(tail);
    if (!Number.isInteger(n)) throw new BerthError('EINVAL', `invalid value for tail: ${JSON.stringify(tail)}`);
    if (n >= 0) opts.tail = n;
  }
  // Config.Tty decides framing; inspecting first also turns a missing container into a clean 404.
  const info = await engine.inspect(id(ctx));
  const tty = Boolean((info.Config as { Tty?: boolean } | undefined)?.Tty);
  const signal = clientGone(ctx);
  const entries = engine.logs(id(ctx), opts, signal)[Symbol.asyncIterator]();
  // Pull the first entry before the headers so errors from the engine are still plain HTTP errors.
  let next = opts.follow ? undefined : await entries.next();
  startStream(ctx, streamContentType(ctx, tty));
  try {
    for (;;) {
      next ??= await entries.next();
      if (next.done || signal.aborted) break;
      const entry = next.value;
      next = undefined;
      const payload = opts.timestamps ? Buffer.concat([Buffer.from(`${entry.time} `), entry.line]) : entry.line;
      // One write per line: LuCI reads each HTTP chunk as one frame.
      ctx.res.write(tty ? payload : encodeFrame(entry.stream, payload));
    }
  } catch (err) {
    if (!signal.aborted) ctx.log.warn('logs stream failed', { error: (err as Error).message });
  }
  if (!ctx.res.writableEnded) ctx.res.end();
}

function requiredInt(ctx: RequestContext, name: string): number {
  const v = ctx.query.int(name);
  if (v === undefined || v < 0) throw new BerthError('EINVAL', `${name} is required: a non-negative integer`);
  return v;
}

async function resize(ctx: RequestContext): Promise<void> {
  await engineOf(ctx).resize(id(ctx), requiredInt(ctx, 'h'), requiredInt(ctx, 'w'));
  sendEmpty(ctx.res, 200);
}

async function top(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, await engineOf(ctx).top(id(ctx), ctx.query.string('ps_args') || undefined));
}

type StatsSample = Record<string, unknown> & { cpu_stats?: { cpu_usage?: { total_usage?: number } }; precpu_stats?: { cpu_usage?: { total_usage?: number } } };

function hasPreviousCpu(sample: StatsSample): boolean {
  return (sample.precpu_stats?.cpu_usage?.total_usage ?? 0) > 0;
}

/**
 * stream=false answers one JSON document; otherwise one per second, each its own
 * chunk. Without one-shot docker takes two samples a second apart so CPU % has a
 * baseline; we do the same when the engine did not fill precpu_stats itself.
 */
async function stats(ctx: RequestContext): Promise<void> {
  const engine = engineOf(ctx);
  const stream = ctx.query.bool('stream', true);
  const oneShot = ctx.query.bool('one-shot');
  let sample = await engine.stats(id(ctx)) as StatsSample;
  const signal = clientGone(ctx);
  if (!stream) {
    if (!oneShot && !hasPreviousCpu(sample)) {
      await delay(1000, signal);
      const later = await engine.stats(id(ctx)) as StatsSample;
      sample = hasPreviousCpu(later) ? later : { ...later, precpu_stats: sample.cpu_stats };
    }
    sendJson(ctx.res, 200, sample);
    return;
  }
  const out = new JsonStream(ctx.res);
  let previous: StatsSample | undefined;
  while (!signal.aborted) {
    const shaped = previous && !hasPreviousCpu(sample) ? { ...sample, precpu_stats: previous.cpu_stats } : sample;
    if (!out.write(shaped)) break;
    previous = sample;
    await delay(1000, signal);
    if (signal.aborted) break;
    try {
      sample = await engine.stats(id(ctx)) as StatsSample;
    } catch {
      // The container went away: docker ends the stream.
      break;
    }
  }
  out.end();
}

const UPDATE_FIELDS: Record<string, Kind> = { ...HOST_CONFIG_FIELDS, RestartPolicy: 'object' };

async function update(ctx: RequestContext): Promise<void> {
  const body = (await jsonObject(ctx, 'update config')) ?? {};
  checkFields(body, UPDATE_FIELDS);
  if (body.RestartPolicy && typeof body.RestartPolicy === 'object') checkFields(body.RestartPolicy as Record<string, unknown>, RESTART_POLICY_FIELDS, 'RestartPolicy.');
  const result = await engineOf(ctx).update(id(ctx), body as HostConfig);
  sendJson(ctx.res, 200, { Warnings: result.Warnings ?? [] });
}

async function remove(ctx: RequestContext): Promise<void> {
  await engineOf(ctx).remove(id(ctx), { force: ctx.query.bool('force'), volumes: ctx.query.bool('v') });
  sendEmpty(ctx.res, 204);
}

async function prune(ctx: RequestContext): Promise<void> {
  const result = await engineOf(ctx).prune();
  sendJson(ctx.res, 200, { ContainersDeleted: result.ContainersDeleted ?? null, SpaceReclaimed: result.SpaceReclaimed ?? 0 });
}

interface ImageRow { Id: string; Size?: number; SharedSize?: number; Containers?: number; [k: string]: unknown }

async function systemDf(ctx: RequestContext): Promise<void> {
  const engine = engineOf(ctx);
  const containers = await engine.list({ all: true, size: true });
  const images = ((await ctx.services.imageService?.list({ all: true })) ?? []) as ImageRow[];
  const usedBy = new Map<string, number>();
  for (const c of containers) {
    const imageId = String(c.ImageID ?? '');
    usedBy.set(imageId, (usedBy.get(imageId) ?? 0) + 1);
  }
  const seen = new Set<string>();
  let layersSize = 0;
  const imageRows = images.map((img) => {
    // Images share no layers in this count: each image id once.
    if (!seen.has(img.Id)) { seen.add(img.Id); layersSize += img.Size ?? 0; }
    return { ...img, SharedSize: img.SharedSize !== undefined && img.SharedSize >= 0 ? img.SharedSize : 0, Containers: usedBy.get(img.Id) ?? 0 };
  });
  sendJson(ctx.res, 200, { LayersSize: layersSize, Images: imageRows, Containers: containers, Volumes: [], BuildCache: [] });
}
