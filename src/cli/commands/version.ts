// `berth version`: the client's own facts, then the server's, laid out like docker's.
import { API_VERSION, VERSION } from '../../util/version';
import { goArch, runtimeVersion } from '../../api/platform';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { renderFormat } from '../format';
import type { CliContext } from '../command';
import { printError } from '../command';
import { BerthError } from '../../util/errors';

const FLAGS = {
  format: { type: 'string', short: 'f', help: "Format output using a template ('{{json .}}', '{{.Server.Version}}')" },
} as const satisfies FlagDefs;

export const summary = 'Show the berth version information';
export const usage = `Usage:  berth version [OPTIONS]

${summary}

${formatFlagHelp(FLAGS)}`;

interface ServerVersion {
  Platform?: { Name?: string };
  Version?: string;
  ApiVersion?: string;
  MinAPIVersion?: string;
  GitCommit?: string;
  GoVersion?: string;
  Os?: string;
  Arch?: string;
  KernelVersion?: string;
  BuildTime?: string;
  Components?: Array<{ Name: string; Version: string; Details?: Record<string, string> }>;
}

function clientInfo(ctx: CliContext): Record<string, string> {
  return {
    Platform: 'berth',
    Version: VERSION,
    ApiVersion: API_VERSION,
    GoVersion: runtimeVersion(),
    Os: 'linux',
    Arch: goArch(),
    Host: ctx.host,
  };
}

function field(label: string, value: string | undefined, indent: string): string {
  return `${indent}${(label + ':').padEnd(20 - indent.length)}${value ?? ''}`.trimEnd() + '\n';
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  if (positionals.length) throw new BerthError('EINVAL', `"version" accepts no arguments`);
  const client = clientInfo(ctx);

  let server: ServerVersion | undefined;
  let serverError: unknown;
  try {
    server = await ctx.client().json<ServerVersion>('GET', '/version');
  } catch (err) {
    serverError = err;
  }

  if (flags.format !== undefined) {
    ctx.stdout.write(renderFormat(flags.format, { Client: client, Server: server ?? null }) + '\n');
    return serverError ? printError(ctx.stderr, serverError) : 0;
  }

  let out = 'Client:\n';
  out += field('Version', client.Version, ' ');
  out += field('API version', client.ApiVersion, ' ');
  out += field('Node version', client.GoVersion, ' ');
  out += field('OS/Arch', `${client.Os}/${client.Arch}`, ' ');
  out += field('Host', client.Host, ' ');
  ctx.stdout.write(out);
  if (!server) return printError(ctx.stderr, serverError);

  const engine = server.Components?.find((c) => c.Name === 'Engine');
  const d = engine?.Details ?? {};
  out = `\nServer:${server.Platform?.Name ? ` ${server.Platform.Name}` : ''}\n Engine:\n`;
  out += field('Version', engine?.Version ?? server.Version, '  ');
  out += field('API version', `${d.ApiVersion ?? server.ApiVersion} (minimum version ${d.MinAPIVersion ?? server.MinAPIVersion})`, '  ');
  out += field('Node version', d.GoVersion ?? server.GoVersion, '  ');
  out += field('Git commit', d.GitCommit ?? server.GitCommit, '  ');
  out += field('Built', d.BuildTime ?? server.BuildTime, '  ');
  out += field('OS/Arch', `${d.Os ?? server.Os}/${d.Arch ?? server.Arch}`, '  ');
  out += field('Kernel version', d.KernelVersion ?? server.KernelVersion, '  ');
  ctx.stdout.write(out);
  return 0;
}
