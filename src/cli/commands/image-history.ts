// `berth image history` (also `history`): the image's layers, newest first, as docker's table.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { formatTable, humanSize, isJsonFormat, renderFormat, shortId, timeAgo } from '../format';
import type { CliContext } from '../command';

const FLAGS = {
  format: { type: 'string', help: "Format output using a template ('{{json .}}', '{{.CreatedBy}}')" },
  human: { type: 'bool', short: 'H', help: 'Print sizes and dates in human readable format (default true; --human=false to turn off)' },
  'no-trunc': { type: 'bool', help: "Don't truncate output" },
  quiet: { type: 'bool', short: 'q', help: 'Only show image IDs' },
} as const satisfies FlagDefs;

export const summary = 'Show the history of an image';
export const usage = `Usage:  berth image history [OPTIONS] IMAGE

${summary}

${formatFlagHelp(FLAGS)}`;

interface HistoryItem {
  Id: string;
  Created: number;
  CreatedBy: string;
  Tags: string[] | null;
  Size: number;
  Comment: string;
}

const CREATED_BY_WIDTH = 45;

/** Docker's Ellipsis: cut to a width in characters, the last one an ellipsis. */
function ellipsis(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : chars.slice(0, width - 1).join('') + '…';
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, given, positionals } = parseFlags(args, FLAGS);
  if (positionals.length !== 1) throw new BerthError('EINVAL', `"history" requires exactly 1 argument`);
  const human = !given.has('human') || flags.human;
  const items = await ctx.client().json<HistoryItem[]>('GET', `/images/${positionals[0]}/history`);
  const rows = items.map((h) => {
    const createdBy = h.CreatedBy.replace(/\t/g, ' ');
    return {
      ID: h.Id === '<missing>' ? '<missing>' : flags['no-trunc'] ? h.Id : shortId(h.Id),
      CreatedSince: human ? timeAgo(h.Created) : new Date(h.Created * 1000).toISOString(),
      CreatedAt: new Date(h.Created * 1000).toISOString(),
      CreatedBy: flags['no-trunc'] ? createdBy : ellipsis(createdBy, CREATED_BY_WIDTH),
      Size: human ? humanSize(h.Size) : String(h.Size),
      Comment: h.Comment,
    };
  });
  if (flags.quiet) {
    ctx.stdout.write(rows.map((r) => `${r.ID}\n`).join(''));
  } else if (flags.format !== undefined) {
    ctx.stdout.write(rows.map((r) => (isJsonFormat(flags.format) ? JSON.stringify(r) : renderFormat(flags.format!, r)) + '\n').join(''));
  } else {
    ctx.stdout.write(formatTable(['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], rows.map((r) => [r.ID, r.CreatedSince, r.CreatedBy, r.Size, r.Comment])));
  }
  return 0;
}
