// `berth stop` (also `container stop`): stop signal, grace period, then SIGKILL.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { forEachName, requireArgs } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  signal: { type: 'string', short: 's', help: 'Signal to send to the container' },
  time: { type: 'string', short: 't', help: 'Seconds to wait before killing the container' },
} as const satisfies FlagDefs;

export const summary = 'Stop one or more running containers';
export const usage = `Usage:  berth stop [OPTIONS] CONTAINER [CONTAINER...]

${summary}

Aliases:
  berth container stop, berth stop

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1);
  return forEachName(ctx, positionals, async (name) => {
    // 304 (already stopped) is success for the user, as with docker.
    await ctx.client().request('POST', `/containers/${name}/stop`, { query: { t: flags.time, signal: flags.signal } });
    ctx.stdout.write(`${name}\n`);
  });
}
