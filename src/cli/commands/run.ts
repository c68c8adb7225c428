// `berth run` (also `container run`): create (pulling on "No such image"), attach and
// wait BEFORE start so no output and no exit is missed, start, then exit with the
// container's status. -d prints the id instead.
import { BerthError } from '../../util/errors';
import { isDaemonError } from '../../api/client';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { hijack, startSession, startFailureCode } from '../attach';
import { isTerminal } from '../io';
import { readJson } from '../containers';
import { responseError } from '../progress';
import { printError, type CliContext } from '../command';
import { CREATE_FLAGS, buildCreateRequest, createContainer } from './create';

const FLAGS = {
  ...CREATE_FLAGS,
  detach: { type: 'bool', short: 'd', help: 'Run container in background and print container ID' },
  'detach-keys': { type: 'string', help: 'Override the key sequence for detaching a container' },
  'sig-proxy': { type: 'string', default: 'true', help: 'Proxy received signals to the process (default true)', valueName: 'bool' },
} as const satisfies FlagDefs;

export const summary = 'Create and run a new container from an image';
export const passthrough = true;
export const usage = `Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]

${summary}

Aliases:
  berth container run, berth run

${formatFlagHelp(FLAGS)}`;

export interface WaitResult { StatusCode: number; Error?: { Message?: string } | null }

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS, { stopAtPositional: true });
  if (positionals.length < 1) throw new BerthError('EINVAL', `"${ctx.commandName}" requires at least 1 argument`);
  const [image, ...command] = positionals;
  const detach = flags.detach;
  const stdin = flags.interactive && !detach;
  if (flags.tty && stdin && !isTerminal(process.stdin)) {
    ctx.stderr.write('the input device is not a TTY\n');
    return 1;
  }
  if (detach && flags.rm && flags.restart !== 'no') throw new BerthError('EINVAL', 'Conflicting options: --restart and --rm');
  const plan = buildCreateRequest(flags, image!, command, ctx.env, { stdin, output: !detach, autoRemove: flags.rm });
  const client = ctx.client();
  let created: { Id: string };
  try {
    created = await createContainer(ctx, plan, flags.pull ?? 'missing', flags.quiet);
  } catch (err) {
    if (!isDaemonError(err)) throw err;
    printError(ctx.stderr, err);
    return 125;
  }
  const id = created.Id;

  if (detach) {
    try {
      await client.request('POST', `/containers/${id}/start`);
    } catch (err) {
      if (!isDaemonError(err)) throw err;
      printError(ctx.stderr, err);
      return startFailureCode(err.message);
    }
    ctx.stdout.write(`${id}\n`);
    return 0;
  }

  const conn = await hijack(ctx.host, `/containers/${id}/attach`, {
    stream: true, stdin, stdout: true, stderr: true, detachKeys: flags['detach-keys'] || undefined,
  });
  // The daemon answers wait's headers as soon as the wait is registered; the body comes at exit.
  const waitRes = await client.raw('POST', `/containers/${id}/wait`, { query: { condition: flags.rm ? 'removed' : 'next-exit' } });
  if ((waitRes.statusCode ?? 0) >= 400) { conn.socket.destroy(); throw await responseError(waitRes); }
  const waited = readJson<WaitResult>(waitRes);
  waited.catch(() => {});

  const sigProxy = flags['sig-proxy'] !== 'false' && flags['sig-proxy'] !== '0';
  const session = startSession({
    conn,
    tty: flags.tty,
    stdin,
    stdout: ctx.stdout,
    stderr: ctx.stderr,
    resize: (rows, cols) => client.request('POST', `/containers/${id}/resize`, { query: { h: rows, w: cols } }),
    proxySignal: sigProxy ? (signal) => client.request('POST', `/containers/${id}/kill`, { query: { signal } }) : undefined,
  });
  try {
    await client.request('POST', `/containers/${id}/start`);
  } catch (err) {
    session.cleanup();
    conn.socket.destroy();
    waitRes.destroy();
    if (!isDaemonError(err)) throw err;
    printError(ctx.stderr, err);
    return startFailureCode(err.message);
  }
  session.startResize();
  await session.done;
  session.cleanup();
  return finish(ctx, id, waited, () => waitRes.destroy());
}

/**
 * The output stream has ended: either the container exited (its status follows at
 * once on the wait response) or the user detached with the detach keys.
 */
export async function finish(ctx: CliContext, id: string, waited: Promise<WaitResult>, abandonWait: () => void): Promise<number> {
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 1500).unref());
  let result = await Promise.race([waited, timeout]);
  if (result === 'timeout') {
    const state = await ctx.client().json<{ State?: { Running?: boolean } }>('GET', `/containers/${id}/json`).catch(() => undefined);
    // Detached: the container runs on, and the pending wait must not keep us alive.
    if (state?.State?.Running) { abandonWait(); return 0; }
    result = await waited;
  }
  if (result.Error?.Message) ctx.stderr.write(`Error: ${result.Error.Message}\n`);
  return result.StatusCode;
}
