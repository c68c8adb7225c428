// `berth wait` (also `container wait`): prints each container's exit code.
import { parseFlags } from '../flags';
import { forEachName, requireArgs } from '../containers';
import type { CliContext } from '../command';

export const summary = 'Block until one or more containers stop, then print their exit codes';
export const usage = `Usage:  berth wait CONTAINER [CONTAINER...]

${summary}
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, {});
  requireArgs(ctx, positionals, 1);
  return forEachName(ctx, positionals, async (name) => {
    const result = await ctx.client().json<{ StatusCode: number }>('POST', `/containers/${name}/wait`);
    ctx.stdout.write(`${result.StatusCode}\n`);
  });
}
