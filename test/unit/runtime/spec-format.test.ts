import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  escapeValue, parseExitFile, parseSpec, parseStateFile, parseStateReply, serializeExecSpec, serializeSpec, unescapeValue,
} from '../../../src/runtime/spec-format';
import type { HelperSpec } from '../../../src/runtime/types';

test('escaping: tab, newline, CR and percent only', () => {
  assert.is(escapeValue('a\tb\nc\rd%e f'), 'a%09b%0Ac%0Dd%25e f');
  assert.is(unescapeValue('a%09b%0Ac%0Dd%25e f'), 'a\tb\nc\rd%e f');
  assert.is(unescapeValue('%41%c3%a9 50% %zz'), 'Aé 50% %zz');
  assert.throws(() => escapeValue('a\0b'), /NUL/);
});

test('a run spec survives a round trip, hostile values included', () => {
  const spec: HelperSpec = {
    rootfs: '/var/lib/berth/c/x/rootfs', args: ['sh', '-c', 'printf "%s\\t%s\\n" a b\r\n#not a comment'],
    env: ['A=1\t2', 'B=%41', 'C=line1\nline2'], cwd: '/w d', uid: 33, gid: 44, groups: [1, 2, 3], hostname: 'h',
    namespaces: ['mnt', 'uts', 'ipc', 'pid', 'net'], netns: '/run/netns/n',
    mounts: [{ source: '/a\tb', target: '/c', fstype: 'none', flags: 4096 | 16384 }, { source: 'proc', target: '/proc', fstype: 'proc', flags: 14 }],
    masked: ['/proc/kcore'], readonly: ['/proc/sys'], caps: ['CHOWN', 'KILL'], rlimits: [['nofile', 10, 'unlimited']],
    noNewPrivs: true, tty: true, stdin: true, cgroupProcs: ['/sys/fs/cgroup/x/cgroup.procs'],
    log: { path: 'container.log', maxBytes: 10, maxFiles: 3 }, init: true, waitStart: true,
  };
  const text = serializeSpec(spec);
  assert.ok(text.startsWith('berth-helper-spec 1\n'));
  for (const l of text.split('\n').slice(1, -1)) assert.not.match(l, /\r/);
  assert.ok(text.includes('groups\t1\t2\t3\n'));
  const back = parseSpec(text);
  assert.equal(back, { ...spec, rlimits: [['nofile', '10', 'unlimited']] });
});

test('booleans are always explicit; no groups line when there are none', () => {
  const text = serializeSpec({ rootfs: '/r', args: ['x'], env: [], namespaces: ['mnt'], mounts: [], masked: [], readonly: [], caps: [], noNewPrivs: false, tty: false, stdin: false, cgroupProcs: [], init: false, waitStart: false, groups: [] });
  assert.is(text, 'berth-helper-spec 1\nrootfs\t/r\narg\tx\nns\tmnt\nno_new_privs\t0\ntty\t0\nstdin\t0\ninit\t0\nwait_start\t0\n');
});

test('exec spec carries ctl and exit and no run-only keys', () => {
  const text = serializeExecSpec({ args: ['ls'], env: ['A=1'], uid: 1, gid: 2, groups: [3], caps: ['KILL'], noNewPrivs: true, tty: false, stdin: true, ctl: 'e/a.sock', exit: 'e/a.exit', waitStart: true, rlimits: [['nproc', 1, 2]] });
  assert.is(text, 'berth-helper-spec 1\narg\tls\nenv\tA=1\nuid\t1\ngid\t2\ngroups\t3\ncap\tKILL\nrlimit\tnproc\t1\t2\nno_new_privs\t1\ntty\t0\nstdin\t1\nctl\te/a.sock\nexit\te/a.exit\nwait_start\t1\n');
});

test('exit and state files, state replies', () => {
  assert.equal(parseExitFile('code 137\nsignal 9\nfinished 2024-01-01T00:00:00.000000001Z\n'), { code: 137, signal: 9, finished: '2024-01-01T00:00:00.000000001Z' });
  assert.equal(parseExitFile('code 127\nsignal 0\nfinished T\nerror exec: "a%25b%0Ac": not found\n')!.error, 'exec: "a%b\nc": not found');
  assert.is(parseExitFile('garbage'), undefined);
  assert.equal(parseStateFile('pid 42\nstarted 2024-01-01T00:00:00Z\n'), { pid: 42, started: '2024-01-01T00:00:00Z' });
  assert.is(parseStateFile(''), undefined);
  assert.equal(parseStateReply('ok pid 7 status created'), { pid: 7, status: 'created' });
  assert.is(parseStateReply('error nope'), undefined);
});

test.run();
