// `berth stats` (also `container stats`): docker's resource table, once with
// --no-stream, otherwise redrawn every second from the daemon's stats streams.
import { parseFlags, formatFlagHelp, type FlagDefs } from '../flags';
import { binarySize, formatTable, humanSize, isJsonFormat, renderFormat, shortId } from '../format';
import { readMessages } from '../progress';
import type { CliContext } from '../command';

const FLAGS = {
  all: { type: 'bool', short: 'a', help: 'Show all containers (default shows just running)' },
  format: { type: 'string', help: "Format output using a template ('table', 'table TEMPLATE', 'json', TEMPLATE)" },
  'no-stream': { type: 'bool', help: 'Disable streaming stats and only pull the first result' },
  'no-trunc': { type: 'bool', help: "Do not truncate output" },
} as const satisfies FlagDefs;

export const summary = 'Display a live stream of container(s) resource usage statistics';
export const usage = `Usage:  berth stats [OPTIONS] [CONTAINER...]

${summary}

Aliases:
  berth container stats, berth stats

${formatFlagHelp(FLAGS)}`;

interface CpuStats { cpu_usage?: { total_usage?: number; percpu_usage?: number[] | null }; system_cpu_usage?: number; online_cpus?: number }
export interface StatsSample {
  id?: string;
  name?: string;
  cpu_stats?: CpuStats;
  precpu_stats?: CpuStats;
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }>;
  blkio_stats?: { io_service_bytes_recursive?: Array<{ op: string; value: number }> | null };
  pids_stats?: { current?: number };
}

export interface StatsRow { BlockIO: string; CPUPerc: string; Container: string; ID: string; MemPerc: string; MemUsage: string; Name: string; NetIO: string; PIDs: string }

const HEADERS: Record<string, string> = {
  BlockIO: 'BLOCK I/O', CPUPerc: 'CPU %', Container: 'CONTAINER', ID: 'CONTAINER ID', MemPerc: 'MEM %', MemUsage: 'MEM USAGE / LIMIT', Name: 'NAME', NetIO: 'NET I/O', PIDs: 'PIDS',
};

/** Docker's CPU %: the container's share of host CPU time since the previous sample, times the CPUs. */
export function cpuPercent(s: StatsSample): number {
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpus = s.cpu_stats?.online_cpus || s.cpu_stats?.cpu_usage?.percpu_usage?.length || 1;
  return systemDelta > 0 && cpuDelta > 0 ? (cpuDelta / systemDelta) * cpus * 100 : 0;
}

/** Memory in use without the page cache the kernel can drop (v1 total_inactive_file, v2 inactive_file). */
export function memoryUsed(s: StatsSample): number {
  const usage = s.memory_stats?.usage ?? 0;
  const stats = s.memory_stats?.stats ?? {};
  const cache = stats.total_inactive_file ?? stats.inactive_file ?? 0;
  return cache < usage ? usage - cache : usage;
}

export function statsRow(s: StatsSample, fallbackId: string, noTrunc: boolean): StatsRow {
  const used = memoryUsed(s);
  const limit = s.memory_stats?.limit ?? 0;
  let rx = 0, tx = 0;
  for (const n of Object.values(s.networks ?? {})) { rx += n.rx_bytes ?? 0; tx += n.tx_bytes ?? 0; }
  let read = 0, write = 0;
  for (const e of s.blkio_stats?.io_service_bytes_recursive ?? []) {
    if (e.op.toLowerCase() === 'read') read += e.value;
    else if (e.op.toLowerCase() === 'write') write += e.value;
  }
  const id = s.id ?? fallbackId;
  return {
    BlockIO: `${humanSize(read)} / ${humanSize(write)}`,
    CPUPerc: `${cpuPercent(s).toFixed(2)}%`,
    Container: fallbackId,
    ID: noTrunc ? id : shortId(id),
    MemPerc: `${(limit > 0 ? (used / limit) * 100 : 0).toFixed(2)}%`,
    MemUsage: `${binarySize(used)} / ${binarySize(limit)}`,
    Name: (s.name ?? '').replace(/^\//, '') || '--',
    NetIO: `${humanSize(rx)} / ${humanSize(tx)}`,
    PIDs: String(s.pids_stats?.current ?? 0),
  };
}

export function renderStats(rows: StatsRow[], format: string | undefined): string {
  const f = format === 'json' ? '{{json .}}' : format;
  if (f !== undefined && f !== 'table') {
    const tableTemplate = /^table\s+(.*)$/s.exec(f);
    if (tableTemplate) {
      const header = tableTemplate[1]!.replace(/\{\{\s*\.([A-Za-z]+)\s*\}\}/g, (_, field: string) => HEADERS[field] ?? field.toUpperCase());
      const split = (line: string): string[] => line.replace(/\\t/g, '\t').split('\t');
      return formatTable(split(header), rows.map((r) => split(renderFormat(tableTemplate[1]!, r))));
    }
    return rows.map((r) => (isJsonFormat(f) ? JSON.stringify(r) : renderFormat(f, r)) + '\n').join('');
  }
  return formatTable(['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O', 'BLOCK I/O', 'PIDS'],
    rows.map((r) => [r.ID, r.Name, r.CPUPerc, r.MemUsage, r.MemPerc, r.NetIO, r.BlockIO, r.PIDs]));
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, FLAGS);
  const client = ctx.client();
  let names = positionals;
  if (names.length === 0) {
    const list = await client.json<Array<{ Id: string }>>('GET', '/containers/json', { query: { all: flags.all || undefined } });
    names = list.map((c) => c.Id);
  }
  if (flags['no-stream']) {
    const rows: StatsRow[] = [];
    for (const name of names) rows.push(statsRow(await client.json<StatsSample>('GET', `/containers/${name}/stats`, { query: { stream: false } }), name, flags['no-trunc']));
    ctx.stdout.write(renderStats(rows, flags.format));
    return 0;
  }

  const latest = new Map<string, StatsRow>();
  const controller = new AbortController();
  const readers = names.map(async (name) => {
    const res = await client.raw('GET', `/containers/${name}/stats`, { query: { stream: true }, signal: controller.signal });
    if ((res.statusCode ?? 0) >= 400) { res.resume(); return; }
    for await (const sample of readMessages(res)) latest.set(name, statsRow(sample as StatsSample, name, flags['no-trunc']));
    latest.delete(name);
  });
  const tty = (ctx.stdout as { isTTY?: boolean }).isTTY === true;
  const draw = (): void => {
    const rows = names.filter((n) => latest.has(n)).map((n) => latest.get(n)!);
    // On a terminal the table is redrawn in place; elsewhere each second appends a table.
    ctx.stdout.write((tty ? '\x1b[2J\x1b[H' : '') + renderStats(rows, flags.format));
  };
  const timer = setInterval(draw, 1000);
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  await Promise.allSettled(readers);
  clearInterval(timer);
  process.off('SIGINT', stop);
  return 0;
}
