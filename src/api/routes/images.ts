// Image routes of the Docker Engine API, plus berth's store check. Handlers only
// translate HTTP to ImageService calls and back; Docker's rules live in the service.
import { BerthError } from '../../util/errors';
import type { ImageService } from '../../image/service';
import type { AuthConfig } from '../../image/registry';
import { normalizeAuthConfig } from '../../image/registry/auth';
import { parseReference } from '../../image/reference';
import type { Router } from '../router';
import type { RequestContext } from '../context';
import { JsonStream, sendEmpty, sendJson } from '../response';

export function registerImageRoutes(router: Router): void {
  router.add('POST', '/images/create', pull);
  router.add('GET', '/images/json', list);
  router.add('GET', '/images/get', saveMany);
  router.add('POST', '/images/load', load);
  router.add('POST', '/images/prune', prune);
  router.add('GET', '/images/{name}/json', inspect);
  router.add('GET', '/images/{name}/history', history);
  router.add('GET', '/images/{name}/get', saveOne);
  router.add('POST', '/images/{name}/tag', tag);
  router.add('DELETE', '/images/{name}', remove);
  router.add('POST', '/auth', login);
  router.add('POST', '/system/check', check);
}

function images(ctx: RequestContext): ImageService {
  const service = ctx.services.imageService;
  if (!service) throw new BerthError('EINTERNAL', 'the image service is not running');
  return service;
}

/** X-Registry-Auth: base64url JSON of docker's AuthConfig; "auth" may hold base64 "user:pass". */
export function decodeRegistryAuth(header: string | string[] | undefined): AuthConfig | undefined {
  const raw = Array.isArray(header) ? header[0] : header;
  if (!raw || raw.trim() === '' || raw === 'null') return undefined;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(Buffer.from(raw.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  } catch {
    throw new BerthError('EINVAL', 'invalid X-Registry-Auth header: not base64-encoded JSON');
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  if (typeof parsed.auth === 'string' && parsed.auth && !parsed.username) {
    const plain = Buffer.from(parsed.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon > 0) { parsed.username = plain.slice(0, colon); parsed.password = plain.slice(colon + 1); }
  }
  return normalizeAuthConfig(parsed);
}

interface DockerFilters { [key: string]: string[] | Record<string, boolean> }

/** Docker sends filters as {"k":["v"]} (new) or {"k":{"v":true}} (old). */
function filterValues(filters: DockerFilters | undefined, key: string): string[] {
  const v = filters?.[key];
  if (!v) return [];
  return Array.isArray(v) ? v : Object.keys(v).filter((k) => (v as Record<string, boolean>)[k]);
}

async function pull(ctx: RequestContext): Promise<void> {
  const from = ctx.query.string('fromImage');
  if (ctx.query.string('fromSrc') !== undefined) throw new BerthError('EUNSUPPORTED', 'importing a root filesystem (fromSrc) is not supported; use docker load');
  if (!from) throw new BerthError('EINVAL', 'fromImage is required');
  const auth = decodeRegistryAuth(ctx.req.headers['x-registry-auth']);
  const service = images(ctx);
  // Validate before streaming so a bad name is a plain 400, as Docker answers it.
  parseReference(from);
  const stream = new JsonStream(ctx.res);
  try {
    await service.pull(from, { tag: ctx.query.string('tag') || undefined, platform: ctx.query.string('platform') || undefined, auth }, (msg) => { stream.write(msg); });
    stream.end();
  } catch (err) {
    stream.error(err);
  }
}

async function list(ctx: RequestContext): Promise<void> {
  const filters = ctx.query.json<DockerFilters>('filters');
  const dangling = filterValues(filters, 'dangling')[0];
  const reference = filterValues(filters, 'reference')[0];
  const rows = await images(ctx).list({ all: ctx.query.bool('all'), danglingOnly: dangling === 'true' || dangling === '1', reference });
  const filtered = dangling === 'false' || dangling === '0' ? rows.filter((r) => r.RepoTags.length > 0) : rows;
  // Before API 1.44 Docker spelled untagged images as <none>:<none> and sent VirtualSize.
  const shaped = filtered.map((r) => {
    const row = { ...r };
    if (!ctx.apiAtLeast('1.44')) { if (row.RepoTags.length === 0) row.RepoTags = ['<none>:<none>']; if (row.RepoDigests.length === 0) row.RepoDigests = ['<none>@<none>']; } else delete row.VirtualSize;
    return row;
  });
  sendJson(ctx.res, 200, shaped);
}

async function inspect(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, await images(ctx).inspect(ctx.param('name')));
}

async function history(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, await images(ctx).history(ctx.param('name')));
}

async function tag(ctx: RequestContext): Promise<void> {
  await images(ctx).tag(ctx.param('name'), ctx.query.string('repo') ?? '', ctx.query.string('tag') || undefined);
  sendEmpty(ctx.res, 201);
}

async function remove(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, await images(ctx).remove(ctx.param('name'), { force: ctx.query.bool('force'), noprune: ctx.query.bool('noprune') }));
}

async function prune(ctx: RequestContext): Promise<void> {
  const filters = ctx.query.json<DockerFilters>('filters');
  const dangling = filterValues(filters, 'dangling')[0];
  sendJson(ctx.res, 200, await images(ctx).prune({ all: dangling === 'false' || dangling === '0' }));
}

async function save(ctx: RequestContext, names: string[]): Promise<void> {
  const service = images(ctx);
  // Resolve every name first so a missing image is a clean 404, not a broken tar.
  const items = await service.planSave(names);
  ctx.res.setHeader('Content-Type', 'application/x-tar');
  ctx.res.writeHead(200);
  try {
    await service.saveItems(items, ctx.res);
  } catch (err) {
    ctx.log.error('save failed after the response started', { error: (err as Error).message });
    ctx.res.destroy(err as Error);
  }
}

async function saveOne(ctx: RequestContext): Promise<void> {
  await save(ctx, [ctx.param('name')]);
}

async function saveMany(ctx: RequestContext): Promise<void> {
  const names = ctx.query.all('names');
  if (names.length === 0) throw new BerthError('EINVAL', 'no image names given: use ?names=');
  await save(ctx, names);
}

async function load(ctx: RequestContext): Promise<void> {
  const service = images(ctx);
  const quiet = ctx.query.bool('quiet');
  const stream = new JsonStream(ctx.res);
  try {
    const loaded = await service.load(ctx.req, (msg) => { if (!quiet || msg.stream) stream.write(msg); });
    if (loaded.length === 0) stream.write({ stream: 'No images were found in the archive\n' });
    stream.end();
  } catch (err) {
    // Drain what the client still sends so it sees our answer instead of a reset.
    ctx.req.resume();
    stream.error(err);
  }
}

async function login(ctx: RequestContext): Promise<void> {
  const body = await ctx.json<Record<string, unknown>>();
  const auth = normalizeAuthConfig(body);
  if (!auth?.username) throw new BerthError('EINVAL', 'username is required');
  const server = typeof body?.serveraddress === 'string' && body.serveraddress ? body.serveraddress : 'docker.io';
  const domain = server.replace(/^https?:\/\//, '').replace(/\/.*$/, '').replace(/^(index\.docker\.io|registry-1\.docker\.io)$/, 'docker.io');
  const registry = ctx.services.registry;
  if (!registry) throw new BerthError('EINTERNAL', 'the registry client is not running');
  await registry.login(domain, auth);
  sendJson(ctx.res, 200, { Status: 'Login Succeeded', IdentityToken: '' });
}

async function check(ctx: RequestContext): Promise<void> {
  const graph = images(ctx).graph;
  const problems = await graph.check({ repair: ctx.query.bool('repair') });
  sendJson(ctx.res, 200, { Problems: problems });
}
