// `berth <command>`: global flags, then one command file loaded lazily from the table
// below. Errors are printed once here and turned into errors.ts exit codes.
import { exitCodeOf, toBerthError, isBerthError } from '../util/errors';
import { VERSION } from '../util/version';
import { ApiClient, DEFAULT_HOST, isDaemonError } from '../api/client';
import { parseFlags, formatFlagHelp, type FlagDefs } from './flags';
import { printError, type Command, type CliContext } from './command';

type CommandLoader = () => Promise<Command>;

/**
 * Every command. Keys are the words typed; docker's two-word forms ("image ls",
 * "system info") are just more keys pointing at the same file. Adding a command is
 * one file in commands/ plus one line here.
 */
export const COMMANDS: Record<string, CommandLoader> = {
  version: () => import('./commands/version'),
  api: () => import('./commands/api'),
  info: () => import('./commands/info'),
  'system info': () => import('./commands/info'),
  'system check': () => import('./commands/system-check'),
  pull: () => import('./commands/pull'),
  'image pull': () => import('./commands/pull'),
  images: () => import('./commands/images'),
  'image ls': () => import('./commands/images'),
  'image list': () => import('./commands/images'),
  rmi: () => import('./commands/rmi'),
  'image rm': () => import('./commands/rmi'),
  'image remove': () => import('./commands/rmi'),
  tag: () => import('./commands/tag'),
  'image tag': () => import('./commands/tag'),
  save: () => import('./commands/save'),
  'image save': () => import('./commands/save'),
  load: () => import('./commands/load'),
  'image load': () => import('./commands/load'),
  inspect: () => import('./commands/inspect'),
  'container inspect': () => import('./commands/inspect'),
  'image inspect': () => import('./commands/image-inspect'),
  history: () => import('./commands/image-history'),
  'image history': () => import('./commands/image-history'),
  'image prune': () => import('./commands/image-prune'),
  run: () => import('./commands/run'),
  'container run': () => import('./commands/run'),
  create: () => import('./commands/create'),
  'container create': () => import('./commands/create'),
  start: () => import('./commands/start'),
  'container start': () => import('./commands/start'),
  stop: () => import('./commands/stop'),
  'container stop': () => import('./commands/stop'),
  restart: () => import('./commands/restart'),
  'container restart': () => import('./commands/restart'),
  kill: () => import('./commands/kill'),
  'container kill': () => import('./commands/kill'),
  pause: () => import('./commands/pause'),
  'container pause': () => import('./commands/pause'),
  unpause: () => import('./commands/unpause'),
  'container unpause': () => import('./commands/unpause'),
  rm: () => import('./commands/rm'),
  'container rm': () => import('./commands/rm'),
  'container remove': () => import('./commands/rm'),
  ps: () => import('./commands/ps'),
  'container ls': () => import('./commands/ps'),
  'container list': () => import('./commands/ps'),
  'container ps': () => import('./commands/ps'),
  logs: () => import('./commands/logs'),
  'container logs': () => import('./commands/logs'),
  exec: () => import('./commands/exec'),
  'container exec': () => import('./commands/exec'),
  top: () => import('./commands/top'),
  'container top': () => import('./commands/top'),
  stats: () => import('./commands/stats'),
  'container stats': () => import('./commands/stats'),
  attach: () => import('./commands/attach'),
  'container attach': () => import('./commands/attach'),
  rename: () => import('./commands/rename'),
  'container rename': () => import('./commands/rename'),
  update: () => import('./commands/update'),
  'container update': () => import('./commands/update'),
  wait: () => import('./commands/wait'),
  'container wait': () => import('./commands/wait'),
  port: () => import('./commands/port'),
  'container port': () => import('./commands/port'),
  events: () => import('./commands/events'),
  'system events': () => import('./commands/events'),
  'container prune': () => import('./commands/container-prune'),
  cp: () => import('./commands/cp'),
  'container cp': () => import('./commands/cp'),
  export: () => import('./commands/export'),
  'container export': () => import('./commands/export'),
  diff: () => import('./commands/diff'),
  'container diff': () => import('./commands/diff'),
  'system df': () => import('./commands/system-df'),
  'network create': () => import('./commands/network-create'),
  'network ls': () => import('./commands/network-ls'),
  'network list': () => import('./commands/network-ls'),
  'network inspect': () => import('./commands/network-inspect'),
  'network rm': () => import('./commands/network-rm'),
  'network remove': () => import('./commands/network-rm'),
  'network connect': () => import('./commands/network-connect'),
  'network disconnect': () => import('./commands/network-disconnect'),
  'network prune': () => import('./commands/network-prune'),
  'volume ls': () => import('./commands/volume-ls'),
  'volume list': () => import('./commands/volume-ls'),
  'volume create': () => import('./commands/volume-create'),
  'volume inspect': () => import('./commands/volume-inspect'),
  'volume rm': () => import('./commands/volume-rm'),
  'volume remove': () => import('./commands/volume-rm'),
  'volume prune': () => import('./commands/volume-prune'),
  login: () => import('./commands/login'),
  logout: () => import('./commands/logout'),
  fleet: () => import('./commands/fleet'),
  stack: () => import('./commands/stack'),
};

const GLOBAL_FLAGS = {
  host: { type: 'string', short: 'H', valueName: 'unix:///PATH', help: `Daemon socket to connect to (default $BERTH_HOST or ${DEFAULT_HOST})` },
  help: { type: 'bool', help: 'Print usage' },
  version: { type: 'bool', short: 'v', help: 'Print version information and quit' },
} as const satisfies FlagDefs;

const GROUP_SUMMARIES: Record<string, string> = {
  container: 'Manage containers', image: 'Manage images', network: 'Manage networks',
  system: 'Manage berth', volume: 'Manage volumes',
};

/** Built from the table, so a new command shows up in --help without another edit. */
async function mainUsage(): Promise<string> {
  const rows: Array<[string, string]> = [];
  const groups = new Set<string>();
  for (const [name, load] of Object.entries(COMMANDS)) {
    if (!name.includes(' ')) rows.push([name, (await load()).summary ?? '']);
    else if (!Object.hasOwn(COMMANDS, name.split(' ')[0]!)) groups.add(name.split(' ')[0]!);
  }
  for (const group of groups) rows.push([group, GROUP_SUMMARIES[group] ?? `${group} commands`]);
  rows.push(['daemon', 'Run the berth daemon']);
  rows.sort((a, b) => a[0].localeCompare(b[0]));
  const width = Math.max(...rows.map(([name]) => name.length));
  return `Usage:  berth [OPTIONS] COMMAND

A small Docker-compatible container engine

${formatFlagHelp(GLOBAL_FLAGS)}
Commands:
${rows.map(([name, summary]) => `  ${name.padEnd(width)}   ${summary}`.trimEnd()).join('\n')}

Run 'berth COMMAND --help' for more information on a command.
`;
}

/** Finds the longest command key matching the leading words: "image ls" before "image". */
export function resolveCommand(words: readonly string[]): { name: string; rest: string[] } | undefined {
  for (let n = Math.min(2, words.length); n >= 1; n--) {
    const name = words.slice(0, n).join(' ');
    if (Object.hasOwn(COMMANDS, name)) return { name, rest: words.slice(n) };
  }
  return undefined;
}

export async function runCli(argv: string[], io: { stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream; env?: NodeJS.ProcessEnv } = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;

  let globals;
  try {
    globals = parseFlags(argv, GLOBAL_FLAGS, { stopAtPositional: true });
  } catch (err) {
    stderr.write(`berth: ${toBerthError(err).message}\nSee 'berth --help'.\n`);
    return exitCodeOf(err);
  }
  if (globals.flags.version) {
    stdout.write(`berth version ${VERSION}\n`);
    return 0;
  }
  const words = globals.positionals;
  if (words.length === 0) {
    stdout.write(await mainUsage());
    return 0;
  }
  const resolved = resolveCommand(words);
  if (!resolved) {
    stderr.write(`berth: '${words[0]}' is not a berth command.\nSee 'berth --help'\n`);
    return 2;
  }

  const host = globals.flags.host ?? (env.BERTH_HOST || DEFAULT_HOST);
  let client: ApiClient | undefined;
  const ctx: CliContext = {
    host,
    client: () => (client ??= new ApiClient({ host, headers: { 'User-Agent': `berth-cli/${VERSION}` } })),
    stdout,
    stderr,
    env,
    commandName: resolved.name,
  };

  const command = await COMMANDS[resolved.name]!();
  const endOfFlags = resolved.rest.indexOf('--');
  const flagArea = endOfFlags === -1 ? resolved.rest : resolved.rest.slice(0, endOfFlags);
  const wantsHelp = command.passthrough ? resolved.rest[0] === '--help' : flagArea.includes('--help');
  if (globals.flags.help || wantsHelp) {
    stdout.write(command.usage);
    return 0;
  }
  try {
    return await command.run(resolved.rest, ctx);
  } catch (err) {
    // Flag mistakes get docker's pointer to the usage text.
    if (isBerthError(err, 'EINVAL') && !isDaemonError(err)) {
      stderr.write(`berth ${resolved.name}: ${err.message}\nSee 'berth ${resolved.name} --help'.\n`);
      return exitCodeOf(err);
    }
    return printError(stderr, err);
  }
}
