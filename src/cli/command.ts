// The contract between src/cli/main.ts and one command file in src/cli/commands/.
import { isDaemonError, type ApiClient } from '../api/client';
import { exitCodeOf, toBerthError } from '../util/errors';

export interface CliContext {
  /** The daemon address in use (from -H, BERTH_HOST, or the default). */
  host: string;
  /** The API client, created on first use so commands that need no daemon never connect. */
  client(): ApiClient;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** The words that named the command, e.g. "image ls", for messages. */
  commandName: string;
}

export interface Command {
  /** Full usage text printed by `--help`, ending with a newline. */
  usage: string;
  /** One line for the command list in `berth --help`. */
  summary?: string;
  /**
   * Set for commands whose trailing arguments belong to something else (`run IMAGE CMD...`):
   * then `--help` counts only as the first argument, not anywhere.
   */
  passthrough?: boolean;
  /** Arguments after the command words; parse them with parseFlags. */
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** Writes text, adding a newline unless it has one. */
export function println(stream: NodeJS.WritableStream, text = ''): void {
  stream.write(text.endsWith('\n') ? text : text + '\n');
}

/** Prints an error the way docker does and returns its exit code from errors.ts. */
export function printError(stderr: NodeJS.WritableStream, err: unknown): number {
  const e = toBerthError(err);
  if (isDaemonError(e)) stderr.write(`Error response from daemon: ${e.message}\n`);
  else if (e.code === 'ECONNECT') stderr.write(`${e.message}\n`);
  else stderr.write(`berth: ${e.message}\n`);
  return exitCodeOf(e);
}
