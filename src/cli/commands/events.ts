// `berth events` (also `system events`): the daemon's event stream, printed like
// docker's: "TIME TYPE ACTION ID (k=v, ...)" or through --format.
import { BerthError } from '../../util/errors';
import { parseFilterFlags, parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { isJsonFormat, renderFormat } from '../format';
import { parseSinceUntil } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  filter: { type: 'list', short: 'f', help: 'Filter output based on conditions provided' },
  format: { type: 'string', help: "Format output using a template ('json', TEMPLATE)" },
  since: { type: 'string', help: 'Show all events created since timestamp' },
  until: { type: 'string', help: 'Stream events until this timestamp' },
} as const satisfies FlagDefs;

export const summary = 'Get real time events from the server';
export const usage = `Usage:  berth events [OPTIONS]

${summary}

Aliases:
  berth system events, berth events

${formatFlagHelp(FLAGS)}`;

interface EventMessage { Type: string; Action: string; Actor: { ID: string; Attributes?: Record<string, string> }; time: number; timeNano?: number }

/** RFC 3339 with nanoseconds in local time, as docker prints event times. */
function eventTime(e: EventMessage): string {
  const nanos = e.timeNano ?? e.time * 1e9;
  const d = new Date(Math.floor(nanos / 1e6));
  const offset = -d.getTimezoneOffset();
  const local = new Date(d.getTime() + offset * 60_000).toISOString().slice(0, 19);
  const frac = String(Math.round(nanos % 1e9)).padStart(9, '0');
  const sign = offset >= 0 ? '+' : '-';
  const abs = Math.abs(offset);
  return `${local}.${frac}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

export function formatEvent(e: EventMessage): string {
  const attrs = Object.entries(e.Actor.Attributes ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`);
  return `${eventTime(e)} ${e.Type} ${e.Action} ${e.Actor.ID}${attrs.length ? ` (${attrs.join(', ')})` : ''}`;
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', `"${ctx.commandName}" accepts no arguments`);
  const filters = parseFilterFlags(flags.filter);
  const format = flags.format === 'json' ? '{{json .}}' : flags.format;
  const stream = ctx.client().stream<EventMessage>('GET', '/events', {
    query: { since: parseSinceUntil(flags.since), until: parseSinceUntil(flags.until), filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined },
  });
  for await (const e of stream) {
    if (format === undefined) ctx.stdout.write(`${formatEvent(e)}\n`);
    else ctx.stdout.write(`${isJsonFormat(format) ? JSON.stringify(e) : renderFormat(format, e)}\n`);
  }
  return 0;
}
