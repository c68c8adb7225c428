// `berth pause` (also `container pause`).
import { parseFlags } from '../flags';
import { forEachName, requireArgs } from '../containers';
import type { CliContext } from '../command';

export const summary = 'Pause all processes within one or more containers';
export const usage = `Usage:  berth pause CONTAINER [CONTAINER...]

${summary}
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, {});
  requireArgs(ctx, positionals, 1);
  return forEachName(ctx, positionals, async (name) => {
    await ctx.client().request('POST', `/containers/${name}/pause`);
    ctx.stdout.write(`${name}\n`);
  });
}
