// `berth logs` (also `container logs`): output demultiplexed to stdout and stderr
// (raw for TTY containers); -f follows until the container stops.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { FrameDemuxer } from '../attach';
import { parseSinceUntil, requireArgs } from '../containers';
import { responseError } from '../progress';
import type { CliContext } from '../command';

const FLAGS = {
  details: { type: 'bool', help: 'Show extra details provided to logs' },
  follow: { type: 'bool', short: 'f', help: 'Follow log output' },
  since: { type: 'string', help: 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
  tail: { type: 'string', short: 'n', default: 'all', help: 'Number of lines to show from the end of the logs' },
  timestamps: { type: 'bool', short: 't', help: 'Show timestamps' },
  until: { type: 'string', help: 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
} as const satisfies FlagDefs;

export const summary = 'Fetch the logs of a container';
export const usage = `Usage:  berth logs [OPTIONS] CONTAINER

${summary}

Aliases:
  berth container logs, berth logs

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1, 1);
  const client = ctx.client();
  // Config.Tty decides whether the stream is framed, as docker's client decides it.
  const info = await client.json<{ Id: string; Config?: { Tty?: boolean } }>('GET', `/containers/${positionals[0]}/json`);
  const res = await client.raw('GET', `/containers/${info.Id}/logs`, {
    query: {
      stdout: true, stderr: true, follow: flags.follow || undefined, timestamps: flags.timestamps || undefined,
      tail: flags.tail, since: parseSinceUntil(flags.since), until: parseSinceUntil(flags.until),
    },
  });
  if ((res.statusCode ?? 0) >= 400) throw await responseError(res);
  const demux = info.Config?.Tty ? undefined : new FrameDemuxer(ctx.stdout, ctx.stderr);
  for await (const chunk of res) {
    if (demux) demux.push(chunk as Buffer);
    else ctx.stdout.write(chunk as Buffer);
  }
  return 0;
}
