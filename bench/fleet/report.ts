// Turns bench.ts's JSON documents into bench/results/fleet.md (stdout).
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';

const docs = process.argv.slice(2).map((f) => JSON.parse(readFileSync(f, 'utf8')));
const ms = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`);
const mb = (kb: number): string => (kb / 1024).toFixed(1);
const lines: string[] = ['# bench/fleet results', ''];

function memoryTable(d: any): void {
  const m = d.memory;
  const w = m.workers as Array<{ devices: number; baselineRssKb: number; rssKb: number; hwmKb: number }>;
  const devs = w.reduce((s, x) => s + x.devices, 0);
  const grown = w.reduce((s, x) => s + (x.hwmKb - x.baselineRssKb), 0);
  lines.push('| memory | MB |', '|---|---|');
  lines.push(`| mosquitto VmHWM (VmRSS at the end) | ${mb(m.brokerHwmKb)} (${mb(m.brokerRssKb)}) |`);
  lines.push(`| mosquitto per connected device, kB | ${(m.brokerHwmKb / d.devices).toFixed(1)} |`);
  for (const [i, x] of w.entries()) lines.push(`| worker ${i + 1}: ${x.devices} agents, VmHWM (RSS before the agents started) | ${mb(x.hwmKb)} (${mb(x.baselineRssKb)}) |`);
  lines.push(`| agent growth per device (sum of VmHWM − start RSS over ${devs} devices), kB | ${(grown / devs).toFixed(1)} |`);
  lines.push(`| operator process VmHWM | ${mb(m.operatorHwmKb)} |`, '');
}

for (const d of docs) {
  if (d.scenario === 'group') {
    lines.push(`## group command to ${d.devices.toLocaleString('en')} devices (${d.workers} worker processes)`, '');
    lines.push(`All ${d.devices} agents connected, subscribed and had their retained status at the operator ${ms(d.allOnlineMs)} after the first was started (ramp ${d.rampPerSecPerWorker}/s per worker).`, '');
    lines.push('| command (to group) | replied | ok | min | p50 | p99 | max | duplicate finals |', '|---|---|---|---|---|---|---|---|');
    for (const r of d.rounds) lines.push(`| ${r.action} | ${r.replied}/${r.devices} | ${r.ok} | ${ms(r.min)} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${r.extraReplies} |`);
    lines.push('', `\`ps\` executions per device (simulated engine calls; 3 expected): min ${d.psExecutionsPerDevice.min}, max ${d.psExecutionsPerDevice.max} over ${d.psExecutionsPerDevice.devices} devices.`, '');
    memoryTable(d);
  } else {
    const s = d.storm;
    lines.push(`## reconnect storm: ${d.devices.toLocaleString('en')} devices (${d.workers} worker processes)`, '');
    lines.push(`Every device's link was cut (both TCP sides reset, no DISCONNECT); the operator had all ${d.devices} last wills (retained online:false) ${ms(d.allOfflineMs)} after the cut began, sent a group \`ps\` (QoS 1) ${ms(s.commandSentAfterCutMs)} after the cut, and the links came back ${ms(s.outageMs)} after the cut. Devices reconnected with berth's backoff (500 ms base, full jitter, doubling).`, '');
    const e = s.executions;
    const refused = s.link.reduce((a: number, l: any) => a + l.refused, 0);
    lines.push('| measure | value |', '|---|---|');
    lines.push(`| devices that executed the command exactly once | ${e.executedOnce}/${e.devices} |`);
    lines.push(`| lost (never executed) / duplicated (executed twice or more) | ${e.lost} / ${e.duplicated} |`);
    lines.push(`| final replies at the operator (ok) | ${s.result.replied} (${s.result.ok}); extra finals ${s.result.extraReplies} |`);
    lines.push(`| reply time after the links returned: p50 / p99 / max | ${ms(s.sinceRestoreMs.p50)} / ${ms(s.sinceRestoreMs.p99)} / ${ms(s.sinceRestoreMs.max)} |`);
    lines.push(`| reply time after the command was sent: p50 / p99 / max | ${ms(s.result.p50)} / ${ms(s.result.p99)} / ${ms(s.result.max)} |`);
    lines.push(`| all ${d.devices} online again (retained status) after the links returned | ${ms(s.allOnlineAgainAfterRestoreMs)} |`);
    lines.push(`| connection attempts refused during the outage (all devices) | ${refused} |`, '');
    memoryTable(d);
  }
  const logs = Object.entries(d.logLines as Record<string, number>).map(([k, v]) => `${k}: ${v}`).join('; ');
  lines.push(`Agent log lines (counted, not printed): ${logs}.`, '');
}

let mosq = '';
try { execFileSync('mosquitto', ['-h'], { encoding: 'utf8' }); } catch (e) { mosq = String((e as { stdout?: string }).stdout ?? '').split('\n')[0] ?? ''; }
lines.push(`${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')}; node ${process.versions.node}, ${mosq.trim()}, mqtt.js ${JSON.parse(readFileSync('node_modules/mqtt/package.json', 'utf8')).version}.`);
lines.push('', 'Broker configuration (plus `listener <port> 127.0.0.1`):', '', '```', ...String(docs[0].brokerConf).split('\n').filter((l: string) => l && !l.startsWith('listener')), '```');
process.stdout.write(lines.join('\n') + '\n');
