// `berth inspect`: containers first, then images, as docker looks objects up.
// `container inspect` looks at containers only; `image inspect` stays in image-inspect.ts.
import { BerthError, exitCodeOf } from '../../util/errors';
import { isDaemonError } from '../../api/client';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { renderFormat } from '../format';
import { printError, type CliContext } from '../command';

const FLAGS = {
  format: { type: 'string', short: 'f', help: "Format output using a template ('{{json .}}', '{{.State.Status}}')" },
  size: { type: 'bool', short: 's', help: 'Display total file sizes if the type is container' },
  type: { type: 'string', help: 'Return JSON for specified type (container, image)' },
} as const satisfies FlagDefs;

export const summary = 'Return low-level information on objects';
export const usage = `Usage:  berth inspect [OPTIONS] NAME|ID [NAME|ID...]

${summary}

${formatFlagHelp(FLAGS)}`;

type Kind = 'container' | 'image';

async function lookup(ctx: CliContext, name: string, kinds: Kind[], size: boolean): Promise<unknown | undefined> {
  for (const kind of kinds) {
    try {
      const path = kind === 'container' ? `/containers/${encodeURIComponent(name)}/json` : `/images/${name}/json`;
      return await ctx.client().json('GET', path, { query: kind === 'container' && size ? { size: true } : undefined });
    } catch (err) {
      if (isDaemonError(err) && err.status === 404) continue;
      throw err;
    }
  }
  return undefined;
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length === 0) throw new BerthError('EINVAL', `"${ctx.commandName}" requires at least 1 argument`);
  const onlyContainers = ctx.commandName === 'container inspect' || flags.type === 'container';
  if (flags.type !== undefined && flags.type !== 'container' && flags.type !== 'image') throw new BerthError('EINVAL', `"${flags.type}" is not a valid value for --type`);
  const kinds: Kind[] = onlyContainers ? ['container'] : flags.type === 'image' ? ['image'] : ['container', 'image'];
  const noun = onlyContainers ? 'container' : flags.type === 'image' ? 'image' : 'object';

  const found: unknown[] = [];
  const failures: unknown[] = [];
  for (const name of positionals) {
    try {
      const item = await lookup(ctx, name, kinds, flags.size);
      if (item === undefined) failures.push(new BerthError('ENOTFOUND', `No such ${noun}: ${name}`));
      else found.push(item);
    } catch (err) {
      if (err instanceof BerthError && err.code === 'ECONNECT') throw err;
      failures.push(err);
    }
  }
  if (flags.format !== undefined) for (const item of found) ctx.stdout.write(renderFormat(flags.format, item) + '\n');
  else ctx.stdout.write(JSON.stringify(found, null, 4) + '\n');
  let exitCode = 0;
  for (const err of failures) {
    if (isDaemonError(err)) exitCode ||= printError(ctx.stderr, err);
    else { ctx.stderr.write(`Error: ${(err as Error).message}\n`); exitCode ||= exitCodeOf(err); }
  }
  return exitCode;
}
