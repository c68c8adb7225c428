// `berth volume rm` (also `volume remove`): refused (409) while a container uses the volume.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { forEachName, requireArgs } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  force: { type: 'bool', short: 'f', help: 'Do not fail on volumes that do not exist (a volume in use is still kept)' },
} as const satisfies FlagDefs;

export const summary = 'Remove one or more volumes';
export const usage = `Usage:  berth volume rm [OPTIONS] VOLUME [VOLUME...]

${summary}

Aliases:
  berth volume rm, berth volume remove

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1);
  return forEachName(ctx, positionals, async (name) => {
    await ctx.client().request('DELETE', `/volumes/${encodeURIComponent(name)}`, { query: { force: flags.force || undefined } });
    ctx.stdout.write(`${name}\n`);
  });
}
