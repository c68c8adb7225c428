import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { runCli, resolveCommand, COMMANDS } from '../../../src/cli/main';

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  return { stream: new Writable({ write(chunk, _enc, cb) { text += chunk; cb(); } }), text: () => text };
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = sink();
  const err = sink();
  const code = await runCli(args, { stdout: out.stream, stderr: err.stream, env });
  return { code, stdout: out.text(), stderr: err.text() };
}

test('two-word aliases resolve before one-word commands', () => {
  assert.equal(resolveCommand(['system', 'info', '-f', 'x']), { name: 'system info', rest: ['-f', 'x'] });
  assert.equal(resolveCommand(['info', 'system']), { name: 'info', rest: ['system'] });
  assert.is(resolveCommand(['nope']), undefined);
});

test('every table entry loads a command with usage and run', async () => {
  for (const [name, load] of Object.entries(COMMANDS)) {
    const cmd = await load();
    assert.type(cmd.run, 'function', name);
    assert.match(cmd.usage, /^Usage:/, name);
  }
});

test('unknown command, version flag and help', async () => {
  const r = await cli(['frob']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /^berth: 'frob' is not a berth command\./);
  assert.match((await cli(['-v'])).stdout, /^berth version /);
  const h = await cli(['--help']);
  assert.is(h.code, 0);
  assert.match(h.stdout, /Commands:/);
  assert.match((await cli(['info', '--help'])).stdout, /^Usage:  berth info/);
});

test('flag errors point at the usage', async () => {
  const r = await cli(['info', '--bogus']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /unknown flag: --bogus\nSee 'berth info --help'\./);
});

test('connection failures print the daemon hint and exit with ECONNECT', async () => {
  const r = await cli(['info'], { BERTH_HOST: 'unix:///nonexistent/berth.sock' });
  assert.is(r.code, 9);
  assert.is(r.stderr, 'Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?\n');
});

test.run();
