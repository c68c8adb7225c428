// Container filesystem routes: docker cp (archive GET/HEAD/PUT), docker export and
// docker diff (changes). Path handling and safety live in engine/archive.ts.
import { pipeline } from 'node:stream/promises';
import { BerthError } from '../../util/errors';
import { encodePathStat, extractInto, resolveContainerPath, tarTree } from '../../engine/archive';
import type { Engine } from '../../engine/types';
import type { Router } from '../router';
import type { RequestContext } from '../context';
import { sendEmpty, sendJson } from '../response';
import { engineOf } from './engine-service';

/** Uploads are streamed to disk; this bounds what one docker cp may write (uncompressed). */
export const ARCHIVE_UPLOAD_LIMIT = 4 * 1024 * 1024 * 1024;

const TAR_TYPE = 'application/x-tar';
const STAT_HEADER = 'X-Docker-Container-Path-Stat';

export function registerArchiveRoutes(router: Router): void {
  router.add('GET', '/containers/{id}/archive', getArchive);
  router.add('HEAD', '/containers/{id}/archive', headArchive);
  router.add('PUT', '/containers/{id}/archive', putArchive);
  router.add('GET', '/containers/{id}/export', exportContainer);
  router.add('GET', '/containers/{id}/changes', changes);
}

type FsEngine = Engine & Required<Pick<Engine, 'withRootfs' | 'changes'>>;

function fsEngine(ctx: RequestContext): FsEngine {
  const engine = engineOf(ctx);
  if (!engine.withRootfs || !engine.changes) throw new BerthError('EUNSUPPORTED', 'this engine cannot reach container filesystems');
  return engine as FsEngine;
}

function requiredPath(ctx: RequestContext): string {
  const path = ctx.query.string('path');
  if (!path) throw new BerthError('EINVAL', 'path is required: use ?path=');
  return path;
}

async function headArchive(ctx: RequestContext): Promise<void> {
  const id = ctx.param('id');
  const path = requiredPath(ctx);
  const resolved = await fsEngine(ctx).withRootfs(id, (rootfs) => resolveContainerPath(rootfs, path, id));
  ctx.res.setHeader(STAT_HEADER, encodePathStat(resolved.info));
  ctx.res.setHeader('Content-Type', 'application/json');
  sendEmpty(ctx.res, 200);
}

async function getArchive(ctx: RequestContext): Promise<void> {
  const id = ctx.param('id');
  const path = requiredPath(ctx);
  // The rootfs stays mounted (and a stopped container unstartable) until the tar is sent.
  await fsEngine(ctx).withRootfs(id, async (rootfs) => {
    const resolved = await resolveContainerPath(rootfs, path, id);
    ctx.res.setHeader(STAT_HEADER, encodePathStat(resolved.info));
    await sendTar(ctx, tarTree(resolved.hostPath, resolved.name === '/' ? '.' : resolved.name));
  });
}

async function putArchive(ctx: RequestContext): Promise<void> {
  const id = ctx.param('id');
  const path = requiredPath(ctx);
  const engine = fsEngine(ctx);
  const info = await engine.inspect(id);
  if ((info.HostConfig as { ReadonlyRootfs?: boolean } | undefined)?.ReadonlyRootfs) {
    throw new BerthError('EDENIED', 'container rootfs is marked read-only');
  }
  try {
    await engine.withRootfs(id, (rootfs) => extractInto(rootfs, path, id, ctx.req, {
      noOverwriteDirNonDir: ctx.query.bool('noOverwriteDirNonDir'),
      // Docker gives copied files to the container's root unless asked to keep the archive's owners.
      ...(ctx.query.bool('copyUIDGID') ? {} : { owner: { uid: 0, gid: 0 } }),
      maxBytes: ARCHIVE_UPLOAD_LIMIT,
    }));
  } catch (err) {
    // Drain what the client still sends so it reads our answer instead of a reset.
    ctx.req.resume();
    throw err;
  }
  sendEmpty(ctx.res, 200);
}

async function exportContainer(ctx: RequestContext): Promise<void> {
  await fsEngine(ctx).withRootfs(ctx.param('id'), (rootfs) => sendTar(ctx, tarTree(rootfs, '')));
}

async function changes(ctx: RequestContext): Promise<void> {
  const list = await fsEngine(ctx).changes(ctx.param('id'));
  // [] rather than docker's null for nothing changed: both parse for docker's clients, and LuCI iterates it.
  sendJson(ctx.res, 200, list);
}

/** Streams a tar; a failure after the headers can only cut the connection. */
async function sendTar(ctx: RequestContext, archive: NodeJS.ReadableStream): Promise<void> {
  ctx.res.setHeader('Content-Type', TAR_TYPE);
  ctx.res.writeHead(200);
  try {
    await pipeline(archive, ctx.res);
  } catch (err) {
    if (!ctx.res.destroyed) ctx.res.destroy();
    ctx.log.warn('archive stream failed', { error: (err as Error).message });
  }
}
