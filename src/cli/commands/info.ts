// `berth info` (also `berth system info`): the daemon's /info, printed like `docker info`.
import { BerthError } from '../../util/errors';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { binarySize, renderFormat } from '../format';
import type { CliContext } from '../command';

const FLAGS = {
  format: { type: 'string', short: 'f', help: "Format output using a template ('{{json .}}', '{{.ServerVersion}}')" },
} as const satisfies FlagDefs;

export const summary = 'Display system-wide information';
export const usage = `Usage:  berth info [OPTIONS]

${summary}

${formatFlagHelp(FLAGS)}`;

/** The /info fields this command prints; the daemon sends more. */
export interface SystemInfo {
  ID?: string;
  Containers?: number;
  ContainersRunning?: number;
  ContainersPaused?: number;
  ContainersStopped?: number;
  Images?: number;
  ServerVersion?: string;
  Driver?: string;
  DriverStatus?: Array<[string, string]> | null;
  LoggingDriver?: string;
  CgroupDriver?: string;
  CgroupVersion?: string;
  DefaultRuntime?: string;
  Runtimes?: Record<string, unknown>;
  KernelVersion?: string;
  OperatingSystem?: string;
  OSType?: string;
  Architecture?: string;
  NCPU?: number;
  MemTotal?: number;
  Name?: string;
  DockerRootDir?: string;
  Debug?: boolean;
  RegistryConfig?: { InsecureRegistryCIDRs?: string[] | null; IndexConfigs?: Record<string, { Name: string; Secure: boolean }> | null } | null;
  LiveRestoreEnabled?: boolean;
  Warnings?: string[] | null;
}

export function renderInfo(info: SystemInfo): string {
  const lines: string[] = ['Server:'];
  const add = (indent: number, label: string, value: unknown): void => {
    lines.push(`${' '.repeat(indent)}${label}: ${value ?? ''}`.trimEnd());
  };
  add(1, 'Containers', info.Containers ?? 0);
  add(2, 'Running', info.ContainersRunning ?? 0);
  add(2, 'Paused', info.ContainersPaused ?? 0);
  add(2, 'Stopped', info.ContainersStopped ?? 0);
  add(1, 'Images', info.Images ?? 0);
  add(1, 'Server Version', info.ServerVersion);
  add(1, 'Storage Driver', info.Driver);
  for (const [key, value] of info.DriverStatus ?? []) add(2, key, value);
  add(1, 'Logging Driver', info.LoggingDriver);
  add(1, 'Cgroup Driver', info.CgroupDriver);
  if (info.CgroupVersion) add(1, 'Cgroup Version', info.CgroupVersion);
  add(1, 'Runtimes', Object.keys(info.Runtimes ?? {}).sort().join(' '));
  add(1, 'Default Runtime', info.DefaultRuntime);
  add(1, 'Kernel Version', info.KernelVersion);
  add(1, 'Operating System', info.OperatingSystem);
  add(1, 'OSType', info.OSType);
  add(1, 'Architecture', info.Architecture);
  add(1, 'CPUs', info.NCPU);
  add(1, 'Total Memory', info.MemTotal !== undefined ? binarySize(info.MemTotal) : '');
  add(1, 'Name', info.Name);
  add(1, 'ID', info.ID);
  add(1, 'Docker Root Dir', info.DockerRootDir);
  add(1, 'Debug Mode', info.Debug ?? false);
  const insecure = [
    ...Object.values(info.RegistryConfig?.IndexConfigs ?? {}).filter((c) => !c.Secure).map((c) => c.Name),
    ...(info.RegistryConfig?.InsecureRegistryCIDRs ?? []),
  ];
  if (insecure.length) {
    lines.push(' Insecure Registries:');
    for (const name of insecure) lines.push(`  ${name}`);
  }
  add(1, 'Live Restore Enabled', info.LiveRestoreEnabled ?? false);
  return lines.join('\n') + '\n';
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', `"info" accepts no arguments`);
  const info = await ctx.client().json<SystemInfo>('GET', '/info');
  if (flags.format !== undefined) {
    ctx.stdout.write(renderFormat(flags.format, info) + '\n');
    return 0;
  }
  ctx.stdout.write(renderInfo(info));
  for (const warning of info.Warnings ?? []) ctx.stderr.write(`${warning}\n`);
  return 0;
}
