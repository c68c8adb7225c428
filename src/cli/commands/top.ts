// `berth top` (also `container top`): the container's processes as a table.
import { parseFlags } from '../flags';
import { formatTable } from '../format';
import { requireArgs } from '../containers';
import type { CliContext } from '../command';

export const summary = 'Display the running processes of a container';
export const usage = `Usage:  berth top CONTAINER [ps OPTIONS]

${summary}
`;
export const passthrough = true;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, {}, { stopAtPositional: true });
  requireArgs(ctx, positionals, 1);
  const [name, ...psArgs] = positionals;
  const top = await ctx.client().json<{ Titles: string[]; Processes: string[][] | null }>('GET', `/containers/${name}/top`, {
    query: { ps_args: psArgs.length ? psArgs.join(' ') : undefined },
  });
  ctx.stdout.write(formatTable(top.Titles, top.Processes ?? [], { minWidth: 1, padding: 1 }));
  return 0;
}
