// `berth network ls` (also `network list`): docker's network table.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { formatTable, isJsonFormat, renderFormat } from '../format';
import { BerthError } from '../../util/errors';
import type { CliContext } from '../command';

const FLAGS = {
  filter: { type: 'list', short: 'f', help: 'Provide filter values (e.g. driver=bridge, name=NAME, dangling=true)' },
  format: { type: 'string', help: "Format output using a template ('{{.Name}}', '{{json .}}')" },
  'no-trunc': { type: 'bool', help: 'Do not truncate the output' },
  quiet: { type: 'bool', short: 'q', help: 'Only display network IDs' },
} as const satisfies FlagDefs;

export const summary = 'List networks';
export const usage = `Usage:  berth network ls [OPTIONS]

${summary}

Aliases:
  berth network ls, berth network list

${formatFlagHelp(FLAGS)}`;

interface NetworkSummary { Id: string; Name: string; Driver: string; Scope: string; Internal: boolean; Created: string; Labels: Record<string, string> | null }

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', '"network ls" accepts no arguments');
  const filters: Record<string, string[]> = {};
  for (const f of flags.filter) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new BerthError('EINVAL', `bad format of filter (expected name=value): ${f}`);
    (filters[f.slice(0, eq)] ??= []).push(f.slice(eq + 1));
  }
  const nets = await ctx.client().json<NetworkSummary[]>('GET', '/networks', { query: { filters: JSON.stringify(filters) } });
  nets.sort((a, b) => a.Name.localeCompare(b.Name));
  const id = (n: NetworkSummary) => (flags['no-trunc'] ? n.Id : n.Id.slice(0, 12));
  if (flags.quiet) { for (const n of nets) ctx.stdout.write(`${id(n)}\n`); return 0; }
  const rows = nets.map((n) => ({ ID: id(n), Name: n.Name, Driver: n.Driver, Scope: n.Scope, Internal: String(n.Internal), CreatedAt: n.Created, Labels: Object.entries(n.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',') }));
  if (flags.format !== undefined && flags.format !== 'table') {
    for (const [i, r] of rows.entries()) ctx.stdout.write(renderFormat(flags.format, isJsonFormat(flags.format) ? nets[i] : r) + '\n');
    return 0;
  }
  ctx.stdout.write(formatTable(['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'], rows.map((r) => [r.ID, r.Name, r.Driver, r.Scope])));
  return 0;
}
