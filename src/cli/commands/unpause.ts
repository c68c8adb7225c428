// `berth unpause` (also `container unpause`).
import { parseFlags } from '../flags';
import { forEachName, requireArgs } from '../containers';
import type { CliContext } from '../command';

export const summary = 'Unpause all processes within one or more containers';
export const usage = `Usage:  berth unpause CONTAINER [CONTAINER...]

${summary}
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, {});
  requireArgs(ctx, positionals, 1);
  return forEachName(ctx, positionals, async (name) => {
    await ctx.client().request('POST', `/containers/${name}/unpause`);
    ctx.stdout.write(`${name}\n`);
  });
}
