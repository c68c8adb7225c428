// `berth login`: checks credentials through the daemon (POST /auth), then stores them in
// config.json the way docker does, so later pulls send them as X-Registry-Auth.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { findCredentials, readConfig, configPath, saveCredentials, serverKey, hostnameOf } from '../credentials';
import { promptHidden, promptLine, readStdinText } from '../io';
import type { CliContext } from '../command';

const FLAGS = {
  password: { type: 'string', short: 'p', help: 'Password' },
  'password-stdin': { type: 'bool', help: 'Take the password from stdin' },
  username: { type: 'string', short: 'u', help: 'Username' },
} as const satisfies FlagDefs;

export const summary = 'Log in to a registry';
export const usage = `Usage:  berth login [OPTIONS] [SERVER]

Log in to a registry.
If no server is specified, the default is Docker Hub (docker.io).

${formatFlagHelp(FLAGS)}`;

interface AuthResponse {
  Status?: string;
  IdentityToken?: string;
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length > 1) throw new BerthError('EINVAL', `"login" requires at most 1 argument`);
  const key = serverKey(positionals[0]);

  let username = flags.username;
  let password = flags.password;
  if (password !== undefined) ctx.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  if (flags['password-stdin']) {
    if (password !== undefined) throw new BerthError('EINVAL', '--password and --password-stdin are mutually exclusive');
    if (!username) throw new BerthError('EINVAL', 'Must provide --username with --password-stdin');
    password = (await readStdinText()).replace(/\r?\n$/, '');
  }
  if (username === undefined && password === undefined) {
    // Like docker: a plain `login` first tries what is already stored.
    const stored = findCredentials(await readConfig(configPath(ctx.env)), hostnameOf(key) === 'docker.io' ? 'docker.io' : key);
    if (stored?.username) { username = stored.username; password = stored.password; }
  }
  if (!username) {
    if (!process.stdin.isTTY) throw new BerthError('EINVAL', 'Cannot perform an interactive login from a non TTY device');
    username = (await promptLine(ctx.stdout, 'Username: ')).trim();
    if (!username) throw new BerthError('EINVAL', 'Username is required');
  }
  if (password === undefined || password === '') {
    if (!process.stdin.isTTY) throw new BerthError('EINVAL', 'Cannot perform an interactive login from a non TTY device');
    password = await promptHidden(ctx.stdout, 'Password: ');
    if (!password) throw new BerthError('EINVAL', 'Password is required');
  }

  const reply = await ctx.client().json<AuthResponse>('POST', '/auth', {
    body: { username, password, serveraddress: key },
  });
  const path = await saveCredentials(ctx.env, key, { username, password, ...(reply.IdentityToken ? { identityToken: reply.IdentityToken } : {}) });
  ctx.stderr.write(`WARNING! Your credentials are stored unencrypted in '${path}'.\n\n`);
  ctx.stdout.write(`${reply.Status || 'Login Succeeded'}\n`);
  return 0;
}
