// `berth rm` (also `container rm`, `container remove`).
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { forEachName, requireArgs } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  force: { type: 'bool', short: 'f', help: 'Force the removal of a running container (uses SIGKILL)' },
  volumes: { type: 'bool', short: 'v', help: 'Remove anonymous volumes associated with the container' },
} as const satisfies FlagDefs;

export const summary = 'Remove one or more containers';
export const usage = `Usage:  berth rm [OPTIONS] CONTAINER [CONTAINER...]

${summary}

Aliases:
  berth container rm, berth container remove, berth rm

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1);
  return forEachName(ctx, positionals, async (name) => {
    await ctx.client().request('DELETE', `/containers/${name}`, { query: { force: flags.force || undefined, v: flags.volumes || undefined } });
    ctx.stdout.write(`${name}\n`);
  });
}
