// Network routes of the Docker Engine API: list, inspect, create, remove, connect,
// disconnect, prune. The rules (names, subnets, endpoints) live in net-bridge.
import { BerthError } from '../../util/errors';
import type { BridgeNetworking, CreateNetworkRequest } from '../../net-bridge';
import type { Router } from '../router';
import type { RequestContext } from '../context';
import { sendEmpty, sendJson } from '../response';
import { normalizeFilters } from './containers';

const BODY_LIMIT = 64 * 1024;

export function registerNetworkRoutes(router: Router): void {
  router.add('GET', '/networks', list);
  router.add('POST', '/networks/create', create);
  router.add('POST', '/networks/prune', prune);
  router.add('GET', '/networks/{id}', inspect);
  router.add('DELETE', '/networks/{id}', remove);
  router.add('POST', '/networks/{id}/connect', connect);
  router.add('POST', '/networks/{id}/disconnect', disconnect);
}

function networksOf(ctx: RequestContext): BridgeNetworking {
  const networks = ctx.services.networks;
  if (!networks) throw new BerthError('EUNSUPPORTED', 'bridge networking is off (the daemon runs with --bridge none)');
  return networks;
}

async function body(ctx: RequestContext): Promise<Record<string, unknown>> {
  const b = await ctx.json<unknown>(BODY_LIMIT);
  if (b === undefined || b === null) return {};
  if (typeof b !== 'object' || Array.isArray(b)) throw new BerthError('EINVAL', 'the request body must be a JSON object');
  return b as Record<string, unknown>;
}

function containerField(b: Record<string, unknown>): string {
  if (typeof b.Container !== 'string' || !b.Container) throw new BerthError('EINVAL', 'field "Container" is required');
  return b.Container;
}

async function list(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, networksOf(ctx).list(normalizeFilters(ctx.query.json('filters')) ?? {}));
}

async function inspect(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, networksOf(ctx).inspect(ctx.param('id')));
}

async function create(ctx: RequestContext): Promise<void> {
  const b = await body(ctx);
  if (typeof b.Name !== 'string' || !b.Name) throw new BerthError('EINVAL', 'field "Name" is required');
  if (b.EnableIPv6 === true) throw new BerthError('EUNSUPPORTED', 'IPv6 networks are not supported yet');
  sendJson(ctx.res, 201, await networksOf(ctx).create(b as unknown as CreateNetworkRequest));
}

async function remove(ctx: RequestContext): Promise<void> {
  await networksOf(ctx).remove(ctx.param('id'));
  sendEmpty(ctx.res, 204);
}

async function connect(ctx: RequestContext): Promise<void> {
  const b = await body(ctx);
  const endpoint = (b.EndpointConfig ?? {}) as { Aliases?: unknown };
  const aliases = Array.isArray(endpoint.Aliases) ? endpoint.Aliases.filter((a): a is string => typeof a === 'string') : [];
  await networksOf(ctx).connect(ctx.param('id'), containerField(b), { aliases });
  sendEmpty(ctx.res, 200);
}

async function disconnect(ctx: RequestContext): Promise<void> {
  const b = await body(ctx);
  await networksOf(ctx).disconnect(ctx.param('id'), containerField(b), { force: b.Force === true });
  sendEmpty(ctx.res, 200);
}

async function prune(ctx: RequestContext): Promise<void> {
  sendJson(ctx.res, 200, await networksOf(ctx).prune());
}
