// `berth network prune`: removes user networks no container uses, after a prompt -f skips.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { promptLine } from '../io';
import type { CliContext } from '../command';

const FLAGS = {
  force: { type: 'bool', short: 'f', help: 'Do not prompt for confirmation' },
} as const satisfies FlagDefs;

export const summary = 'Remove all unused networks';
export const usage = `Usage:  berth network prune [OPTIONS]

${summary}

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', '"network prune" accepts no arguments');
  if (!flags.force) {
    const answer = await promptLine(ctx.stdout, 'WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ');
    if (!/^y(es)?$/i.test(answer.trim())) return 0;
  }
  const report = await ctx.client().json<{ NetworksDeleted: string[] | null }>('POST', '/networks/prune');
  if (report.NetworksDeleted?.length) ctx.stdout.write(`Deleted Networks:\n${report.NetworksDeleted.join('\n')}\n\n`);
  return 0;
}
