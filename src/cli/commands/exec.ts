// `berth exec` (also `container exec`): create an exec, start it on a hijacked
// connection, and exit with its exit code. -d starts it detached.
import { BerthError } from '../../util/errors';
import { isDaemonError } from '../../api/client';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { hijack, startSession, startFailureCode } from '../attach';
import { isTerminal } from '../io';
import { printError, type CliContext } from '../command';

const FLAGS = {
  detach: { type: 'bool', short: 'd', help: 'Detached mode: run command in the background' },
  'detach-keys': { type: 'string', help: 'Override the key sequence for detaching a container' },
  env: { type: 'list', short: 'e', help: 'Set environment variables' },
  interactive: { type: 'bool', short: 'i', help: 'Keep STDIN open even if not attached' },
  privileged: { type: 'bool', help: 'Give extended privileges to the command' },
  tty: { type: 'bool', short: 't', help: 'Allocate a pseudo-TTY' },
  user: { type: 'string', short: 'u', help: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
  workdir: { type: 'string', short: 'w', help: 'Working directory inside the container' },
} as const satisfies FlagDefs;

export const summary = 'Execute a command in a running container';
export const passthrough = true;
export const usage = `Usage:  berth exec [OPTIONS] CONTAINER COMMAND [ARG...]

${summary}

Aliases:
  berth container exec, berth exec

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS, { stopAtPositional: true });
  if (positionals.length < 2) throw new BerthError('EINVAL', `"${ctx.commandName}" requires at least 2 arguments`);
  const [container, ...cmd] = positionals;
  const stdin = flags.interactive && !flags.detach;
  if (flags.tty && stdin && !isTerminal(process.stdin)) { ctx.stderr.write('the input device is not a TTY\n'); return 1; }
  const client = ctx.client();
  const output = process.stdout as NodeJS.WriteStream;
  const body: Record<string, unknown> = {
    User: flags.user ?? '', Privileged: flags.privileged, Tty: flags.tty, AttachStdin: stdin, AttachStdout: !flags.detach,
    AttachStderr: !flags.detach, Detach: flags.detach, Cmd: cmd, Env: flags.env, WorkingDir: flags.workdir ?? '',
  };
  if (flags['detach-keys']) body.DetachKeys = flags['detach-keys'];
  if (flags.tty && output.isTTY && output.rows) body.ConsoleSize = [output.rows, output.columns];
  const { Id: execId } = await client.json<{ Id: string }>('POST', `/containers/${container}/exec`, { body });

  if (flags.detach) {
    await client.request('POST', `/exec/${execId}/start`, { body: { Detach: true, Tty: flags.tty } });
    return 0;
  }
  let conn;
  try {
    conn = await hijack(ctx.host, `/exec/${execId}/start`, {}, { Detach: false, Tty: flags.tty });
  } catch (err) {
    if (!isDaemonError(err)) throw err;
    printError(ctx.stderr, err);
    return startFailureCode(err.message);
  }
  const session = startSession({
    conn, tty: flags.tty, stdin, stdout: ctx.stdout, stderr: ctx.stderr,
    resize: (rows, cols) => client.request('POST', `/exec/${execId}/resize`, { query: { h: rows, w: cols } }),
  });
  session.startResize();
  await session.done;
  session.cleanup();
  let info = await client.json<{ ExitCode: number | null; Running?: boolean }>('GET', `/exec/${execId}/json`);
  // The exit status may land a moment after the stream closes; still running after that means detached.
  for (let tries = 0; info.Running && tries < 20; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    info = await client.json('GET', `/exec/${execId}/json`);
  }
  if (info.Running) return 0;
  return info.ExitCode ?? 0;
}
