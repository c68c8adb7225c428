import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../../../src/cli/flags';

const defs = {
  all: { type: 'bool', short: 'a', help: 'Show all' },
  quiet: { type: 'bool', short: 'q' },
  format: { type: 'string', short: 'f' },
  filter: { type: 'list' },
  host: { type: 'list', short: 'H' },
} as const satisfies FlagDefs;

test('long, short, = forms and positionals', () => {
  const p = parseFlags(['--all', 'x', '--format={{json .}}', '-f', 'table', 'y'], defs);
  assert.is(p.flags.all, true);
  assert.is(p.flags.quiet, false);
  assert.is(p.flags.format, 'table');
  assert.equal(p.positionals, ['x', 'y']);
  assert.ok(p.given.has('format'));
  assert.not.ok(p.given.has('quiet'));
});

test('grouped shorts and attached values', () => {
  const p = parseFlags(['-aq', '-fjson', '-Hunix:///a.sock', '-H', 'unix:///b.sock'], defs);
  assert.is(p.flags.all, true);
  assert.is(p.flags.quiet, true);
  assert.is(p.flags.format, 'json');
  assert.equal(p.flags.host, ['unix:///a.sock', 'unix:///b.sock']);
  assert.equal(parseFlags(['-af', 'x'], defs).flags.format, 'x');
});

test('repeatable lists and boolean values', () => {
  const p = parseFlags(['--filter', 'a=1', '--filter=b=2', '--all=false', '-q=true'], defs);
  assert.equal(p.flags.filter, ['a=1', 'b=2']);
  assert.is(p.flags.all, false);
  assert.is(p.flags.quiet, true);
  assert.throws(() => parseFlags(['--all=maybe'], defs), /not a boolean/);
});

test('-- ends flags; stopAtPositional leaves the rest alone', () => {
  assert.equal(parseFlags(['--', '-a', '--all'], defs).positionals, ['-a', '--all']);
  const p = parseFlags(['-H', 'unix:///x', 'run', 'alpine', '--all', '-q'], defs, { stopAtPositional: true });
  assert.equal(p.flags.host, ['unix:///x']);
  assert.is(p.flags.all, false);
  assert.equal(p.positionals, ['run', 'alpine', '--all', '-q']);
  assert.equal(parseFlags(['-'], defs).positionals, ['-']);
});

test('errors name the flag', () => {
  assert.throws(() => parseFlags(['--nope'], defs), /unknown flag: --nope/);
  assert.throws(() => parseFlags(['-z'], defs), /unknown shorthand flag: 'z' in -z/);
  assert.throws(() => parseFlags(['--format'], defs), /flag needs an argument: --format/);
  assert.throws(() => parseFlags(['-f'], defs), /flag needs an argument: -f/);
});

test('help text lists flags aligned', () => {
  const help = formatFlagHelp(defs);
  assert.match(help, /^Options:\n/);
  assert.match(help, /  -a, --all +Show all\n/);
  assert.match(help, /      --filter list/);
});

test.run();
