// `berth system check [--repair]`: the daemon's store fsck (re-hash blobs, find broken
// images, dangling tags, leftovers). Exit 0 when clean, ECORRUPT's code when not.
import { BerthError, ERROR_CODES } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import type { CliContext } from '../command';

const FLAGS = {
  repair: { type: 'bool', help: 'Remove what is broken (corrupt blobs, unrunnable images, dangling tags, temp files)' },
} as const satisfies FlagDefs;

export const summary = 'Check the image store for damage';
export const usage = `Usage:  berth system check [OPTIONS]

Check the image store for damage. Exits 0 when nothing is wrong (or, with --repair,
when everything found was repaired) and ${ERROR_CODES.ECORRUPT.exit} otherwise.

${formatFlagHelp(FLAGS)}`;

export interface Problem {
  kind: string;
  path: string;
  detail: string;
  repaired?: boolean;
}

export function renderProblems(problems: Problem[]): string {
  let out = '';
  for (const p of problems) out += `${p.kind}: ${p.path}: ${p.detail}${p.repaired ? ' (repaired)' : ''}\n`;
  const n = problems.length;
  if (n === 0) return 'no problems found\n';
  const repaired = problems.filter((p) => p.repaired).length;
  out += `${n} problem${n === 1 ? '' : 's'} found${repaired ? `, ${repaired} repaired` : ''}\n`;
  return out;
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', `"system check" accepts no arguments`);
  const report = await ctx.client().json<{ Problems?: Problem[] | null }>('POST', '/system/check', { query: { repair: flags.repair || undefined } });
  const problems = report.Problems ?? [];
  ctx.stdout.write(renderProblems(problems));
  return problems.some((p) => !p.repaired) ? ERROR_CODES.ECORRUPT.exit : 0;
}
