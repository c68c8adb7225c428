// `berth start` (also `container start`): starts each container; with -a, attaches
// first (and waits, as run does) and exits with the container's status.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { hijack, startSession } from '../attach';
import { forEachName, readJson, requireArgs } from '../containers';
import { responseError } from '../progress';
import type { CliContext } from '../command';
import { finish, type WaitResult } from './run';

const FLAGS = {
  attach: { type: 'bool', short: 'a', help: 'Attach STDOUT/STDERR and forward signals' },
  interactive: { type: 'bool', short: 'i', help: "Attach container's STDIN" },
  'detach-keys': { type: 'string', help: 'Override the key sequence for detaching a container' },
} as const satisfies FlagDefs;

export const summary = 'Start one or more stopped containers';
export const usage = `Usage:  berth start [OPTIONS] CONTAINER [CONTAINER...]

${summary}

Aliases:
  berth container start, berth start

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1);
  const client = ctx.client();
  if (!flags.attach && !flags.interactive) {
    return forEachName(ctx, positionals, async (name) => {
      await client.request('POST', `/containers/${name}/start`);
      ctx.stdout.write(`${name}\n`);
    });
  }
  if (positionals.length > 1) throw new BerthError('EINVAL', 'you cannot start and attach multiple containers at once');
  const name = positionals[0]!;
  const info = await client.json<{ Id: string; Config?: { Tty?: boolean } }>('GET', `/containers/${name}/json`);
  const tty = info.Config?.Tty === true;
  const conn = await hijack(ctx.host, `/containers/${info.Id}/attach`, {
    stream: true, stdin: flags.interactive, stdout: true, stderr: true, detachKeys: flags['detach-keys'] || undefined,
  });
  const waitRes = await client.raw('POST', `/containers/${info.Id}/wait`, { query: { condition: 'next-exit' } });
  if ((waitRes.statusCode ?? 0) >= 400) { conn.socket.destroy(); throw await responseError(waitRes); }
  const waited = readJson<WaitResult>(waitRes);
  waited.catch(() => {});
  const session = startSession({
    conn, tty, stdin: flags.interactive, stdout: ctx.stdout, stderr: ctx.stderr,
    resize: (rows, cols) => client.request('POST', `/containers/${info.Id}/resize`, { query: { h: rows, w: cols } }),
    proxySignal: (signal) => client.request('POST', `/containers/${info.Id}/kill`, { query: { signal } }),
  });
  try {
    await client.request('POST', `/containers/${info.Id}/start`);
  } catch (err) {
    session.cleanup();
    conn.socket.destroy();
    waitRes.destroy();
    throw err;
  }
  session.startResize();
  await session.done;
  session.cleanup();
  return finish(ctx, info.Id, waited, () => waitRes.destroy());
}
