// docker's `<object> inspect`: GET each named object, then print them as one JSON array
// (4-space indent, as docker does) or one `-f` template line each. Failures print and
// set the exit code, the rest are still shown.
import { renderFormat } from './format';
import { printError, type CliContext } from './command';

export async function printInspected(ctx: CliContext, names: string[], format: string | undefined, pathOf: (name: string) => string): Promise<number> {
  const found: unknown[] = [];
  let code = 0;
  for (const name of names) {
    try { found.push(await ctx.client().json('GET', pathOf(name))); } catch (err) { code ||= printError(ctx.stderr, err); }
  }
  if (format !== undefined) for (const obj of found) ctx.stdout.write(renderFormat(format, obj) + '\n');
  else ctx.stdout.write(JSON.stringify(found, null, 4) + '\n');
  return code;
}
