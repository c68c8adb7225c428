// `berth diff` (also `container diff`): what a container changed against its image,
// one "C|A|D /path" line per change, as docker prints it.
import { parseFlags } from '../flags';
import { requireArgs } from '../containers';
import type { CliContext } from '../command';

export const summary = "Inspect changes to files or directories on a container's filesystem";
export const usage = `Usage:  berth diff CONTAINER

${summary}

Aliases:
  berth container diff, berth diff
`;

const KIND_LETTERS = ['C', 'A', 'D'];

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, {});
  requireArgs(ctx, positionals, 1, 1);
  const changes = await ctx.client().json<Array<{ Path: string; Kind: number }> | null>('GET', `/containers/${encodeURIComponent(positionals[0]!)}/changes`);
  for (const change of changes ?? []) ctx.stdout.write(`${KIND_LETTERS[change.Kind] ?? '?'} ${change.Path}\n`);
  return 0;
}
