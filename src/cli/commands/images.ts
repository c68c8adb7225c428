// `berth images` (also `image ls`, `image list`): docker's image table, one row per tag.
import { BerthError } from '../../util/errors';
import { parseFilterFlags, parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { formatTable, humanSize, isJsonFormat, renderFormat, shortId, timeAgo } from '../format';
import { splitReference } from '../reference';
import type { CliContext } from '../command';

const FLAGS = {
  all: { type: 'bool', short: 'a', help: 'Show all images (default hides intermediate images)' },
  digests: { type: 'bool', help: 'Show digests' },
  filter: { type: 'list', short: 'f', help: 'Filter output based on conditions provided (dangling=true, reference=NAME)' },
  format: { type: 'string', help: "Format output using a template ('{{json .}}', '{{.Repository}}:{{.Tag}}', 'table ...')" },
  'no-trunc': { type: 'bool', help: "Don't truncate output" },
  quiet: { type: 'bool', short: 'q', help: 'Only show image IDs' },
} as const satisfies FlagDefs;

export const summary = 'List images';
export const usage = `Usage:  berth images [OPTIONS] [REPOSITORY[:TAG]]

${summary}

Aliases:
  berth image ls, berth image list, berth images

${formatFlagHelp(FLAGS)}`;

export interface ImageSummary {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Created: number;
  Size: number;
  SharedSize?: number;
  Containers?: number;
}

/** One table row, with the field names docker's --format templates use. */
export interface ImageRow {
  Containers: string;
  CreatedAt: string;
  CreatedSince: string;
  Digest: string;
  ID: string;
  Repository: string;
  SharedSize: string;
  Size: string;
  Tag: string;
  UniqueSize: string;
  VirtualSize: string;
}

const HEADERS: Record<string, string> = {
  Containers: 'CONTAINERS', CreatedAt: 'CREATED AT', CreatedSince: 'CREATED', Digest: 'DIGEST', ID: 'IMAGE ID',
  Repository: 'REPOSITORY', SharedSize: 'SHARED SIZE', Size: 'SIZE', Tag: 'TAG', UniqueSize: 'UNIQUE SIZE', VirtualSize: 'VIRTUAL SIZE',
};

/** Go's time.Time String() in UTC, which `{{.CreatedAt}}` shows. */
function goTime(unixSeconds: number): string {
  const iso = new Date(unixSeconds * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

/** "docker.io/library/busybox" and "busybox" are the same repository; show the short one. */
function familiarRepository(name: string): string {
  const ref = splitReference(name);
  if (ref.domain !== 'docker.io') return `${ref.domain}/${ref.path}`;
  return ref.path.startsWith('library/') ? ref.path.slice('library/'.length) : ref.path;
}

/** Docker's rows: each tag; digests beside their tag with --digests; digest-only repos as <none>. */
export function imageRows(images: ImageSummary[], opts: { digests: boolean; noTrunc: boolean; now?: number }): ImageRow[] {
  const rows: ImageRow[] = [];
  for (const img of images) {
    const tagsByRepo = new Map<string, string[]>();
    const digestsByRepo = new Map<string, string[]>();
    for (const refString of img.RepoTags ?? []) {
      if (refString === '<none>:<none>') continue;
      const ref = splitReference(refString);
      if (ref.tag === undefined) continue;
      const repo = familiarRepository(refString);
      tagsByRepo.set(repo, [...(tagsByRepo.get(repo) ?? []), ref.tag]);
    }
    for (const refString of img.RepoDigests ?? []) {
      if (refString === '<none>@<none>') continue;
      const ref = splitReference(refString);
      if (ref.digest === undefined) continue;
      const repo = familiarRepository(refString.slice(0, refString.indexOf('@')));
      digestsByRepo.set(repo, [...(digestsByRepo.get(repo) ?? []), ref.digest]);
    }
    const base = {
      Containers: img.Containers !== undefined && img.Containers >= 0 ? String(img.Containers) : 'N/A',
      CreatedAt: goTime(img.Created),
      CreatedSince: timeAgo(img.Created, opts.now),
      ID: opts.noTrunc ? img.Id : shortId(img.Id),
      SharedSize: img.SharedSize !== undefined && img.SharedSize >= 0 ? humanSize(img.SharedSize) : 'N/A',
      Size: humanSize(img.Size),
      UniqueSize: 'N/A',
      VirtualSize: humanSize(img.Size),
    };
    const own: ImageRow[] = [];
    for (const repo of [...tagsByRepo.keys()].sort()) {
      const digests = opts.digests ? digestsByRepo.get(repo) ?? [] : [];
      digestsByRepo.delete(repo);
      for (const tag of tagsByRepo.get(repo)!.sort()) {
        if (digests.length === 0) own.push({ ...base, Repository: repo, Tag: tag, Digest: '<none>' });
        for (const digest of digests) own.push({ ...base, Repository: repo, Tag: tag, Digest: digest });
      }
    }
    for (const repo of [...digestsByRepo.keys()].sort()) {
      if (opts.digests) for (const digest of digestsByRepo.get(repo)!) own.push({ ...base, Repository: repo, Tag: '<none>', Digest: digest });
      else own.push({ ...base, Repository: repo, Tag: '<none>', Digest: '<none>' });
    }
    if (own.length === 0) own.push({ ...base, Repository: '<none>', Tag: '<none>', Digest: '<none>' });
    rows.push(...own);
  }
  return rows;
}

/** `table {{.Repository}}\t{{.Tag}}`: a header from the field names, then aligned rows. */
function renderTableTemplate(template: string, rows: ImageRow[]): string {
  const header = template.replace(/\{\{\s*\.([A-Za-z]+)\s*\}\}/g, (_, field: string) => HEADERS[field] ?? field.toUpperCase());
  const split = (line: string): string[] => line.replace(/\\t/g, '\t').split('\t');
  return formatTable(split(header), rows.map((row) => split(renderFormat(template, row))));
}

export function renderImages(rows: ImageRow[], opts: { format?: string; quiet: boolean; digests: boolean }): string {
  if (opts.quiet) return rows.map((r) => `${r.ID}\n`).join('');
  if (opts.format !== undefined && opts.format !== 'table') {
    const tableTemplate = /^table\s+(.*)$/s.exec(opts.format);
    if (tableTemplate) return renderTableTemplate(tableTemplate[1]!, rows);
    // Docker's {{json .}} marshals a map: keys in sorted order.
    const sorted = (r: ImageRow): Record<string, string> => Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));
    return rows.map((r) => (isJsonFormat(opts.format) ? JSON.stringify(sorted(r)) : renderFormat(opts.format!, r)) + '\n').join('');
  }
  const headers = opts.digests
    ? ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE']
    : ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'];
  const cells = rows.map((r) => (opts.digests
    ? [r.Repository, r.Tag, r.Digest, r.ID, r.CreatedSince, r.Size]
    : [r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size]));
  return formatTable(headers, cells);
}

const FILTER_KEYS = new Set(['dangling', 'reference']);

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length > 1) throw new BerthError('EINVAL', `"images" requires at most 1 argument`);
  const filters = parseFilterFlags(flags.filter, FILTER_KEYS);
  if (positionals[0]) (filters.reference ??= []).push(positionals[0]);
  const images = await ctx.client().json<ImageSummary[]>('GET', '/images/json', {
    query: { all: flags.all || undefined, filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined },
  });
  const rows = imageRows(images, { digests: flags.digests, noTrunc: flags['no-trunc'] });
  ctx.stdout.write(renderImages(rows, { format: flags.format, quiet: flags.quiet, digests: flags.digests }));
  return 0;
}
