// `berth update` (also `container update`): change limits and the restart policy.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { forEachName, parseCpus, parseMemory, parseRestartPolicy, requireArgs } from '../containers';
import type { CliContext } from '../command';

const FLAGS = {
  'blkio-weight': { type: 'string', help: 'Block IO (relative weight), between 10 and 1000, or 0 to disable' },
  'cpu-period': { type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) period' },
  'cpu-quota': { type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
  'cpu-shares': { type: 'string', short: 'c', help: 'CPU shares (relative weight)' },
  cpus: { type: 'string', help: 'Number of CPUs' },
  'cpuset-cpus': { type: 'string', help: 'CPUs in which to allow execution (0-3, 0,1)' },
  'cpuset-mems': { type: 'string', help: 'MEMs in which to allow execution (0-3, 0,1)' },
  memory: { type: 'string', short: 'm', help: 'Memory limit' },
  'memory-reservation': { type: 'string', help: 'Memory soft limit' },
  'memory-swap': { type: 'string', help: "Swap limit equal to memory plus swap: -1 to enable unlimited swap" },
  'pids-limit': { type: 'string', help: 'Tune container pids limit (set -1 for unlimited)' },
  restart: { type: 'string', help: 'Restart policy to apply when a container exits' },
} as const satisfies FlagDefs;

export const summary = 'Update configuration of one or more containers';
export const usage = `Usage:  berth update [OPTIONS] CONTAINER [CONTAINER...]

${summary}

Aliases:
  berth container update, berth update

${formatFlagHelp(FLAGS)}`;

function int(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new BerthError('EINVAL', `invalid argument "${value}" for "--${flag}" flag`);
  return n;
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals, given } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1);
  if (given.size === 0) throw new BerthError('EINVAL', 'you must provide one or more flags when using this command');
  const body: Record<string, unknown> = {};
  if (flags.memory) body.Memory = parseMemory(flags.memory, '--memory');
  if (flags['memory-reservation']) body.MemoryReservation = parseMemory(flags['memory-reservation'], '--memory-reservation');
  if (flags['memory-swap']) body.MemorySwap = flags['memory-swap'] === '-1' ? -1 : parseMemory(flags['memory-swap'], '--memory-swap');
  if (flags.cpus) body.NanoCpus = parseCpus(flags.cpus);
  if (flags['cpuset-cpus'] !== undefined) body.CpusetCpus = flags['cpuset-cpus'];
  if (flags['cpuset-mems'] !== undefined) body.CpusetMems = flags['cpuset-mems'];
  for (const [flag, field] of [['cpu-shares', 'CpuShares'], ['cpu-period', 'CpuPeriod'], ['cpu-quota', 'CpuQuota'], ['pids-limit', 'PidsLimit'], ['blkio-weight', 'BlkioWeight']] as const) {
    const n = int(flags[flag], flag);
    if (n !== undefined) body[field] = n;
  }
  if (flags.restart) body.RestartPolicy = parseRestartPolicy(flags.restart);
  return forEachName(ctx, positionals, async (name) => {
    const result = await ctx.client().json<{ Warnings?: string[] | null }>('POST', `/containers/${name}/update`, { body });
    for (const w of result.Warnings ?? []) ctx.stderr.write(`${w}\n`);
    ctx.stdout.write(`${name}\n`);
  });
}
