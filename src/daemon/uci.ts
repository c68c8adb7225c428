// OpenWrt's UCI config (/etc/config/berth) read by the daemon itself, so a router needs no
// daemon.json: the procd init script only starts `berth daemon`. The file's settings are
// turned into daemon.json keys, which config.ts ranks below daemon.json and flags.
//
// The syntax is uci's export format:
//   package berth                      (optional)
//   config <type> ['<name>']
//       option <key> '<value>'
//       list <key> '<value>'           (repeatable)
//   # comments, blank lines
// Values may be bare words, 'single quoted' (no escapes), "double quoted" (backslash
// escapes) or a mix, as a shell would join them.
import { BerthError } from '../util/errors';

export interface UciSection {
  type: string;
  /** Undefined for anonymous sections (`config mqtt`). */
  name: string | undefined;
  options: Record<string, string>;
  lists: Record<string, string[]>;
}

export const DEFAULT_UCI_FILE = '/etc/config/berth';

/** Splits one line into shell-like words; a word is undefined past a comment. */
function words(line: string, lineNo: number, file: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length || line[i] === '#') break;
    let word = '';
    while (i < line.length && !/\s/.test(line[i]!)) {
      const c = line[i]!;
      if (c === "'") {
        const end = line.indexOf("'", i + 1);
        if (end < 0) throw new BerthError('EINVAL', `${file}:${lineNo}: unterminated single quote`);
        word += line.slice(i + 1, end);
        i = end + 1;
      } else if (c === '"') {
        i++;
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < line.length) i++;
          word += line[i++];
        }
        if (i >= line.length) throw new BerthError('EINVAL', `${file}:${lineNo}: unterminated double quote`);
        i++;
      } else if (c === '\\' && i + 1 < line.length) {
        word += line[i + 1];
        i += 2;
      } else {
        word += c;
        i++;
      }
    }
    out.push(word);
  }
  return out;
}

const NAME = /^[A-Za-z0-9_]+$/;

export function parseUci(text: string, file = 'uci'): UciSection[] {
  const sections: UciSection[] = [];
  let current: UciSection | undefined;
  text.split(/\r?\n/).forEach((line, index) => {
    const lineNo = index + 1;
    const w = words(line, lineNo, file);
    if (!w.length) return;
    const [keyword, a, b] = w;
    const fail = (why: string) => new BerthError('EINVAL', `${file}:${lineNo}: ${why}`);
    switch (keyword) {
      case 'package':
        return;
      case 'config':
        if (!a || !NAME.test(a)) throw fail(`bad section type ${JSON.stringify(a ?? '')}`);
        if (b !== undefined && !NAME.test(b)) throw fail(`bad section name ${JSON.stringify(b)}`);
        if (w.length > 3) throw fail('too many words after "config"');
        current = { type: a, name: b, options: {}, lists: {} };
        sections.push(current);
        return;
      case 'option':
      case 'list':
        if (!current) throw fail(`"${keyword}" before any "config" section`);
        if (!a || !NAME.test(a)) throw fail(`bad ${keyword} name ${JSON.stringify(a ?? '')}`);
        if (b === undefined) throw fail(`${keyword} ${a} has no value`);
        if (w.length > 3) throw fail(`${keyword} ${a}: quote values that contain spaces`);
        if (keyword === 'option') current.options[a] = b;
        else (current.lists[a] ??= []).push(b);
        return;
      default:
        throw fail(`unknown keyword ${JSON.stringify(keyword)}`);
    }
  });
  return sections;
}

const TRUE = new Set(['1', 'yes', 'on', 'true', 'enabled']);

/** UCI booleans as uci's own tools read them. */
export function uciBool(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  return TRUE.has(value.toLowerCase());
}

/** A section's option or list as a list (uci lets either spell a list). */
function listOf(section: UciSection, key: string): string[] | undefined {
  const values = [...(section.options[key] !== undefined ? section.options[key]!.split(/\s+/).filter(Boolean) : []), ...(section.lists[key] ?? [])];
  return values.length ? values : undefined;
}

/** The first section of a type: named sections are conventional, anonymous ones work too. */
function sectionOf(sections: UciSection[], type: string): UciSection | undefined {
  return sections.find((s) => s.type === type);
}

/**
 * /etc/config/berth as daemon.json keys. Only settings that are present appear, so an
 * absent option falls through to the default. Options for the init script alone
 * (docker_socket_compat, enabled) are not daemon settings and are skipped.
 */
export function uciToDaemonKeys(sections: UciSection[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const daemon = sectionOf(sections, 'daemon');
  if (daemon) {
    const o = daemon.options;
    const direct: Array<[string, string]> = [
      ['data_root', 'data-root'], ['exec_root', 'exec-root'], ['storage_driver', 'storage-driver'], ['log_level', 'log-level'],
      ['max_concurrent_downloads', 'max-concurrent-downloads'], ['max_layer_size', 'max-layer-size'], ['cgroup_parent', 'cgroup-parent'],
      ['bridge', 'bridge'], ['bridge_address', 'bip'], ['firewall_backend', 'firewall-backend'],
    ];
    for (const [uci, key] of direct) if (o[uci] !== undefined && o[uci] !== '') out[key] = o[uci];
    const sockets = listOf(daemon, 'socket');
    if (sockets) out.hosts = sockets;
    if (o.keep_layer_blobs !== undefined && o.keep_layer_blobs !== '') out['keep-layer-blobs'] = uciBool(o.keep_layer_blobs, false);
    const insecure = listOf(daemon, 'insecure_registry');
    if (insecure) out['insecure-registries'] = insecure;
  }
  const mqtt = sectionOf(sections, 'mqtt');
  if (mqtt && uciBool(mqtt.options.enabled, true) && mqtt.options.broker) {
    const o = mqtt.options;
    const direct: Array<[string, string]> = [
      ['broker', 'mqtt-broker'], ['device_id', 'device-id'], ['ca', 'mqtt-ca'], ['cert', 'mqtt-cert'], ['key', 'mqtt-key'],
      ['username', 'mqtt-username'], ['password', 'mqtt-password'], ['prefix', 'mqtt-prefix'],
      ['telemetry_interval', 'telemetry-interval'], ['max_payload', 'max-payload'],
    ];
    for (const [uci, key] of direct) if (o[uci] !== undefined && o[uci] !== '') out[key] = o[uci];
    const groups = listOf(mqtt, 'group');
    if (groups) out.groups = groups;
    const actions = listOf(mqtt, 'allowed_action');
    if (actions) out['allowed-actions'] = actions.join(',');
    const keys = mqtt.lists.command_key;
    if (keys?.length) out['command-keys'] = keys;
  }
  return out;
}
