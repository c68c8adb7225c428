// `berth volume inspect`: GET /volumes/{name} for each name, as a JSON array or one -f template each.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { renderFormat } from '../format';
import { requireArgs } from '../containers';
import { printError, type CliContext } from '../command';

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
  const found: unknown[] = [];
  let code = 0;
  for (const name of positionals) {
    try { found.push(await ctx.client().json('GET', `/volumes/${encodeURIComponent(name)}`)); } catch (err) { code ||= printError(ctx.stderr, err); }
  }
  if (flags.format !== undefined) for (const v of found) ctx.stdout.write(renderFormat(flags.format, v) + '\n');
  else ctx.stdout.write(JSON.stringify(found, null, 4) + '\n');
  return code;
}
