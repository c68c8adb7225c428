// The fleet agent's settings: daemon flags and daemon.json keys, validated here so the
// daemon's config loader only spreads them in. No broker configured = no agent.
import { hostname } from 'node:os';
import { BerthError } from '../util/errors';
import type { FlagDefs, FlagValues } from '../cli/flags';
import { isAction, ACTIONS, type Action } from './protocol';
import { isTopicLevel } from './topics';
import { parsePublicKey } from './signing';

export interface FleetConfig {
  broker: string;
  deviceId: string;
  groups: string[];
  /** Paths of PEM files for TLS. */
  ca?: string;
  cert?: string;
  key?: string;
  username?: string;
  password?: string;
  prefix: string;
  /** Seconds between telemetry messages; 0 = off. */
  telemetryInterval: number;
  allowedActions: Action[];
  /** Operator Ed25519 public keys (PEM, base64 or file path); when any are set, commands must be signed. */
  commandKeys: string[];
  /** Largest command or manifest payload accepted, in bytes. */
  maxPayload: number;
}

export const DEFAULT_PREFIX = 'berth';
export const DEFAULT_MAX_PAYLOAD = 256 * 1024;

export const FLEET_FLAGS = {
  'mqtt-broker': { type: 'string', valueName: 'URL', help: 'Fleet broker (mqtt://, mqtts://, ws://, wss://); enables the fleet agent' },
  'device-id': { type: 'string', valueName: 'ID', help: 'Fleet device id (default: the hostname)' },
  group: { type: 'list', valueName: 'NAME', help: 'Fleet group of this device (repeatable)' },
  'mqtt-ca': { type: 'string', valueName: 'FILE', help: 'CA certificate for the broker (PEM)' },
  'mqtt-cert': { type: 'string', valueName: 'FILE', help: 'Client certificate for the broker (PEM)' },
  'mqtt-key': { type: 'string', valueName: 'FILE', help: 'Client key for the broker (PEM)' },
  'mqtt-username': { type: 'string', valueName: 'NAME', help: 'Broker user name' },
  'mqtt-password': { type: 'string', valueName: 'SECRET', help: 'Broker password' },
  'mqtt-prefix': { type: 'string', valueName: 'PREFIX', help: `Topic prefix (default ${DEFAULT_PREFIX})` },
  'telemetry-interval': { type: 'string', valueName: 'SECONDS', help: 'Publish telemetry every N seconds (default off)' },
  'allowed-actions': { type: 'string', valueName: 'LIST', help: 'Comma-separated fleet actions allowed (default all)' },
  'command-key': { type: 'list', valueName: 'KEY', help: 'Operator Ed25519 public key (PEM file or base64); requires signed commands (repeatable)' },
  'max-payload': { type: 'string', valueName: 'BYTES', help: `Largest fleet payload accepted (default ${DEFAULT_MAX_PAYLOAD})` },
} as const satisfies FlagDefs;

export const FLEET_FILE_KEYS = [
  'mqtt-broker', 'device-id', 'groups', 'mqtt-ca', 'mqtt-cert', 'mqtt-key', 'mqtt-username', 'mqtt-password',
  'mqtt-prefix', 'telemetry-interval', 'allowed-actions', 'command-keys', 'max-payload',
] as const;
export type FleetFileKey = (typeof FLEET_FILE_KEYS)[number];

function bad(key: string, why: string): BerthError {
  return new BerthError('EINVAL', `invalid value for "${key}": ${why}`);
}

function str(key: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw bad(key, 'expected a non-empty string');
  return v;
}

function strList(key: string, v: unknown): string[] {
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '')) throw bad(key, 'expected an array of non-empty strings');
  return v as string[];
}

function nonNegativeInt(key: string, v: unknown): number {
  const n = typeof v === 'string' && /^\d+s?$/.test(v.trim()) ? parseInt(v, 10) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw bad(key, `expected a whole number of seconds, got ${JSON.stringify(v)}`);
  return n;
}

export function parseBrokerUrl(key: string, value: string): string {
  let url: URL;
  try { url = new URL(value); } catch { throw bad(key, `"${value}" is not a URL`); }
  if (!['mqtt:', 'mqtts:', 'ws:', 'wss:'].includes(url.protocol)) throw bad(key, `"${value}": use mqtt://, mqtts://, ws:// or wss://`);
  return value;
}

/** Flags win over the file's keys; returns undefined when no broker is configured. */
export function loadFleetConfig(flags: FlagValues<typeof FLEET_FLAGS>, file: Partial<Record<FleetFileKey, unknown>>): FleetConfig | undefined {
  const pick = (flag: string | undefined, key: FleetFileKey): unknown => flag ?? file[key];
  const brokerValue = pick(flags['mqtt-broker'], 'mqtt-broker');
  if (brokerValue === undefined) return undefined;
  const broker = parseBrokerUrl('mqtt-broker', str('mqtt-broker', brokerValue));

  const deviceId = str('device-id', pick(flags['device-id'], 'device-id') ?? hostname());
  if (!isTopicLevel(deviceId)) throw bad('device-id', `"${deviceId}" cannot be a topic level (letters, digits, "_.:@-")`);
  const groups = flags.group.length ? flags.group : file.groups !== undefined ? strList('groups', file.groups) : [];
  for (const g of groups) if (!isTopicLevel(g)) throw bad('group', `"${g}" cannot be a topic level`);
  const prefix = str('mqtt-prefix', pick(flags['mqtt-prefix'], 'mqtt-prefix') ?? DEFAULT_PREFIX);
  if (!prefix.split('/').every(isTopicLevel)) throw bad('mqtt-prefix', `"${prefix}" must be topic levels without wildcards`);

  const allowedRaw = pick(flags['allowed-actions'], 'allowed-actions');
  const allowedActions = allowedRaw === undefined ? [...ACTIONS] : strList('allowed-actions', allowedRaw).map((a) => {
    if (!isAction(a)) throw bad('allowed-actions', `unknown action "${a}" (known: ${ACTIONS.join(', ')})`);
    return a;
  });
  const commandKeys = flags['command-key'].length ? flags['command-key'] : file['command-keys'] !== undefined ? strList('command-keys', file['command-keys']) : [];
  for (const k of commandKeys) {
    try { parsePublicKey(k); } catch (err) { throw bad('command-keys', (err as Error).message); }
  }
  const opt = (flag: string | undefined, key: FleetFileKey): string | undefined => {
    const v = pick(flag, key);
    return v === undefined ? undefined : str(key, v);
  };
  const maxPayloadRaw = pick(flags['max-payload'], 'max-payload');
  const maxPayload = maxPayloadRaw === undefined ? DEFAULT_MAX_PAYLOAD : nonNegativeInt('max-payload', maxPayloadRaw);
  if (maxPayload < 1024) throw bad('max-payload', 'must be at least 1024 bytes');
  const telemetryRaw = pick(flags['telemetry-interval'], 'telemetry-interval');

  return {
    broker, deviceId, groups: [...new Set(groups)], prefix, allowedActions, commandKeys, maxPayload,
    ca: opt(flags['mqtt-ca'], 'mqtt-ca'), cert: opt(flags['mqtt-cert'], 'mqtt-cert'), key: opt(flags['mqtt-key'], 'mqtt-key'),
    username: opt(flags['mqtt-username'], 'mqtt-username'), password: opt(flags['mqtt-password'], 'mqtt-password'),
    telemetryInterval: telemetryRaw === undefined ? 0 : nonNegativeInt('telemetry-interval', telemetryRaw),
  };
}
