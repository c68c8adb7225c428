// `berth port` (also `container port`): published ports from inspect.
import { BerthError } from '../../util/errors';
import { parseFlags } from '../flags';
import { requireArgs } from '../containers';
import type { CliContext } from '../command';

export const summary = 'List port mappings or a specific mapping for the container';
export const usage = `Usage:  berth port CONTAINER [PRIVATE_PORT[/PROTO]]

${summary}
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, {});
  requireArgs(ctx, positionals, 1, 2);
  const info = await ctx.client().json<{ NetworkSettings?: { Ports?: Record<string, Array<{ HostIp: string; HostPort: string }> | null> } }>('GET', `/containers/${positionals[0]}/json`);
  const ports = info.NetworkSettings?.Ports ?? {};
  const hostAddress = (b: { HostIp: string; HostPort: string }): string => `${b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp || '0.0.0.0'}:${b.HostPort}`;
  if (positionals[1] !== undefined) {
    const key = positionals[1].includes('/') ? positionals[1] : `${positionals[1]}/tcp`;
    const bindings = ports[key];
    if (!bindings || bindings.length === 0) throw new BerthError('ENOTFOUND', `No public port '${key}' published for ${positionals[0]}`);
    for (const b of bindings) ctx.stdout.write(`${hostAddress(b)}\n`);
    return 0;
  }
  const keys = Object.keys(ports).sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
  for (const key of keys) for (const b of ports[key] ?? []) ctx.stdout.write(`${key} -> ${hostAddress(b)}\n`);
  return 0;
}
