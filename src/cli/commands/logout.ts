// `berth logout`: forgets the stored credentials for a registry (Docker Hub by default).
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { removeCredentials, serverKey } from '../credentials';
import type { CliContext } from '../command';

const FLAGS = {} as const satisfies FlagDefs;

export const summary = 'Log out from a registry';
export const usage = `Usage:  berth logout [SERVER]

Log out from a registry.
If no server is specified, the default is Docker Hub (docker.io).
${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, FLAGS);
  if (positionals.length > 1) throw new BerthError('EINVAL', `"logout" requires at most 1 argument`);
  const key = serverKey(positionals[0]);
  if (!(await removeCredentials(ctx.env, positionals[0]))) {
    ctx.stdout.write(`Not logged in to ${key}\n`);
    return 0;
  }
  ctx.stdout.write(`Removing login credentials for ${key}\n`);
  return 0;
}
