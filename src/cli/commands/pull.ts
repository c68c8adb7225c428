// `berth pull` (also `image pull`): POST /images/create with stored credentials, drawn
// like `docker pull`, ending with the fully qualified reference.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { authHeaderFor } from '../credentials';
import { fullyQualified, hasNoTagOrDigest, splitReference } from '../reference';
import { ProgressPrinter, displayStream, responseError } from '../progress';
import { isTerminal } from '../io';
import type { CliContext } from '../command';

const FLAGS = {
  platform: { type: 'string', help: 'Set platform if server is multi-platform capable (e.g. linux/arm/v7)' },
  quiet: { type: 'bool', short: 'q', help: 'Suppress verbose output' },
  'all-tags': { type: 'bool', short: 'a', help: 'Download all tagged images in the repository (not supported)', hidden: true },
} as const satisfies FlagDefs;

export const summary = 'Download an image from a registry';
export const usage = `Usage:  berth pull [OPTIONS] NAME[:TAG|@DIGEST]

${summary}

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length !== 1) throw new BerthError('EINVAL', `"pull" requires exactly 1 argument`);
  if (flags['all-tags']) throw new BerthError('EUNSUPPORTED', 'pulling all tags (-a) is not supported');
  const name = positionals[0]!;
  const ref = splitReference(name);
  const quiet = flags.quiet;

  if (!quiet && hasNoTagOrDigest(name)) ctx.stdout.write('Using default tag: latest\n');
  const auth = await authHeaderFor(ctx.env, ref.domain);
  const repository = `${ref.domain}/${ref.path}`;
  const res = await ctx.client().raw('POST', '/images/create', {
    query: { fromImage: repository, tag: ref.digest ?? ref.tag ?? 'latest', platform: flags.platform || undefined },
    headers: auth ? { 'X-Registry-Auth': auth } : {},
  });
  if ((res.statusCode ?? 0) >= 400) throw await responseError(res);

  const tty = isTerminal(ctx.stdout);
  const printer = quiet ? undefined : new ProgressPrinter(ctx.stdout, tty, (ctx.stdout as { columns?: number }).columns);
  await displayStream(res, printer);
  ctx.stdout.write(`${fullyQualified(name)}\n`);
  return 0;
}
