// `berth network create`: a user-defined bridge network.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { requireArgs } from '../containers';
import { BerthError } from '../../util/errors';
import type { CliContext } from '../command';

const FLAGS = {
  driver: { type: 'string', short: 'd', help: 'Driver to manage the Network (only "bridge")' },
  subnet: { type: 'string', help: 'Subnet in CIDR format, e.g. 10.89.7.0/24 (default: a free /24 of 10.89.0.0/16)' },
  gateway: { type: 'string', help: 'IPv4 gateway for the subnet (default: its first address)' },
  internal: { type: 'bool', help: 'Restrict external access to the network' },
  label: { type: 'list', help: 'Set metadata on a network' },
  opt: { type: 'list', short: 'o', help: 'Set driver specific options (com.docker.network.bridge.name=NAME)' },
} as const satisfies FlagDefs;

export const summary = 'Create a network';
export const usage = `Usage:  berth network create [OPTIONS] NETWORK

${summary}

${formatFlagHelp(FLAGS)}`;

function keyValues(list: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0 && flag === '--opt') throw new BerthError('EINVAL', `invalid argument "${item}" for "${flag}" flag: expected key=value`);
    if (eq < 0) out[item] = ''; else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  requireArgs(ctx, positionals, 1, 1);
  if (flags.gateway && !flags.subnet) throw new BerthError('EINVAL', 'a gateway needs a --subnet');
  const created = await ctx.client().json<{ Id: string }>('POST', '/networks/create', {
    body: {
      Name: positionals[0], Driver: flags.driver ?? 'bridge', Internal: flags.internal, CheckDuplicate: true,
      Labels: keyValues(flags.label, '--label'), Options: keyValues(flags.opt, '--opt'),
      IPAM: { Driver: 'default', Config: flags.subnet ? [{ Subnet: flags.subnet, ...(flags.gateway ? { Gateway: flags.gateway } : {}) }] : [] },
    },
  });
  ctx.stdout.write(`${created.Id}\n`);
  return 0;
}
