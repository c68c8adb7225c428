// `berth kill` (also `container kill`).
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { forEachName, requireArgs } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  signal: { type: 'string', short: 's', help: 'Signal to send to the container (default KILL)' },
} as const satisfies FlagDefs;

export const summary = 'Kill one or more running containers';
export const usage = `Usage:  berth kill [OPTIONS] CONTAINER [CONTAINER...]

${summary}

Aliases:
  berth container kill, berth kill

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1);
  return forEachName(ctx, positionals, async (name) => {
    await ctx.client().request('POST', `/containers/${name}/kill`, { query: { signal: flags.signal } });
    ctx.stdout.write(`${name}\n`);
  });
}
