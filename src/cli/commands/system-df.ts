// `berth system df`: disk usage of images, containers and volumes, as docker prints it.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { formatTable, humanSize, isJsonFormat, renderFormat } from '../format';
import type { CliContext } from '../command';

const FLAGS = {
  format: { type: 'string', help: "Format output using a template ('json', TEMPLATE)" },
  verbose: { type: 'bool', short: 'v', help: 'Show detailed information on space usage', hidden: true },
} as const satisfies FlagDefs;

export const summary = 'Show berth disk usage';
export const usage = `Usage:  berth system df [OPTIONS]

${summary}

${formatFlagHelp(FLAGS)}`;

interface DiskUsage {
  LayersSize?: number;
  Images?: Array<{ Id: string; Size?: number; SharedSize?: number; Containers?: number }> | null;
  Containers?: Array<{ State?: string; SizeRw?: number }> | null;
  Volumes?: Array<{ UsageData?: { Size?: number; RefCount?: number } }> | null;
  BuildCache?: unknown[] | null;
}

function percent(part: number, whole: number): string {
  return whole > 0 ? ` (${Math.round((part / whole) * 100)}%)` : '';
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags } = parseFlags(args, FLAGS);
  const df = await ctx.client().json<DiskUsage>('GET', '/system/df');
  const images = df.Images ?? [];
  const containers = df.Containers ?? [];
  const volumes = df.Volumes ?? [];
  const imageSize = df.LayersSize ?? images.reduce((n, i) => n + (i.Size ?? 0), 0);
  const activeImages = images.filter((i) => (i.Containers ?? 0) > 0);
  const reclaimableImages = imageSize - activeImages.reduce((n, i) => n + (i.Size ?? 0) - (i.SharedSize ?? 0), 0);
  const containerSize = containers.reduce((n, c) => n + (c.SizeRw ?? 0), 0);
  const running = containers.filter((c) => c.State === 'running');
  const reclaimableContainers = containers.filter((c) => c.State !== 'running').reduce((n, c) => n + (c.SizeRw ?? 0), 0);
  const volumeSize = volumes.reduce((n, v) => n + Math.max(0, v.UsageData?.Size ?? 0), 0);
  const activeVolumes = volumes.filter((v) => (v.UsageData?.RefCount ?? 0) > 0).length;
  const rows = [
    { Type: 'Images', TotalCount: String(images.length), Active: String(activeImages.length), Size: humanSize(imageSize), Reclaimable: `${humanSize(Math.max(0, reclaimableImages))}${percent(Math.max(0, reclaimableImages), imageSize)}` },
    { Type: 'Containers', TotalCount: String(containers.length), Active: String(running.length), Size: humanSize(containerSize), Reclaimable: `${humanSize(reclaimableContainers)}${percent(reclaimableContainers, containerSize)}` },
    { Type: 'Local Volumes', TotalCount: String(volumes.length), Active: String(activeVolumes), Size: humanSize(volumeSize), Reclaimable: `${humanSize(0)}` },
    { Type: 'Build Cache', TotalCount: '0', Active: '0', Size: '0B', Reclaimable: '0B' },
  ];
  const format = flags.format === 'json' ? '{{json .}}' : flags.format;
  if (format !== undefined && format !== 'table') {
    for (const r of rows) ctx.stdout.write(`${isJsonFormat(format) ? JSON.stringify(r) : renderFormat(format, r)}\n`);
    return 0;
  }
  ctx.stdout.write(formatTable(['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'], rows.map((r) => [r.Type, r.TotalCount, r.Active, r.Size, r.Reclaimable])));
  return 0;
}
