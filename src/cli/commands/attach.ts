// `berth attach` (also `container attach`): local stdin, stdout and stderr to a running
// container; exits with the container's status once it exits.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { hijack, startSession } from '../attach';
import { isTerminal } from '../io';
import { readJson, requireArgs } from '../containers';
import { responseError } from '../progress';
import type { CliContext } from '../command';
import { finish, type WaitResult } from './run';

const FLAGS = {
  'detach-keys': { type: 'string', help: 'Override the key sequence for detaching a container' },
  'no-stdin': { type: 'bool', help: 'Do not attach STDIN' },
  'sig-proxy': { type: 'string', default: 'true', help: 'Proxy all received signals to the process (default true)', valueName: 'bool' },
} as const satisfies FlagDefs;

export const summary = "Attach local standard input, output, and error streams to a running container";
export const usage = `Usage:  berth attach [OPTIONS] CONTAINER

${summary}

Aliases:
  berth container attach, berth attach

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1, 1);
  const client = ctx.client();
  const info = await client.json<{ Id: string; Config?: { Tty?: boolean; OpenStdin?: boolean }; State?: { Running?: boolean; Paused?: boolean } }>('GET', `/containers/${positionals[0]}/json`);
  if (!info.State?.Running) throw new BerthError('ECONFLICT', 'You cannot attach to a stopped container, start it first');
  if (info.State?.Paused) throw new BerthError('ECONFLICT', 'You cannot attach to a paused container, unpause it first');
  const tty = info.Config?.Tty === true;
  const stdin = !flags['no-stdin'] && info.Config?.OpenStdin === true;
  if (tty && stdin && !isTerminal(process.stdin)) { ctx.stderr.write('the input device is not a TTY\n'); return 1; }
  const conn = await hijack(ctx.host, `/containers/${info.Id}/attach`, {
    stream: true, stdin, stdout: true, stderr: true, detachKeys: flags['detach-keys'] || undefined,
  });
  const waitRes = await client.raw('POST', `/containers/${info.Id}/wait`, { query: { condition: 'next-exit' } });
  if ((waitRes.statusCode ?? 0) >= 400) { conn.socket.destroy(); throw await responseError(waitRes); }
  const waited = readJson<WaitResult>(waitRes);
  waited.catch(() => {});
  const sigProxy = flags['sig-proxy'] !== 'false' && flags['sig-proxy'] !== '0';
  const session = startSession({
    conn, tty, stdin, stdout: ctx.stdout, stderr: ctx.stderr,
    resize: (rows, cols) => client.request('POST', `/containers/${info.Id}/resize`, { query: { h: rows, w: cols } }),
    proxySignal: sigProxy ? (signal) => client.request('POST', `/containers/${info.Id}/kill`, { query: { signal } }) : undefined,
  });
  session.startResize();
  await session.done;
  session.cleanup();
  return finish(ctx, info.Id, waited, () => waitRes.destroy());
}
