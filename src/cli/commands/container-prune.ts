// `berth container prune`: removes every stopped container after a confirmation.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { humanSize } from '../format';
import { promptLine } from '../io';
import type { CliContext } from '../command';

const FLAGS = {
  force: { type: 'bool', short: 'f', help: 'Do not prompt for confirmation' },
  filter: { type: 'list', help: 'Provide filter values (e.g. "until=<timestamp>")', hidden: true },
} as const satisfies FlagDefs;

export const summary = 'Remove all stopped containers';
export const usage = `Usage:  berth container prune [OPTIONS]

${summary}

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags } = parseFlags(args, FLAGS);
  if (!flags.force) {
    const answer = await promptLine(ctx.stdout, 'WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ');
    if (!/^y(es)?$/i.test(answer.trim())) return 0;
  }
  const result = await ctx.client().json<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }>('POST', '/containers/prune');
  if (result.ContainersDeleted?.length) ctx.stdout.write(`Deleted Containers:\n${result.ContainersDeleted.join('\n')}\n\n`);
  ctx.stdout.write(`Total reclaimed space: ${humanSize(result.SpaceReclaimed ?? 0)}\n`);
  return 0;
}
