// `berth save` (also `image save`): a docker-save tar archive to a file or stdout. A file
// is written under a temp name beside it and renamed at the end, so a daemon failure
// half-way never leaves a truncated archive under the real name.
import { createWriteStream, promises as fsp } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BerthError } from '../../util/errors';
import { tempPathFor } from '../../util/atomic';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { responseError } from '../progress';
import { isTerminal } from '../io';
import { printError, type CliContext } from '../command';

const FLAGS = {
  output: { type: 'string', short: 'o', help: 'Write to a file, instead of STDOUT' },
} as const satisfies FlagDefs;

export const summary = 'Save one or more images to a tar archive (streamed to STDOUT by default)';
export const usage = `Usage:  berth save [OPTIONS] IMAGE [IMAGE...]

${summary}

Aliases:
  berth image save, berth save

${formatFlagHelp(FLAGS)}`;

function cutShort(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  return new BerthError('EINTERNAL', `the daemon stopped sending the archive: ${(err as Error).message}`, { cause: err });
}

async function requestArchive(ctx: CliContext, names: string[]): Promise<IncomingMessage> {
  const query = new URLSearchParams();
  for (const name of names) query.append('names', name);
  const res = await ctx.client().raw('GET', '/images/get', { query });
  if ((res.statusCode ?? 0) >= 400) throw await responseError(res);
  return res;
}

/** Copies to stdout without ending it (stdout cannot be closed) and fails on an early close. */
function copyToStream(res: IncomingMessage, out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('connection closed before the end of the archive')));
    res.on('end', () => (res.complete ? resolvePromise() : reject(new Error('connection closed before the end of the archive'))));
    res.pipe(out, { end: false });
  });
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length === 0) throw new BerthError('EINVAL', `"save" requires at least 1 argument`);
  if (!flags.output) {
    if (isTerminal(ctx.stdout)) {
      return printError(ctx.stderr, new BerthError('EINVAL', 'cowardly refusing to save to a terminal. Use the -o flag or redirect'));
    }
    const res = await requestArchive(ctx, positionals);
    try { await copyToStream(res, ctx.stdout); } catch (err) { throw cutShort(err); }
    return 0;
  }

  const target = resolve(flags.output);
  // Ask first: a missing image must not even create the temp file.
  const res = await requestArchive(ctx, positionals);
  const temp = tempPathFor(target);
  try {
    const file = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
    await pipeline(res, file);
    if (!res.complete) throw new Error('connection closed before the end of the archive');
    const fh = await fsp.open(temp, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
    await fsp.rename(temp, target);
  } catch (err) {
    await fsp.rm(temp, { force: true });
    throw cutShort(err);
  }
  return 0;
}
