// `berth image prune`: remove dangling images (or, with -a, every unused one) after a
// confirmation that -f skips. Output and prompt follow docker's.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { humanSize } from '../format';
import { promptLine } from '../io';
import type { CliContext } from '../command';

const FLAGS = {
  all: { type: 'bool', short: 'a', help: 'Remove all unused images, not just dangling ones' },
  force: { type: 'bool', short: 'f', help: 'Do not prompt for confirmation' },
} as const satisfies FlagDefs;

export const summary = 'Remove unused images';
export const usage = `Usage:  berth image prune [OPTIONS]

${summary}

${formatFlagHelp(FLAGS)}`;

const DANGLING_WARNING = 'WARNING! This will remove all dangling images.';
const ALL_WARNING = 'WARNING! This will remove all images without at least one container associated to them.';

interface PruneReport {
  ImagesDeleted: Array<{ Untagged?: string; Deleted?: string }> | null;
  SpaceReclaimed: number;
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', `"image prune" accepts no arguments`);
  if (!flags.force) {
    const answer = await promptLine(ctx.stdout, `${flags.all ? ALL_WARNING : DANGLING_WARNING}\nAre you sure you want to continue? [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) {
      ctx.stdout.write(`Total reclaimed space: ${humanSize(0, 4)}\n`);
      return 0;
    }
  }
  const report = await ctx.client().json<PruneReport>('POST', '/images/prune', {
    query: { filters: JSON.stringify({ dangling: [flags.all ? 'false' : 'true'] }) },
  });
  const deleted = report.ImagesDeleted ?? [];
  if (deleted.length) {
    let out = 'Deleted Images:\n';
    for (const item of deleted) {
      if (item.Untagged) out += `untagged: ${item.Untagged}\n`;
      if (item.Deleted) out += `deleted: ${item.Deleted}\n`;
    }
    ctx.stdout.write(out + '\n');
  }
  ctx.stdout.write(`Total reclaimed space: ${humanSize(report.SpaceReclaimed ?? 0, 4)}\n`);
  return 0;
}
