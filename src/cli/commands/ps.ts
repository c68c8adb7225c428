// `berth ps` (also `container ls`, `container list`): docker's container table.
import { BerthError } from '../../util/errors';
import { parseFilterFlags, parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { formatTable, humanSize, isJsonFormat, renderFormat, shortId, timeAgo } from '../format';
import type { CliContext } from '../command';

const FLAGS = {
  all: { type: 'bool', short: 'a', help: 'Show all containers (default shows just running)' },
  filter: { type: 'list', short: 'f', help: 'Filter output based on conditions provided' },
  format: { type: 'string', help: "Format output using a template ('table', 'table TEMPLATE', 'json', TEMPLATE)" },
  last: { type: 'string', short: 'n', help: 'Show n last created containers (includes all states)' },
  latest: { type: 'bool', short: 'l', help: 'Show the latest created container (includes all states)' },
  'no-trunc': { type: 'bool', help: "Don't truncate output" },
  quiet: { type: 'bool', short: 'q', help: 'Only display container IDs' },
  size: { type: 'bool', short: 's', help: 'Display total file sizes' },
} as const satisfies FlagDefs;

export const summary = 'List containers';
export const usage = `Usage:  berth ps [OPTIONS]

${summary}

Aliases:
  berth container ls, berth container list, berth container ps, berth ps

${formatFlagHelp(FLAGS)}`;

export interface ContainerSummary {
  Id: string;
  Names?: string[] | null;
  Image?: string;
  ImageID?: string;
  Command?: string;
  Created?: number;
  State?: string;
  Status?: string;
  Ports?: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> | null;
  Labels?: Record<string, string> | null;
  SizeRw?: number;
  SizeRootFs?: number;
  Mounts?: Array<{ Name?: string; Source?: string; Destination?: string }> | null;
  NetworkSettings?: { Networks?: Record<string, unknown> } | null;
}

/** The fields docker's --format templates know for ps. */
export interface ContainerRow {
  Command: string;
  CreatedAt: string;
  ID: string;
  Image: string;
  Labels: string;
  LocalVolumes: string;
  Mounts: string;
  Names: string;
  Networks: string;
  Ports: string;
  RunningFor: string;
  Size: string;
  State: string;
  Status: string;
}

const HEADERS: Record<string, string> = {
  Command: 'COMMAND', CreatedAt: 'CREATED AT', ID: 'CONTAINER ID', Image: 'IMAGE', Labels: 'LABELS', LocalVolumes: 'LOCAL VOLUMES',
  Mounts: 'MOUNTS', Names: 'NAMES', Networks: 'NETWORKS', Ports: 'PORTS', RunningFor: 'CREATED', Size: 'SIZE', State: 'STATE', Status: 'STATUS',
};

/** Docker's Ellipsis: cut to `max` display characters, the last one "…". */
export function ellipsis(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : chars.slice(0, max - 1).join('') + '…';
}

export function formatPorts(ports: ContainerSummary['Ports']): string {
  return (ports ?? [])
    .slice()
    .sort((a, b) => a.PrivatePort - b.PrivatePort || (a.PublicPort ?? 0) - (b.PublicPort ?? 0))
    .map((p) => {
      if (!p.PublicPort) return `${p.PrivatePort}/${p.Type}`;
      const ip = p.IP ? (p.IP.includes(':') ? `[${p.IP}]` : p.IP) : '0.0.0.0';
      return `${ip}:${p.PublicPort}->${p.PrivatePort}/${p.Type}`;
    })
    .join(', ');
}

function goTime(unixSeconds: number): string {
  const iso = new Date(unixSeconds * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

export function containerRows(list: ContainerSummary[], opts: { noTrunc: boolean; now?: number }): ContainerRow[] {
  return list.map((c) => {
    // Names with a second "/" are legacy link aliases; docker hides them.
    const names = (c.Names ?? []).map((n) => n.replace(/^\//, '')).filter((n) => !n.includes('/'));
    const command = c.Command ?? '';
    const image = c.Image ?? '';
    return {
      Command: `"${opts.noTrunc ? command : ellipsis(command, 20)}"`,
      CreatedAt: goTime(c.Created ?? 0),
      ID: opts.noTrunc ? c.Id : shortId(c.Id),
      Image: !opts.noTrunc && image.startsWith('sha256:') ? shortId(image) : image,
      Labels: Object.entries(c.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
      LocalVolumes: String((c.Mounts ?? []).filter((m) => m.Name).length),
      Mounts: (c.Mounts ?? []).map((m) => m.Name || m.Source || '').join(','),
      Names: names.join(','),
      Networks: Object.keys(c.NetworkSettings?.Networks ?? {}).join(','),
      Ports: formatPorts(c.Ports),
      RunningFor: timeAgo(c.Created ?? 0, opts.now),
      Size: c.SizeRw === undefined ? '0B' : `${humanSize(c.SizeRw)} (virtual ${humanSize(c.SizeRootFs ?? 0)})`,
      State: c.State ?? '',
      Status: c.Status ?? '',
    };
  });
}

function renderTableTemplate(template: string, rows: ContainerRow[]): string {
  const header = template.replace(/\{\{\s*\.([A-Za-z]+)\s*\}\}/g, (_, field: string) => HEADERS[field] ?? field.toUpperCase());
  const split = (line: string): string[] => line.replace(/\\t/g, '\t').split('\t');
  return formatTable(split(header), rows.map((row) => split(renderFormat(template, row))));
}

export function renderContainers(rows: ContainerRow[], opts: { format?: string; quiet: boolean; size: boolean }): string {
  if (opts.quiet) return rows.map((r) => `${r.ID}\n`).join('');
  const format = opts.format === 'json' ? '{{json .}}' : opts.format;
  if (format !== undefined && format !== 'table') {
    const tableTemplate = /^table\s+(.*)$/s.exec(format);
    if (tableTemplate) return renderTableTemplate(tableTemplate[1]!, rows);
    const sorted = (r: ContainerRow): Record<string, string> => Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));
    return rows.map((r) => (isJsonFormat(format) ? JSON.stringify(sorted(r)) : renderFormat(format, r)) + '\n').join('');
  }
  const headers = ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES', ...(opts.size ? ['SIZE'] : [])];
  const cells = rows.map((r) => [r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Ports, r.Names, ...(opts.size ? [r.Size] : [])]);
  return formatTable(headers, cells);
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', `"${ctx.commandName}" accepts no arguments`);
  const filters = parseFilterFlags(flags.filter);
  let limit = flags.latest ? 1 : undefined;
  if (flags.last !== undefined) {
    const n = Number(flags.last);
    if (!Number.isInteger(n)) throw new BerthError('EINVAL', `invalid argument "${flags.last}" for "-n, --last" flag`);
    if (n > 0) limit = n;
  }
  const list = await ctx.client().json<ContainerSummary[]>('GET', '/containers/json', {
    query: {
      all: flags.all || limit !== undefined || undefined,
      limit,
      size: flags.size || (flags.format !== undefined && /\.Size\b/.test(flags.format)) || undefined,
      filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined,
    },
  });
  const rows = containerRows(list, { noTrunc: flags['no-trunc'] });
  ctx.stdout.write(renderContainers(rows, { format: flags.format, quiet: flags.quiet, size: flags.size }));
  return 0;
}
