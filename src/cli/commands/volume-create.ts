// `berth volume create`: a named local volume (a random name when none is given).
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { requireArgs } from '../containers';
import { BerthError } from '../../util/errors';
import type { CliContext } from '../command';

const FLAGS = {
  driver: { type: 'string', short: 'd', help: 'Specify volume driver name (only "local")' },
  label: { type: 'list', help: 'Set metadata for a volume' },
  name: { type: 'string', help: 'Specify volume name' },
  opt: { type: 'list', short: 'o', help: 'Set driver specific options (not supported yet)' },
} as const satisfies FlagDefs;

export const summary = 'Create a volume';
export const usage = `Usage:  berth volume create [OPTIONS] [VOLUME]

${summary}

${formatFlagHelp(FLAGS)}`;

function keyValues(list: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq === 0 || (eq < 0 && flag === '--opt')) throw new BerthError('EINVAL', `invalid argument "${item}" for "${flag}" flag: expected key=value`);
    if (eq < 0) out[item] = ''; else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 0, 1);
  if (flags.name !== undefined && positionals[0] !== undefined && flags.name !== positionals[0]) {
    throw new BerthError('EINVAL', `conflicting options: either specify --name or provide positional arg, not both`);
  }
  const created = await ctx.client().json<{ Name: string }>('POST', '/volumes/create', {
    body: { Name: positionals[0] ?? flags.name ?? '', Driver: flags.driver ?? 'local', DriverOpts: keyValues(flags.opt, '--opt'), Labels: keyValues(flags.label, '--label') },
  });
  ctx.stdout.write(`${created.Name}\n`);
  return 0;
}
