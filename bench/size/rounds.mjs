// Start-time measurement that survives a shared machine: hyperfine in ROUNDS rounds of
// RUNS runs (3 warmup runs each), the order of the commands rotated every round, so a burst
// of load from other processes lands on all of them rather than on whichever ran last.
// The runs are pooled per command.
// Usage: node bench/size/rounds.mjs OUT.json ROUNDS RUNS COMMAND...
// Writes { command: { mean, sd, median, min, cpu, cpuSd, n } } to OUT.json: ms; cpu is
// user + system, which hyperfine keeps only as a mean per round, so cpuSd is the sd of the
// round means.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [out, rounds, runs, ...commands] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'berth-bench-rounds.'));
const pooled = Object.fromEntries(commands.map((c) => [c, { times: [], cpu: [] }]));
try {
  for (let r = 0; r < Number(rounds); r++) {
    const order = commands.map((_, i) => commands[(i + r) % commands.length]);
    const json = join(dir, `round-${r}.json`);
    execFileSync('hyperfine', ['-N', '-i', '--warmup', '3', '--runs', String(runs), '--export-json', json, ...order], { stdio: ['ignore', 'ignore', 'inherit'] });
    for (const res of JSON.parse(readFileSync(json, 'utf8')).results) {
      pooled[res.command].times.push(...res.times);
      pooled[res.command].cpu.push(res.user + res.system);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const mean = (x) => x.reduce((a, b) => a + b, 0) / x.length;
const sd = (x) => Math.sqrt(x.reduce((a, b) => a + (b - mean(x)) ** 2, 0) / Math.max(1, x.length - 1));
const ms = (s) => Math.round(s * 1e4) / 10;
const stats = {};
for (const [c, { times, cpu }] of Object.entries(pooled)) {
  const sorted = [...times].sort((a, b) => a - b);
  stats[c] = { mean: ms(mean(times)), sd: ms(sd(times)), median: ms(sorted[sorted.length >> 1]), min: ms(sorted[0]), cpu: ms(mean(cpu)), cpuSd: ms(sd(cpu)), n: times.length };
}
writeFileSync(out, `${JSON.stringify(stats, null, 1)}\n`);
