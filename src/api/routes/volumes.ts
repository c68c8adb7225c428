// Volume routes of the Docker Engine API: list, create, inspect, remove, prune. Volumes
// are the engine's named volumes: <dataRoot>/volumes/<name>/_data with a volume.json beside
// it (src/engine/mounts.ts makes them for `-v name:/path` and image VOLUMEs). Only the
// "local" driver exists. Which containers use a volume comes from the engine's container
// list (each entry's Mounts carry the volume Name).
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BerthError } from '../../util/errors';
import { writeJsonAtomic } from '../../util/atomic';
import { volumeDataPath } from '../../engine/mounts';
import type { Router } from '../router';
import type { RequestContext } from '../context';
import { sendEmpty, sendJson } from '../response';
import { normalizeFilters } from './containers';

const BODY_LIMIT = 64 * 1024;
/** The engine's rule for volume names (mounts.ts); it also keeps names to one path component. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** Docker 23+ marks anonymous volumes with this label; prune removes only those unless all=true. */
const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

export function registerVolumeRoutes(router: Router): void {
  router.add('GET', '/volumes', list);
  router.add('POST', '/volumes/create', create);
  router.add('POST', '/volumes/prune', prune);
  router.add('GET', '/volumes/{name}', inspect);
  router.add('DELETE', '/volumes/{name}', remove);
}

/** What volume.json holds (the engine writes Name, Driver, CreatedAt, Anonymous, Labels). */
interface VolumeFile {
  Name?: string;
  Driver?: string;
  CreatedAt?: string;
  Anonymous?: boolean;
  Labels?: Record<string, string> | null;
  Options?: Record<string, string> | null;
}

export interface VolumeDocument {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: 'local';
}

function volumesRoot(ctx: RequestContext): string {
  return join(ctx.services.paths.dataRoot, 'volumes');
}

/** RFC 3339 to the second, as Docker prints a volume's CreatedAt. */
function rfc3339(date: Date): string {
  return (Number.isNaN(date.getTime()) ? new Date(0) : date).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The volume's document, or undefined when there is no such volume. */
async function readVolume(root: string, name: string): Promise<VolumeDocument | undefined> {
  if (!VOLUME_NAME.test(name)) return undefined;
  const dir = join(root, name);
  let meta: VolumeFile = {};
  let created: Date;
  try {
    meta = JSON.parse(await fsp.readFile(join(dir, 'volume.json'), 'utf8')) as VolumeFile;
    created = new Date(meta.CreatedAt ?? 0);
  } catch {
    // A volume the engine is making right now (data dir first, volume.json next), or an
    // older one without the file: the data directory alone makes it a volume.
    try { created = (await fsp.stat(volumeDataPath(root, name))).mtime; } catch { return undefined; }
  }
  const labels = meta.Labels && typeof meta.Labels === 'object' ? { ...meta.Labels } : null;
  const withAnon = meta.Anonymous ? { ...(labels ?? {}), [ANONYMOUS_LABEL]: '' } : labels;
  return {
    CreatedAt: rfc3339(created),
    Driver: 'local',
    Labels: withAnon,
    Mountpoint: volumeDataPath(root, name),
    Name: name,
    Options: meta.Options && typeof meta.Options === 'object' ? meta.Options : null,
    Scope: 'local',
  };
}

async function allVolumes(root: string): Promise<VolumeDocument[]> {
  let names: string[];
  try { names = await fsp.readdir(root); } catch { return []; }
  const docs = await Promise.all(names.map((n) => readVolume(root, n)));
  return docs.filter((d): d is VolumeDocument => d !== undefined);
}

/** Volume name -> ids of the containers (any state) that mount it. */
async function volumeUsers(ctx: RequestContext): Promise<Map<string, string[]>> {
  const users = new Map<string, string[]>();
  const engine = ctx.services.engine;
  if (!engine) return users;
  if (engine.volumeUsers) return engine.volumeUsers();
  for (const c of await engine.list({ all: true })) {
    for (const m of (c.Mounts ?? []) as Array<{ Type?: string; Name?: string }>) {
      if (m.Type !== 'volume' || !m.Name) continue;
      const ids = users.get(m.Name) ?? [];
      ids.push(String(c.Id));
      users.set(m.Name, ids);
    }
  }
  return users;
}

function noSuchVolume(name: string): BerthError {
  return new BerthError('ENOTFOUND', `get ${name}: no such volume`);
}

/** label=key or label=key=value against a volume's labels. */
function labelMatches(labels: Record<string, string> | null, spec: string): boolean {
  const eq = spec.indexOf('=');
  const key = eq < 0 ? spec : spec.slice(0, eq);
  if (!labels || !Object.hasOwn(labels, key)) return false;
  return eq < 0 || labels[key] === spec.slice(eq + 1);
}

function truthy(value: string, filter: string): boolean {
  if (['true', '1'].includes(value.toLowerCase())) return true;
  if (['false', '0'].includes(value.toLowerCase())) return false;
  throw new BerthError('EINVAL', `invalid filter '${filter}=${value}'`);
}

function checkFilters(filters: Record<string, string[]>, allowed: readonly string[]): void {
  for (const key of Object.keys(filters)) if (!allowed.includes(key)) throw new BerthError('EINVAL', `invalid filter '${key}'`);
}

function matchesLabels(v: VolumeDocument, filters: Record<string, string[]>): boolean {
  return (filters.label ?? []).every((l) => labelMatches(v.Labels, l)) && !(filters['label!'] ?? []).some((l) => labelMatches(v.Labels, l));
}

async function list(ctx: RequestContext): Promise<void> {
  const filters = normalizeFilters(ctx.query.json('filters')) ?? {};
  checkFilters(filters, ['name', 'driver', 'label', 'label!', 'dangling']);
  let volumes = await allVolumes(volumesRoot(ctx));
  if (filters.dangling?.length) {
    const users = await volumeUsers(ctx);
    const wanted = filters.dangling.map((d) => truthy(d, 'dangling'));
    volumes = volumes.filter((v) => wanted.includes(!users.has(v.Name)));
  }
  volumes = volumes.filter((v) =>
    (filters.name ?? []).every((n) => v.Name.includes(n))
    && (filters.driver ?? []).every((d) => d === v.Driver)
    && matchesLabels(v, filters));
  volumes.sort((a, b) => a.Name.localeCompare(b.Name));
  sendJson(ctx.res, 200, { Volumes: volumes, Warnings: [] });
}

function stringMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new BerthError('EINVAL', `field "${field}" must be an object of strings`);
  for (const [k, v] of Object.entries(value)) if (typeof v !== 'string') throw new BerthError('EINVAL', `field "${field}.${k}" must be a string`);
  return value as Record<string, string>;
}

async function create(ctx: RequestContext): Promise<void> {
  const b = await ctx.json<unknown>(BODY_LIMIT) ?? {};
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new BerthError('EINVAL', 'the request body must be a JSON object');
  const body = b as Record<string, unknown>;
  if (body.Name !== undefined && body.Name !== null && typeof body.Name !== 'string') throw new BerthError('EINVAL', 'field "Name" must be a string');
  if (body.Driver !== undefined && body.Driver !== null && typeof body.Driver !== 'string') throw new BerthError('EINVAL', 'field "Driver" must be a string');
  const driver = (body.Driver as string | undefined) || 'local';
  if (driver !== 'local') throw new BerthError('EUNSUPPORTED', `volume driver "${driver}" is not supported (only "local")`);
  const labels = stringMap(body.Labels, 'Labels');
  const options = stringMap(body.DriverOpts, 'DriverOpts');
  if (Object.keys(options).length) throw new BerthError('EUNSUPPORTED', `driver options are not supported yet (got ${Object.keys(options).join(', ')})`);
  const name = (body.Name as string | undefined) || randomBytes(32).toString('hex');
  if (!VOLUME_NAME.test(name)) {
    throw new BerthError('EINVAL', `create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
  }
  const root = volumesRoot(ctx);
  // Docker answers an existing name with that volume, as it is.
  const existing = await readVolume(root, name);
  if (existing) { sendJson(ctx.res, 201, existing); return; }
  await fsp.mkdir(volumeDataPath(root, name), { recursive: true, mode: 0o755 });
  await writeJsonAtomic(join(root, name, 'volume.json'), { Name: name, Driver: 'local', CreatedAt: new Date().toISOString(), Anonymous: false, Labels: labels, Options: options });
  const doc = await readVolume(root, name);
  if (!doc) throw new BerthError('EINTERNAL', `volume ${name} vanished while being created`);
  sendJson(ctx.res, 201, doc);
}

async function inspect(ctx: RequestContext): Promise<void> {
  const name = ctx.param('name');
  const doc = await readVolume(volumesRoot(ctx), name);
  if (!doc) throw noSuchVolume(name);
  sendJson(ctx.res, 200, doc);
}

/** Bytes under `path` (files, not following symlinks), as SpaceReclaimed counts them. */
async function diskUsage(path: string): Promise<number> {
  let total = 0;
  let entries;
  try { entries = await fsp.readdir(path, { withFileTypes: true }); } catch { return 0; }
  for (const e of entries) {
    const p = join(path, e.name);
    if (e.isDirectory()) total += await diskUsage(p);
    else { try { total += (await fsp.lstat(p)).size; } catch { /* gone */ } }
  }
  return total;
}

async function removeVolumeDir(root: string, name: string): Promise<void> {
  if (!VOLUME_NAME.test(name)) throw noSuchVolume(name);
  await fsp.rm(join(root, name), { recursive: true, force: true });
}

/** The engine checks users and removes in one step, so a container create cannot slip in between. */
async function removeUnlessUsed(ctx: RequestContext, name: string, remove: () => Promise<void>): Promise<void> {
  const engine = ctx.services.engine;
  if (engine?.removeVolumeIfUnused) return engine.removeVolumeIfUnused(name, remove);
  const users = (await volumeUsers(ctx)).get(name);
  if (users?.length) throw new BerthError('ECONFLICT', `remove ${name}: volume is in use - [${users.join(', ')}]`);
  await remove();
}

async function remove(ctx: RequestContext): Promise<void> {
  const name = ctx.param('name');
  const root = volumesRoot(ctx);
  // force: a missing volume is not an error (Docker's purge-on-error); a used one still is.
  const force = ctx.query.bool('force');
  if (!(await readVolume(root, name))) {
    if (force) { sendEmpty(ctx.res, 204); return; }
    throw noSuchVolume(name);
  }
  await removeUnlessUsed(ctx, name, () => removeVolumeDir(root, name));
  sendEmpty(ctx.res, 204);
}

async function prune(ctx: RequestContext): Promise<void> {
  const filters = normalizeFilters(ctx.query.json('filters')) ?? {};
  checkFilters(filters, ['label', 'label!', 'all']);
  // Since API 1.42 prune takes anonymous volumes only, unless all=true.
  const all = filters.all?.length ? filters.all.some((v) => truthy(v, 'all')) : !ctx.apiAtLeast('1.42');
  const root = volumesRoot(ctx);
  const users = await volumeUsers(ctx);
  const deleted: string[] = [];
  let reclaimed = 0;
  for (const v of await allVolumes(root)) {
    if (users.has(v.Name) || !matchesLabels(v, filters)) continue;
    if (!all && !(v.Labels && Object.hasOwn(v.Labels, ANONYMOUS_LABEL))) continue;
    let size = 0;
    try {
      await removeUnlessUsed(ctx, v.Name, async () => { size = await diskUsage(v.Mountpoint); await removeVolumeDir(root, v.Name); });
    } catch (err) {
      // Taken by a container created since the list was made: not unused any more.
      if ((err as BerthError).code === 'ECONFLICT') continue;
      throw err;
    }
    deleted.push(v.Name);
    reclaimed += size;
  }
  sendJson(ctx.res, 200, { VolumesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
}
