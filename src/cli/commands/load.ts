// `berth load` (also `image load`): streams a docker-save or OCI archive from a file or
// stdin to POST /images/load; the archive is never held in memory.
import { promises as fsp } from 'node:fs';
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { ProgressPrinter, displayStream, responseError } from '../progress';
import { isTerminal } from '../io';
import type { CliContext } from '../command';

const FLAGS = {
  input: { type: 'string', short: 'i', help: 'Read from tar archive file, instead of STDIN' },
  quiet: { type: 'bool', short: 'q', help: 'Suppress the load output' },
} as const satisfies FlagDefs;

export const summary = 'Load an image from a tar archive or STDIN';
export const usage = `Usage:  berth load [OPTIONS]

${summary}

Aliases:
  berth image load, berth load

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', `"load" accepts no arguments`);
  let input: NodeJS.ReadableStream;
  if (flags.input) {
    // Open before connecting so a wrong path is the user's error, not a broken upload.
    const fh = await fsp.open(flags.input, 'r').catch((err: NodeJS.ErrnoException) => {
      throw new BerthError(err.code === 'ENOENT' ? 'ENOTFOUND' : 'EINVAL', `open ${flags.input}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
    });
    input = fh.createReadStream();
  } else {
    if (isTerminal(process.stdin)) throw new BerthError('EINVAL', 'requested load from stdin, but stdin is empty');
    input = process.stdin;
  }
  const res = await ctx.client().raw('POST', '/images/load', {
    query: { quiet: flags.quiet || undefined },
    headers: { 'Content-Type': 'application/x-tar' },
    body: input,
  });
  if ((res.statusCode ?? 0) >= 400) throw await responseError(res);
  // Load output is plain lines ("Loaded image: ..."); progress, if any, only on a terminal.
  const printer = new ProgressPrinter(ctx.stdout, isTerminal(ctx.stdout) && !flags.quiet, (ctx.stdout as { columns?: number }).columns);
  await displayStream(res, printer);
  return 0;
}
