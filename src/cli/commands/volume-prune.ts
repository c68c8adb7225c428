// `berth volume prune`: removes unused anonymous volumes (-a: every unused volume), after a prompt -f skips.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { humanSize } from '../format';
import { promptLine } from '../io';
import type { CliContext } from '../command';

const FLAGS = {
  all: { type: 'bool', short: 'a', help: 'Remove all unused volumes, not just anonymous ones' },
  filter: { type: 'list', help: "Provide filter values (e.g. 'label=<label>')" },
  force: { type: 'bool', short: 'f', help: 'Do not prompt for confirmation' },
} as const satisfies FlagDefs;

export const summary = 'Remove unused local volumes';
export const usage = `Usage:  berth volume prune [OPTIONS]

${summary}

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', '"volume prune" accepts no arguments');
  const filters: Record<string, string[]> = {};
  for (const f of flags.filter) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new BerthError('EINVAL', `bad format of filter (expected name=value): ${f}`);
    (filters[f.slice(0, eq)] ??= []).push(f.slice(eq + 1));
  }
  if (flags.all) filters.all = ['true'];
  if (!flags.force) {
    const what = flags.all ? 'all local volumes' : 'anonymous local volumes';
    const answer = await promptLine(ctx.stdout, `WARNING! This will remove ${what} not used by at least one container.\nAre you sure you want to continue? [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) return 0;
  }
  const report = await ctx.client().json<{ VolumesDeleted: string[] | null; SpaceReclaimed: number }>('POST', '/volumes/prune', { query: { filters: JSON.stringify(filters) } });
  if (report.VolumesDeleted?.length) ctx.stdout.write(`Deleted Volumes:\n${report.VolumesDeleted.join('\n')}\n\n`);
  ctx.stdout.write(`Total reclaimed space: ${humanSize(report.SpaceReclaimed ?? 0)}\n`);
  return 0;
}
