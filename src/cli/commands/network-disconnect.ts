// `berth network disconnect`.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { requireArgs } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  force: { type: 'bool', short: 'f', help: 'Force the container to disconnect from a network' },
} as const satisfies FlagDefs;

export const summary = 'Disconnect a container from a network';
export const usage = `Usage:  berth network disconnect [OPTIONS] NETWORK CONTAINER

${summary}

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 2, 2);
  await ctx.client().request('POST', `/networks/${encodeURIComponent(positionals[0]!)}/disconnect`, {
    body: { Container: positionals[1], Force: flags.force },
  });
  return 0;
}
