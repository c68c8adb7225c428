// `berth cp` (also `container cp`): files between a container and the host, with docker
// cp's rules for where things land (into an existing directory, or under a new name; a
// trailing "/." copies a directory's contents). "-" reads or writes a tar stream.
import { promises as fsp, type Stats } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { basename, dirname, resolve } from 'node:path';
import { BerthError } from '../../util/errors';
import { extractInto, tarTree, type PathStat } from '../../engine/archive';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { responseError } from '../progress';
import type { CliContext } from '../command';

const FLAGS = {
  archive: { type: 'bool', short: 'a', help: 'Archive mode (copy all uid/gid information)' },
  'follow-link': { type: 'bool', short: 'L', help: 'Always follow symbol link in SRC_PATH' },
  quiet: { type: 'bool', short: 'q', help: 'Suppress progress output during copy' },
} as const satisfies FlagDefs;

export const summary = 'Copy files/folders between a container and the local filesystem';
export const usage = `Usage:  berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
        berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH

${summary}

Use '-' as the source to read a tar archive from stdin
and extract it to a directory destination in a container.
Use '-' as the destination to stream a tar archive of a
container source to stdout.

Aliases:
  berth container cp, berth cp

${formatFlagHelp(FLAGS)}`;

interface Location { container?: string; path: string }

/** docker's rule: a path starting with "/" or "." is local even if it has a colon. */
export function splitLocation(arg: string): Location {
  if (arg.startsWith('/') || arg.startsWith('.')) return { path: arg };
  const colon = arg.indexOf(':');
  if (colon <= 0) return { path: arg };
  return { container: arg.slice(0, colon), path: arg.slice(colon + 1) };
}

/** The docker CLI's own stat header, base64 JSON. */
function decodeStat(res: IncomingMessage): PathStat | undefined {
  const raw = res.headers['x-docker-container-path-stat'];
  if (typeof raw !== 'string' || !raw) return undefined;
  try { return JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as PathStat; } catch { return undefined; }
}

const GO_MODE_DIR = 2 ** 31;
const isDirMode = (mode: number): boolean => mode >= GO_MODE_DIR;

async function statIfExists(path: string): Promise<Stats | undefined> {
  try { return await fsp.stat(path); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Copies the response to stdout without ending it, failing if the daemon stops early. */
function copyToStdout(res: IncomingMessage, out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    res.on('error', reject);
    res.on('end', () => (res.complete ? resolvePromise() : reject(new Error('connection closed before the end of the archive'))));
    res.pipe(out, { end: false });
  });
}

async function fromContainer(ctx: CliContext, src: Location & { container: string }, dest: string, follow: boolean): Promise<void> {
  const client = ctx.client();
  let res = await client.raw('GET', `/containers/${encodeURIComponent(src.container)}/archive`, { query: { path: src.path } });
  if (follow && (res.statusCode ?? 0) < 400 && decodeStat(res)?.linkTarget) {
    res.resume();
    res = await client.raw('GET', `/containers/${encodeURIComponent(src.container)}/archive`, { query: { path: decodeStat(res)!.linkTarget } });
  }
  if ((res.statusCode ?? 0) >= 400) throw await responseError(res);
  if (dest === '-') { await copyToStdout(res, ctx.stdout); return; }
  const stat = decodeStat(res);
  if (!stat) throw new BerthError('EINTERNAL', 'the daemon sent no stat for the copied path');
  const srcIsDir = isDirMode(stat.mode);
  const target = resolve(dest);
  const existing = await statIfExists(target);
  const opts = { noOverwriteDirNonDir: true, chown: process.getuid?.() === 0 };
  try {
    if (existing?.isDirectory()) {
      // Into the directory, under the source's own name ("." puts the contents there).
      await extractInto('/', target, target, res, opts);
    } else if (existing) {
      if (srcIsDir) throw new BerthError('EINVAL', `cannot copy a directory to a file: ${dest}`);
      await extractInto('/', dirname(target), dirname(target), res, { ...opts, noOverwriteDirNonDir: false, rebase: { from: stat.name, to: basename(target) } });
    } else {
      if (dest.endsWith('/') && !srcIsDir) throw new BerthError('ENOTFOUND', `destination directory does not exist: ${dest}`);
      if (!await statIfExists(dirname(target))) throw new BerthError('ENOTFOUND', `no such directory: ${dirname(dest)}`);
      if (stat.name === '.') {
        await fsp.mkdir(target);
        await extractInto('/', target, target, res, opts);
      } else {
        await extractInto('/', dirname(target), dirname(target), res, { ...opts, rebase: { from: stat.name, to: basename(target) } });
      }
    }
  } finally {
    res.resume();
  }
}

async function statInContainer(ctx: CliContext, container: string, path: string): Promise<PathStat | undefined> {
  const res = await ctx.client().raw('HEAD', `/containers/${encodeURIComponent(container)}/archive`, { query: { path } });
  res.resume();
  if (res.statusCode === 404) {
    // 404 is also "no such container": ask again for the message when that is the case.
    const check = await ctx.client().raw('GET', `/containers/${encodeURIComponent(container)}/json`);
    if ((check.statusCode ?? 0) >= 400) throw await responseError(check);
    check.resume();
    return undefined;
  }
  if ((res.statusCode ?? 0) >= 400) {
    throw await responseError(await ctx.client().raw('GET', `/containers/${encodeURIComponent(container)}/archive`, { query: { path } }));
  }
  return decodeStat(res);
}

async function toContainer(ctx: CliContext, src: string, dest: Location & { container: string }, follow: boolean, keepOwners: boolean): Promise<void> {
  const put = async (dir: string, body: NodeJS.ReadableStream): Promise<void> => {
    const res = await ctx.client().raw('PUT', `/containers/${encodeURIComponent(dest.container)}/archive`, {
      query: { path: dir, noOverwriteDirNonDir: 'true', ...(keepOwners ? { copyUIDGID: 'true' } : {}) },
      headers: { 'Content-Type': 'application/x-tar' },
      body,
    });
    if ((res.statusCode ?? 0) >= 400) throw await responseError(res);
    res.resume();
  };
  if (src === '-') {
    await put(dest.path, process.stdin);
    return;
  }
  const local = resolve(src);
  const localStat = await (follow ? fsp.stat(local) : fsp.lstat(local)).catch(() => undefined);
  if (!localStat) throw new BerthError('ENOTFOUND', `could not find the file ${src}: no such file or directory`);
  // -L archives what a symlink points at, under the link's own name.
  const source = follow ? await fsp.realpath(local) : local;
  const contentsOnly = /(^|\/)\.$/.test(src);
  let destPath = dest.path;
  let destStat = await statInContainer(ctx, dest.container, destPath);
  if (destStat?.linkTarget) { destPath = destStat.linkTarget; destStat = await statInContainer(ctx, dest.container, destPath); }
  const top = contentsOnly ? '.' : basename(local);
  if (destStat && isDirMode(destStat.mode)) {
    await put(destPath, tarTree(source, top));
    return;
  }
  if (destStat && localStat.isDirectory()) throw new BerthError('EINVAL', `cannot copy a directory to a file: ${dest.path}`);
  if (!destStat && destPath.endsWith('/') && !localStat.isDirectory()) throw new BerthError('ENOTFOUND', `destination directory does not exist: ${dest.path}`);
  // A new name (or a file replaced): archive the source under the destination's name, into its parent.
  const name = basename(destPath.replace(/\/+$/, ''));
  const parent = dirname(destPath.replace(/\/+$/, '')) || '/';
  // For "dir/." this puts the contents under the new name, which is what docker does too.
  await put(parent, tarTree(source, name));
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length !== 2) throw new BerthError('EINVAL', `"${ctx.commandName}" requires exactly 2 arguments`);
  const src = splitLocation(positionals[0]!);
  const dest = splitLocation(positionals[1]!);
  if (src.container && dest.container) throw new BerthError('EINVAL', 'copying between containers is not supported');
  if (!src.container && !dest.container) throw new BerthError('EINVAL', 'must specify at least one container source');
  if (src.container !== undefined) {
    if (!src.path) throw new BerthError('EINVAL', 'filesystem path cannot be empty');
    await fromContainer(ctx, src as Location & { container: string }, positionals[1]!, flags['follow-link']);
  } else {
    if (!dest.path) throw new BerthError('EINVAL', 'filesystem path cannot be empty');
    await toContainer(ctx, positionals[0]!, dest as Location & { container: string }, flags['follow-link'], flags.archive);
  }
  return 0;
}
