// `berth export` (also `container export`): the container's whole filesystem as a tar,
// to a file (written under a temp name, renamed at the end) or to stdout.
import { createWriteStream, promises as fsp } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BerthError } from '../../util/errors';
import { tempPathFor } from '../../util/atomic';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { responseError } from '../progress';
import { isTerminal } from '../io';
import { requireArgs } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  output: { type: 'string', short: 'o', help: 'Write to a file, instead of STDOUT' },
} as const satisfies FlagDefs;

export const summary = "Export a container's filesystem as a tar archive";
export const usage = `Usage:  berth export [OPTIONS] CONTAINER

${summary}

Aliases:
  berth container export, berth export

${formatFlagHelp(FLAGS)}`;

function cutShort(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  return new BerthError('EINTERNAL', `the daemon stopped sending the archive: ${(err as Error).message}`, { cause: err });
}

function copyToStdout(res: IncomingMessage, out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    res.on('error', reject);
    res.on('end', () => (res.complete ? resolvePromise() : reject(new Error('connection closed before the end of the archive'))));
    res.pipe(out, { end: false });
  });
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1, 1);
  if (!flags.output && isTerminal(ctx.stdout)) {
    throw new BerthError('EINVAL', 'cowardly refusing to save to a terminal. Use the -o flag or redirect');
  }
  const res = await ctx.client().raw('GET', `/containers/${encodeURIComponent(positionals[0]!)}/export`);
  if ((res.statusCode ?? 0) >= 400) throw await responseError(res);
  if (!flags.output) {
    try { await copyToStdout(res, ctx.stdout); } catch (err) { throw cutShort(err); }
    return 0;
  }
  const target = resolve(flags.output);
  const temp = tempPathFor(target);
  try {
    await pipeline(res, createWriteStream(temp, { flags: 'wx', mode: 0o644 }));
    if (!res.complete) throw new Error('connection closed before the end of the archive');
    await fsp.rename(temp, target);
  } catch (err) {
    await fsp.rm(temp, { force: true });
    throw cutShort(err);
  }
  return 0;
}
