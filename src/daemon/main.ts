// `berth daemon`: parse the configuration, start, run until SIGTERM/SIGINT, shut down
// cleanly. Returns the process exit code; failures print one line and use errors.ts codes.
import { exitCodeOf, toBerthError } from '../util/errors';
import { logger, setLogLevel, setLogSink } from '../util/log';
import { VERSION } from '../util/version';
import { loadDaemonConfig, DAEMON_USAGE } from './config';
import { startDaemon } from './daemon';

const log = logger('daemon');

function fail(err: unknown): number {
  const e = toBerthError(err);
  process.stderr.write(`berth daemon: ${e.message}\n`);
  if (e.code === 'EINTERNAL' && e.cause instanceof Error && e.cause.stack) log.debug(e.cause.stack);
  return exitCodeOf(e);
}

export async function runDaemon(argv: string[]): Promise<number> {
  let command;
  try {
    command = loadDaemonConfig(argv);
  } catch (err) {
    return fail(err);
  }
  if (command.kind === 'help') {
    process.stdout.write(DAEMON_USAGE);
    return 0;
  }
  const { config } = command;
  setLogLevel(config.logLevel);

  // With its output pipe gone (a supervisor gone, a closed terminal), a log line must not
  // raise an error that is itself logged, round and round: drop log lines instead.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => setLogSink(() => {}));

  // A stray rejection or throw from a request's background work must not take the
  // whole API (and with it every container's management) down.
  process.on('unhandledRejection', (reason) => log.error('unhandled rejection', { error: String((reason as Error)?.stack ?? reason) }));
  process.on('uncaughtException', (err) => log.error('uncaught exception', { error: String(err?.stack ?? err) }));

  let daemon;
  try {
    daemon = await startDaemon(config);
  } catch (err) {
    return fail(err);
  }
  log.info('berth daemon started', { version: VERSION, pid: process.pid, dataRoot: config.dataRoot });

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('shutting down', { signal });
  // A second signal while draining cuts the grace period short.
  const hurry = (): void => { void daemon.close(0); };
  process.once('SIGTERM', hurry);
  process.once('SIGINT', hurry);
  try {
    await daemon.close();
  } catch (err) {
    return fail(err);
  }
  log.info('stopped');
  return 0;
}
