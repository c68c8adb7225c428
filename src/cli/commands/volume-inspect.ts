// `berth volume inspect`: GET /volumes/{name} for each name, as a JSON array or one -f template each.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { requireArgs } from '../containers';
import type { CliContext } from '../command';
import { printInspected } from '../inspect-objects';

const FLAGS = {
  format: { type: 'string', short: 'f', help: "Format output using a template ('{{.Mountpoint}}', '{{json .}}')" },
} as const satisfies FlagDefs;

export const summary = 'Display detailed information on one or more volumes';
export const usage = `Usage:  berth volume inspect [OPTIONS] VOLUME [VOLUME...]

${summary}

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1);
  return printInspected(ctx, positionals, flags.format, (name) => `/volumes/${encodeURIComponent(name)}`);
}
