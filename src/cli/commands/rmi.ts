// `berth rmi` (also `image rm`, `image remove`): untag and delete, one name at a time;
// a failing name does not stop the others, but makes the exit status non-zero.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { printError, type CliContext } from '../command';

const FLAGS = {
  force: { type: 'bool', short: 'f', help: 'Force removal of the image' },
  'no-prune': { type: 'bool', help: 'Do not delete untagged parents' },
} as const satisfies FlagDefs;

export const summary = 'Remove one or more images';
export const usage = `Usage:  berth rmi [OPTIONS] IMAGE [IMAGE...]

${summary}

Aliases:
  berth image rm, berth image remove, berth rmi

${formatFlagHelp(FLAGS)}`;

type DeleteItem = { Untagged?: string; Deleted?: string };

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length === 0) throw new BerthError('EINVAL', `"rmi" requires at least 1 argument`);
  const failures: unknown[] = [];
  for (const name of positionals) {
    try {
      const items = await ctx.client().json<DeleteItem[]>('DELETE', `/images/${name}`, {
        query: { force: flags.force || undefined, noprune: flags['no-prune'] || undefined },
      });
      for (const item of items) {
        if (item.Deleted) ctx.stdout.write(`Deleted: ${item.Deleted}\n`);
        else if (item.Untagged) ctx.stdout.write(`Untagged: ${item.Untagged}\n`);
      }
    } catch (err) {
      // Only a daemon's answer about this name is per-name; a dead daemon ends the run.
      if (err instanceof BerthError && err.code === 'ECONNECT') throw err;
      failures.push(err);
    }
  }
  let exitCode = 0;
  for (const err of failures) {
    const code = printError(ctx.stderr, err);
    exitCode ||= code;
  }
  return exitCode;
}
