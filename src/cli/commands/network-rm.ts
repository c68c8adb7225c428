// `berth network rm` (also `network remove`).
import { parseFlags } from '../flags';
import { forEachName, requireArgs } from '../containers';
import type { CliContext } from '../command';

export const summary = 'Remove one or more networks';
export const usage = `Usage:  berth network rm NETWORK [NETWORK...]

${summary}

Aliases:
  berth network rm, berth network remove
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, {});
  requireArgs(ctx, positionals, 1);
  return forEachName(ctx, positionals, async (name) => {
    await ctx.client().request('DELETE', `/networks/${encodeURIComponent(name)}`);
    ctx.stdout.write(`${name}\n`);
  });
}
