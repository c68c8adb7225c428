// The helper's line format, protocol version 1 (native/helper/README.md): serialising
// run and exec specs, and parsing the files and replies the helper writes back.
import { BerthError } from '../util/errors';
import type { ExitInfo, HelperSpec, MountSpec, RunningInfo } from './types';

export const SPEC_MAGIC = 'berth-helper-spec 1';

/** An exec spec: the keys the helper accepts for `berth-helper exec`. */
export interface HelperExecSpec {
  args: string[];
  env: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
  groups?: number[];
  caps: string[];
  rlimits?: Array<[string, string | number, string | number]>;
  noNewPrivs: boolean;
  tty: boolean;
  stdin: boolean;
  /** Its ctl socket and exit file, relative to the container's bundle. */
  ctl: string;
  exit: string;
  waitStart: boolean;
}

/** Percent-escapes the characters that would break a line or a field. */
export function escapeValue(value: string): string {
  // The helper refuses %00; failing here names the culprit instead.
  if (value.includes('\0')) throw new BerthError('EINVAL', `spec value cannot contain a NUL byte: ${JSON.stringify(value)}`);
  return value.replace(/[%\t\n\r]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

/** Decodes any %XX (as the helper does) and reads the bytes as UTF-8. A lone % stays. */
export function unescapeValue(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  const raw = Buffer.from(value, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const hex = raw[i] === 0x25 ? raw.subarray(i + 1, i + 3).toString('latin1') : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(raw[i]!);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function line(key: string, ...values: Array<string | number>): string {
  return [key, ...values.map((v) => escapeValue(String(v)))].join('\t') + '\n';
}

function flag(key: string, on: boolean): string {
  return line(key, on ? 1 : 0);
}

function rlimitLines(rlimits: HelperSpec['rlimits']): string {
  let out = '';
  for (const [name, soft, hard] of rlimits ?? []) out += line('rlimit', name, soft, hard);
  return out;
}

function groupLine(groups: number[] | undefined): string {
  // One line with all gids: "none" must stay distinguishable from "unset", and both mean cleared.
  return groups && groups.length ? line('groups', ...groups) : '';
}

export function serializeSpec(spec: HelperSpec): string {
  let out = SPEC_MAGIC + '\n';
  out += line('rootfs', spec.rootfs);
  for (const a of spec.args) out += line('arg', a);
  for (const e of spec.env) out += line('env', e);
  if (spec.cwd) out += line('cwd', spec.cwd);
  if (spec.uid !== undefined) out += line('uid', spec.uid);
  if (spec.gid !== undefined) out += line('gid', spec.gid);
  out += groupLine(spec.groups);
  if (spec.hostname) out += line('hostname', spec.hostname);
  for (const ns of spec.namespaces) out += line('ns', ns);
  if (spec.netns) out += line('netns', spec.netns);
  for (const m of spec.mounts) out += line('mount', m.source, m.target, m.fstype, m.flags, m.data ?? '');
  for (const p of spec.masked) out += line('masked', p);
  for (const p of spec.readonly) out += line('readonly', p);
  for (const c of spec.caps) out += line('cap', c);
  out += rlimitLines(spec.rlimits);
  out += flag('no_new_privs', spec.noNewPrivs);
  out += flag('tty', spec.tty);
  out += flag('stdin', spec.stdin);
  for (const p of spec.cgroupProcs) out += line('cgroup_procs', p);
  if (spec.log) out += line('log', spec.log.path, spec.log.maxBytes, spec.log.maxFiles);
  out += flag('init', spec.init);
  out += flag('wait_start', spec.waitStart);
  return out;
}

export function serializeExecSpec(spec: HelperExecSpec): string {
  let out = SPEC_MAGIC + '\n';
  for (const a of spec.args) out += line('arg', a);
  for (const e of spec.env) out += line('env', e);
  if (spec.cwd) out += line('cwd', spec.cwd);
  if (spec.uid !== undefined) out += line('uid', spec.uid);
  if (spec.gid !== undefined) out += line('gid', spec.gid);
  out += groupLine(spec.groups);
  for (const c of spec.caps) out += line('cap', c);
  out += rlimitLines(spec.rlimits);
  out += flag('no_new_privs', spec.noNewPrivs);
  out += flag('tty', spec.tty);
  out += flag('stdin', spec.stdin);
  out += line('ctl', spec.ctl);
  out += line('exit', spec.exit);
  out += flag('wait_start', spec.waitStart);
  return out;
}

/** Lines of a spec as [key, values], unescaped; comments and blank lines skipped. */
export function parseSpecLines(text: string): Array<[string, string[]]> {
  const lines = text.split('\n');
  if (lines[0] !== SPEC_MAGIC) throw new BerthError('EINVAL', `spec: first line must be "${SPEC_MAGIC}"`);
  const out: Array<[string, string[]]> = [];
  for (const l of lines.slice(1)) {
    if (!l || l.startsWith('#')) continue;
    const [key, ...values] = l.split('\t');
    out.push([key!, values.map(unescapeValue)]);
  }
  return out;
}

/** The inverse of serializeSpec (for tests and for reading a bundle back). */
export function parseSpec(text: string): HelperSpec {
  const spec: HelperSpec = {
    rootfs: '', args: [], env: [], namespaces: [], mounts: [], masked: [], readonly: [], caps: [],
    noNewPrivs: false, tty: false, stdin: false, cgroupProcs: [], init: false, waitStart: false,
  };
  const num = (v: string | undefined) => Number(v);
  for (const [key, v] of parseSpecLines(text)) {
    switch (key) {
      case 'rootfs': spec.rootfs = v[0]!; break;
      case 'arg': spec.args.push(v[0]!); break;
      case 'env': spec.env.push(v[0]!); break;
      case 'cwd': spec.cwd = v[0]; break;
      case 'uid': spec.uid = num(v[0]); break;
      case 'gid': spec.gid = num(v[0]); break;
      case 'groups': (spec.groups ??= []).push(...v.map(num)); break;
      case 'hostname': spec.hostname = v[0]; break;
      case 'ns': spec.namespaces.push(v[0]!); break;
      case 'netns': spec.netns = v[0]; break;
      case 'mount': {
        const m: MountSpec = { source: v[0]!, target: v[1]!, fstype: v[2]!, flags: num(v[3]) };
        if (v[4]) m.data = v[4];
        spec.mounts.push(m);
        break;
      }
      case 'masked': spec.masked.push(v[0]!); break;
      case 'readonly': spec.readonly.push(v[0]!); break;
      case 'cap': spec.caps.push(v[0]!); break;
      case 'rlimit': (spec.rlimits ??= []).push([v[0]!, v[1]!, v[2]!]); break;
      case 'no_new_privs': spec.noNewPrivs = v[0] === '1'; break;
      case 'tty': spec.tty = v[0] === '1'; break;
      case 'stdin': spec.stdin = v[0] === '1'; break;
      case 'cgroup_procs': spec.cgroupProcs.push(v[0]!); break;
      case 'log': spec.log = { path: v[0]!, maxBytes: num(v[1]), maxFiles: num(v[2]) }; break;
      case 'init': spec.init = v[0] === '1'; break;
      case 'wait_start': spec.waitStart = v[0] === '1'; break;
      default: throw new BerthError('EINVAL', `spec: unknown key ${key}`);
    }
  }
  return spec;
}

/** "KEY VALUE" lines (the helper's state and exit files). */
function fieldsOf(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const l of text.split('\n')) {
    const sp = l.indexOf(' ');
    if (sp > 0) fields.set(l.slice(0, sp), l.slice(sp + 1));
  }
  return fields;
}

/** The `exit` file; undefined when it is not complete (it is written atomically, so only a foreign file). */
export function parseExitFile(text: string): ExitInfo | undefined {
  const fields = fieldsOf(text);
  const code = Number(fields.get('code'));
  if (!fields.has('code') || !Number.isInteger(code)) return undefined;
  const signal = Number(fields.get('signal') ?? 0);
  const error = fields.get('error');
  return {
    code,
    signal: Number.isInteger(signal) ? signal : 0,
    finished: fields.get('finished') ?? '',
    ...(error !== undefined ? { error: unescapeValue(error) } : {}),
  };
}

/** The `state` file: `pid N\nstarted T\n`. */
export function parseStateFile(text: string): RunningInfo | undefined {
  const fields = fieldsOf(text);
  const pid = Number(fields.get('pid'));
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, started: fields.get('started') ?? '' };
}

/** The reply to `state`: `ok pid N status created|running|exited`. */
export function parseStateReply(reply: string): { pid: number; status: 'created' | 'running' | 'exited' } | undefined {
  const m = /^ok pid (-?\d+) status (created|running|exited)$/.exec(reply.trim());
  if (!m) return undefined;
  return { pid: Number(m[1]), status: m[2] as 'created' | 'running' | 'exited' };
}
