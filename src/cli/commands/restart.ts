// `berth restart` (also `container restart`).
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { forEachName, requireArgs } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  signal: { type: 'string', short: 's', help: 'Signal to send to the container' },
  time: { type: 'string', short: 't', help: 'Seconds to wait before killing the container' },
} as const satisfies FlagDefs;

export const summary = 'Restart one or more containers';
export const usage = `Usage:  berth restart [OPTIONS] CONTAINER [CONTAINER...]

${summary}

Aliases:
  berth container restart, berth restart

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1);
  return forEachName(ctx, positionals, async (name) => {
    await ctx.client().request('POST', `/containers/${name}/restart`, { query: { t: flags.time, signal: flags.signal } });
    ctx.stdout.write(`${name}\n`);
  });
}
