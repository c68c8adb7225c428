// `berth network connect`: a running container gets an interface at once, a stopped one at its next start.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { requireArgs } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  alias: { type: 'list', help: 'Add network-scoped alias for the container' },
} as const satisfies FlagDefs;

export const summary = 'Connect a container to a network';
export const usage = `Usage:  berth network connect [OPTIONS] NETWORK CONTAINER

${summary}

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 2, 2);
  await ctx.client().request('POST', `/networks/${encodeURIComponent(positionals[0]!)}/connect`, {
    body: { Container: positionals[1], EndpointConfig: { Aliases: flags.alias } },
  });
  return 0;
}
