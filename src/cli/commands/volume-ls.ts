// `berth volume ls` (also `volume list`): docker's volume table.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { formatTable, isJsonFormat, renderFormat } from '../format';
import { BerthError } from '../../util/errors';
import type { CliContext } from '../command';

const FLAGS = {
  filter: { type: 'list', short: 'f', help: "Provide filter values (e.g. 'dangling=true', 'name=NAME', 'label=KEY[=VALUE]', 'driver=local')" },
  format: { type: 'string', help: "Format output using a template ('{{.Name}}', '{{json .}}')" },
  quiet: { type: 'bool', short: 'q', help: 'Only display volume names' },
} as const satisfies FlagDefs;

export const summary = 'List volumes';
export const usage = `Usage:  berth volume ls [OPTIONS]

${summary}

Aliases:
  berth volume ls, berth volume list

${formatFlagHelp(FLAGS)}`;

interface Volume { Name: string; Driver: string; Mountpoint: string; CreatedAt: string; Labels: Record<string, string> | null; Scope: string }

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', '"volume ls" accepts no arguments');
  const filters: Record<string, string[]> = {};
  for (const f of flags.filter) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new BerthError('EINVAL', `bad format of filter (expected name=value): ${f}`);
    (filters[f.slice(0, eq)] ??= []).push(f.slice(eq + 1));
  }
  const { Volumes } = await ctx.client().json<{ Volumes: Volume[] | null }>('GET', '/volumes', { query: { filters: JSON.stringify(filters) } });
  const volumes = (Volumes ?? []).sort((a, b) => a.Name.localeCompare(b.Name));
  if (flags.quiet) { for (const v of volumes) ctx.stdout.write(`${v.Name}\n`); return 0; }
  const rows = volumes.map((v) => ({
    Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint, Scope: v.Scope, CreatedAt: v.CreatedAt,
    Labels: Object.entries(v.Labels ?? {}).map(([k, val]) => `${k}=${val}`).join(','),
  }));
  if (flags.format !== undefined && flags.format !== 'table') {
    for (const [i, r] of rows.entries()) ctx.stdout.write(renderFormat(flags.format, isJsonFormat(flags.format) ? volumes[i] : r) + '\n');
    return 0;
  }
  ctx.stdout.write(formatTable(['DRIVER', 'VOLUME NAME'], rows.map((r) => [r.Driver, r.Name])));
  return 0;
}
