// `berth tag` (also `image tag`): POST /images/{source}/tag?repo=&tag=.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { splitRepoTag } from '../reference';
import type { CliContext } from '../command';

const FLAGS = {} as const satisfies FlagDefs;

export const summary = 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE';
export const usage = `Usage:  berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]

${summary}

Aliases:
  berth image tag, berth tag
${formatFlagHelp(FLAGS) ? `\n${formatFlagHelp(FLAGS)}` : ''}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, FLAGS);
  if (positionals.length !== 2) throw new BerthError('EINVAL', `"tag" requires exactly 2 arguments`);
  const [source, target] = positionals as [string, string];
  if (target.includes('@')) throw new BerthError('EINVAL', `refusing to create a tag with a digest reference`);
  const { repo, tag } = splitRepoTag(target);
  await ctx.client().request('POST', `/images/${source}/tag`, { query: { repo, tag: tag ?? 'latest' } });
  return 0;
}
