// `berth image inspect` and `berth inspect`: GET /images/{name}/json for each name,
// printed as docker does (a JSON array indented by 4 spaces, or one -f template per image).
// Missing names are reported after the others are printed, and make the exit non-zero.
import { BerthError, exitCodeOf } from '../../util/errors';
import { isDaemonError } from '../../api/client';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { renderFormat } from '../format';
import { printError, type CliContext } from '../command';

const FLAGS = {
  format: { type: 'string', short: 'f', help: "Format output using a template ('{{json .}}', '{{.Architecture}}')" },
  type: { type: 'string', help: 'Return JSON for specified type (only "image" so far)' },
} as const satisfies FlagDefs;

export const summary = 'Return low-level information on objects';
export const usage = `Usage:  berth inspect [OPTIONS] NAME|ID [NAME|ID...]

${summary} (images)

${formatFlagHelp(FLAGS)}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length === 0) throw new BerthError('EINVAL', `"${ctx.commandName}" requires at least 1 argument`);
  const imageOnly = ctx.commandName === 'image inspect';
  if (flags.type !== undefined && flags.type !== 'image') throw new BerthError('EINVAL', `"${flags.type}" is not a valid value for --type`);
  // `docker inspect` looks through every object kind and says "object"; berth has images only.
  const noun = imageOnly || flags.type === 'image' ? 'image' : 'object';

  const found: unknown[] = [];
  const failures: BerthError[] = [];
  for (const name of positionals) {
    try {
      found.push(await ctx.client().json('GET', `/images/${name}/json`));
    } catch (err) {
      if (isDaemonError(err) && err.status === 404) failures.push(new BerthError('ENOIMAGE', `No such ${noun}: ${name}`));
      else if (err instanceof BerthError && err.code === 'ECONNECT') throw err;
      else failures.push(err as BerthError);
    }
  }

  if (flags.format !== undefined) {
    for (const item of found) ctx.stdout.write(renderFormat(flags.format, item) + '\n');
  } else {
    ctx.stdout.write(JSON.stringify(found, null, 4) + '\n');
  }
  let exitCode = 0;
  for (const err of failures) {
    if (isDaemonError(err)) exitCode ||= printError(ctx.stderr, err);
    else { ctx.stderr.write(`Error: ${err.message}\n`); exitCode ||= exitCodeOf(err); }
  }
  return exitCode;
}
