// Runs the uvu suites (TypeScript through tsx), one process per group so that a
// hung integration server cannot stall the unit run, and prints one closing line
// "N passed, N failed" for the whole run.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

const groups = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'integration', 'e2e'];
const TIMEOUT_MS = Number(process.env.BERTH_TEST_TIMEOUT_MS || 25 * 60 * 1000);
let passed = 0, failed = 0, skipped = 0, broken = false;

for (const group of groups) {
  if (!existsSync(`test/${group}`)) continue;
  const args = ['--require', './build/test-signals.cjs', '--import', 'tsx', 'node_modules/uvu/bin.js', `test/${group}`, '\\.test\\.ts$'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  // uvu prints its summary and then waits for the event loop to drain; a test that left a
  // watcher or socket open would hold the whole run until the timeout. Output that ends
  // in a summary and then stays quiet for a while means uvu is done: end it (the counts
  // are known). A nested run's summary (a microVM guest's) is followed by more output,
  // which cancels the timer.
  let drainTimer;
  // SIGTERM first so the tests' exit handlers clean up; SIGKILL if that hangs too.
  const stop = () => { child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 10_000).unref(); };
  child.stdout.on('data', (d) => {
    out += d;
    process.stdout.write(d);
    clearTimeout(drainTimer);
    if (/^\s*Duration:.*\s*$/m.test(out.slice(-200)) && /Duration:[^\n]*\n?\s*$/.test(out)) {
      drainTimer = setTimeout(() => { console.error(`\n${group}: tests finished but left handles open; ending the process`); stop(); }, 15_000);
    }
  });
  const timer = setTimeout(() => { console.error(`\n${group}: timed out`); stop(); }, TIMEOUT_MS);
  const code = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  clearTimeout(timer);
  clearTimeout(drainTimer);
  // The last summary in the output is uvu's own (a test may print a guest run's summary).
  const num = (label) => Number([...out.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'gm'))].pop()?.[1] ?? 0);
  const total = num('Total'), ok = num('Passed'), skip = num('Skipped');
  passed += ok; skipped += skip; failed += total - ok - skip;
  const finished = /^\s*Duration:/m.test(out);
  if (code !== 0 && !(finished && total > 0 && ok + skip === total)) { broken = true; if (total - ok - skip === 0) failed += 1; }
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(broken || failed ? 1 : 0);
