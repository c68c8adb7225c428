// `berth rename` (also `container rename`).
import { parseFlags } from '../flags';
import { requireArgs } from '../containers';
import type { CliContext } from '../command';

export const summary = 'Rename a container';
export const usage = `Usage:  berth rename CONTAINER NEW_NAME

${summary}
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, {});
  requireArgs(ctx, positionals, 2, 2);
  await ctx.client().request('POST', `/containers/${positionals[0]}/rename`, { query: { name: positionals[1] } });
  return 0;
}
