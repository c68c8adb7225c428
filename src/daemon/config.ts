// Daemon configuration: defaults, then the JSON config file (dockerd's daemon.json key
// names), then command-line flags, which win. Everything is validated here so the rest
// of the daemon can trust DaemonConfig; a bad key or value is an EINVAL naming the key.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { isIP } from 'node:net';
import { BerthError } from '../util/errors';
import type { LogLevel } from '../util/log';
import { parseFlags, formatFlagHelp, type FlagDefs } from '../cli/flags';
import { DEFAULT_UCI_FILE, parseUci, uciToDaemonKeys } from './uci';
import { FLEET_FLAGS, FLEET_FILE_KEYS, loadFleetConfig, type FleetConfig, type FleetFileKey } from '../fleet/config';

export interface DaemonConfig {
  dataRoot: string;
  execRoot: string;
  /** Listen addresses, always `unix:///absolute/path`. */
  hosts: string[];
  /** Storage driver chosen by the user; undefined lets the storage layer detect one. */
  storageDriver: string | undefined;
  /** Registries reached over plain HTTP: `host[:port]` names or CIDR ranges. */
  insecureRegistries: string[];
  logLevel: LogLevel;
  maxConcurrentDownloads: number;
  /** Upper bound on one layer's size in bytes; undefined leaves the image service's default. */
  maxLayerSize: number | undefined;
  /** Keep compressed layer blobs after extraction (by default they go once tar-split can rebuild the layer). */
  keepLayerBlobs: boolean;
  /** Parent cgroup of every container (dockerd's cgroup-parent); one per daemon on a shared host. */
  cgroupParent: string;
  /** The config file read, if any (for messages and `info`). */
  configFile: string | undefined;
  /** Default network's bridge (Docker's --bridge); 'none' turns bridge networking off. */
  bridge: string;
  /** Default bridge address with prefix (Docker's --bip); undefined = net-bridge's default. */
  bip: string | undefined;
  /** nftables, iptables, none, or auto (nft when installed). */
  firewallBackend: 'auto' | 'nftables' | 'iptables' | 'none';
  /** The MQTT fleet agent's settings; undefined when no broker is configured. */
  fleet?: FleetConfig;
}

export const DEFAULT_DATA_ROOT = '/var/lib/berth';
export const DEFAULT_EXEC_ROOT = '/run/berth';
export const DEFAULT_HOST = 'unix:///var/run/berth.sock';
export const DEFAULT_MAX_CONCURRENT_DOWNLOADS = 3;
export const DEFAULT_CGROUP_PARENT = 'berth';
export const DEFAULT_BRIDGE = 'berth0';

export const DAEMON_FLAGS = {
  'data-root': { type: 'string', valueName: 'DIR', help: `Root of persistent state (default ${DEFAULT_DATA_ROOT})` },
  'exec-root': { type: 'string', valueName: 'DIR', help: `Root of runtime state (default ${DEFAULT_EXEC_ROOT})` },
  host: { type: 'list', short: 'H', valueName: 'unix:///PATH', help: `Socket to listen on (default ${DEFAULT_HOST})` },
  config: { type: 'string', valueName: 'FILE', help: 'JSON config file with daemon.json key names' },
  'config-file': { type: 'string', valueName: 'FILE', hidden: true },
  uci: { type: 'string', valueName: 'FILE', help: `OpenWrt UCI config, below the JSON file and flags (default ${DEFAULT_UCI_FILE} when present)` },
  'storage-driver': { type: 'string', valueName: 'NAME', help: 'Storage driver (default: detected)' },
  'insecure-registry': { type: 'list', valueName: 'HOST', help: 'Registry to reach over plain HTTP (repeatable)' },
  'log-level': { type: 'string', short: 'l', valueName: 'LEVEL', help: 'debug, info, warn, error (default info)' },
  'max-concurrent-downloads': { type: 'string', valueName: 'N', help: `Parallel layer downloads per pull (default ${DEFAULT_MAX_CONCURRENT_DOWNLOADS})` },
  'max-layer-size': { type: 'string', valueName: 'SIZE', help: 'Largest layer accepted, e.g. 512MB' },
  'keep-layer-blobs': { type: 'bool', help: 'Keep compressed layer blobs after extraction (costs flash; default: removed once the layer can rebuild its tar)' },
  'cgroup-parent': { type: 'string', valueName: 'NAME', help: `Parent cgroup for containers (default ${DEFAULT_CGROUP_PARENT})` },
  bridge: { type: 'string', short: 'b', valueName: 'NAME', help: `Bridge of the default network, or "none" for no bridge networking (default ${DEFAULT_BRIDGE})` },
  bip: { type: 'string', valueName: 'CIDR', help: 'Address and prefix of the default bridge (default 10.88.0.1/16)' },
  'firewall-backend': { type: 'string', valueName: 'NAME', help: 'nftables, iptables, none or auto (default auto: nftables when nft is installed)' },
  ...FLEET_FLAGS,
  help: { type: 'bool', help: 'Print usage' },
} as const satisfies FlagDefs;

export const DAEMON_USAGE = `Usage:  berth daemon [OPTIONS]

Runs the berth daemon, serving the Docker Engine API on a unix socket.

${formatFlagHelp(DAEMON_FLAGS)}`;

const LOG_LEVELS: Record<string, LogLevel> = { debug: 'debug', info: 'info', warn: 'warn', warning: 'warn', error: 'error', fatal: 'error' };

function bad(key: string, why: string): BerthError {
  return new BerthError('EINVAL', `invalid value for "${key}": ${why}`);
}

function expectString(key: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw bad(key, 'expected a non-empty string');
  return value;
}

function expectStringArray(key: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v === '')) throw bad(key, 'expected an array of non-empty strings');
  return value as string[];
}

function absoluteDir(key: string, value: string): string {
  if (!isAbsolute(value)) throw bad(key, `"${value}" is not an absolute path`);
  return resolve(value);
}

export function normaliseHost(key: string, value: string): string {
  if (value.startsWith('unix://')) {
    const path = value.slice('unix://'.length);
    if (!isAbsolute(path)) throw bad(key, `"${value}": the socket path must be absolute`);
    return `unix://${resolve(path)}`;
  }
  if (isAbsolute(value)) return `unix://${resolve(value)}`;
  throw bad(key, `"${value}": berth listens on unix sockets only (unix:///path)`);
}

function parseLogLevel(key: string, value: unknown): LogLevel {
  const level = LOG_LEVELS[expectString(key, value).toLowerCase()];
  if (!level) throw bad(key, `"${String(value)}" is not one of debug, info, warn, error`);
  return level;
}

/** JSON booleans; "true"/"false" strings too, since UCI values arrive as strings (uci.ts maps its spellings). */
function parseBool(key: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw bad(key, `expected true or false, got ${JSON.stringify(value)}`);
}

function parsePositiveInt(key: string, value: unknown): number {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw bad(key, `expected a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** Byte sizes as dockerd takes memory sizes: a number of bytes or "512m", "2GB" (1024-based). */
export function parseByteSize(key: string, value: unknown): number {
  if (typeof value === 'number') return parsePositiveInt(key, value);
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value) : null;
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw bad(key, `expected a size such as 536870912 or "512MB", got ${JSON.stringify(value)}`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1) throw bad(key, 'must be at least one byte');
  return bytes;
}

function parseStorageDriver(key: string, value: unknown): string {
  const name = expectString(key, value);
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(name)) throw bad(key, `"${name}" is not a storage driver name`);
  return name;
}

function isCidr(value: string): boolean {
  const slash = value.indexOf('/');
  if (slash === -1) return false;
  const family = isIP(value.slice(0, slash));
  const bits = value.slice(slash + 1);
  return family !== 0 && /^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

function parseInsecureRegistries(key: string, values: string[]): string[] {
  for (const v of values) {
    if (v.includes('://')) throw bad(key, `"${v}" must be a host[:port] or a CIDR, without a scheme`);
    if (v.includes('/') && !isCidr(v)) throw bad(key, `"${v}" is neither a host[:port] nor a CIDR`);
    if (!v.includes('/') && !/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(v)) throw bad(key, `"${v}" is not a host[:port]`);
  }
  return [...new Set(values)];
}

/** Splits insecure registries the way dockerd reports them: CIDR ranges and named hosts. */
export function splitInsecureRegistries(values: readonly string[]): { cidrs: string[]; hosts: string[] } {
  return { cidrs: values.filter(isCidr), hosts: values.filter((v) => !isCidr(v)) };
}

type FileKey = 'data-root' | 'exec-root' | 'hosts' | 'storage-driver' | 'insecure-registries' | 'log-level' | 'max-concurrent-downloads' | 'max-layer-size' | 'keep-layer-blobs' | 'cgroup-parent' | 'bridge' | 'bip' | 'firewall-backend' | FleetFileKey;
const FILE_KEYS = new Set<string>(['data-root', 'exec-root', 'hosts', 'storage-driver', 'insecure-registries', 'log-level', 'max-concurrent-downloads', 'max-layer-size', 'keep-layer-blobs', 'cgroup-parent', 'bridge', 'bip', 'firewall-backend', ...FLEET_FILE_KEYS]);

/** Reads and validates a daemon.json-style file. Unknown keys are errors, as in dockerd. */
export function readConfigFile(path: string, read: (p: string) => string = (p) => readFileSync(p, 'utf8')): Partial<Record<FileKey, unknown>> {
  let text: string;
  try {
    text = read(path);
  } catch (err) {
    throw new BerthError('EINVAL', `cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BerthError('EINVAL', `config file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new BerthError('EINVAL', `config file ${path} must hold a JSON object`);
  const unknown = Object.keys(data).filter((k) => !FILE_KEYS.has(k));
  if (unknown.length) throw new BerthError('EINVAL', `config file ${path}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}`);
  return data as Partial<Record<FileKey, unknown>>;
}

/** /etc/config/berth (or --uci FILE) as daemon.json keys; nothing when the default file is absent. */
function readUciConfig(path: string | undefined, read?: (p: string) => string): Partial<Record<FileKey, unknown>> {
  const file = path ?? DEFAULT_UCI_FILE;
  if (path === undefined && !existsSync(file)) return {};
  let text: string;
  try {
    text = (read ?? ((p: string) => readFileSync(p, 'utf8')))(file);
  } catch (err) {
    if (path === undefined) return {};
    throw new BerthError('EINVAL', `cannot read UCI config ${file}: ${(err as Error).message}`, { cause: err });
  }
  return uciToDaemonKeys(parseUci(text, file)) as Partial<Record<FileKey, unknown>>;
}

export type DaemonCommand = { kind: 'help' } | { kind: 'run'; config: DaemonConfig };

/** Flags + optional config file -> a validated config. Throws EINVAL on any problem. */
export function loadDaemonConfig(argv: readonly string[], read?: (p: string) => string): DaemonCommand {
  const { flags, positionals } = parseFlags(argv, DAEMON_FLAGS);
  if (flags.help) return { kind: 'help' };
  if (positionals.length) throw new BerthError('EINVAL', `unexpected argument "${positionals[0]}"`);
  const configFile = flags.config ?? flags['config-file'];
  // UCI ranks below daemon.json: its keys only fill what the JSON file leaves out.
  const file = { ...readUciConfig(flags.uci, read), ...(configFile ? readConfigFile(configFile, read) : {}) };

  // Each setting: the flag if given, else the file's key, else the default.
  const pick = <T>(flagValue: T | undefined, fileKey: FileKey, fromFile: (key: string, v: unknown) => T, fallback: T): T => {
    if (flagValue !== undefined) return flagValue;
    if (file[fileKey] !== undefined) return fromFile(fileKey, file[fileKey]);
    return fallback;
  };

  const dataRoot = absoluteDir('data-root', pick(flags['data-root'], 'data-root', expectString, DEFAULT_DATA_ROOT));
  const execRoot = absoluteDir('exec-root', pick(flags['exec-root'], 'exec-root', expectString, DEFAULT_EXEC_ROOT));
  const hostValues = flags.host.length ? flags.host : pick(undefined, 'hosts', expectStringArray, [DEFAULT_HOST]);
  const hosts = [...new Set(hostValues.map((h) => normaliseHost(flags.host.length ? 'host' : 'hosts', h)))];
  if (hosts.length === 0) throw bad('hosts', 'at least one socket is needed');
  const storageDriver = flags['storage-driver'] !== undefined
    ? parseStorageDriver('storage-driver', flags['storage-driver'])
    : file['storage-driver'] !== undefined ? parseStorageDriver('storage-driver', file['storage-driver']) : undefined;
  const insecureRegistries = flags['insecure-registry'].length
    ? parseInsecureRegistries('insecure-registry', flags['insecure-registry'])
    : parseInsecureRegistries('insecure-registries', pick(undefined, 'insecure-registries', expectStringArray, []));
  const logLevel = flags['log-level'] !== undefined ? parseLogLevel('log-level', flags['log-level']) : pick(undefined, 'log-level', parseLogLevel, 'info');
  const maxConcurrentDownloads = flags['max-concurrent-downloads'] !== undefined
    ? parsePositiveInt('max-concurrent-downloads', flags['max-concurrent-downloads'])
    : pick(undefined, 'max-concurrent-downloads', parsePositiveInt, DEFAULT_MAX_CONCURRENT_DOWNLOADS);
  const maxLayerSize = flags['max-layer-size'] !== undefined
    ? parseByteSize('max-layer-size', flags['max-layer-size'])
    : file['max-layer-size'] !== undefined ? parseByteSize('max-layer-size', file['max-layer-size']) : undefined;

  const keepLayerBlobs = flags['keep-layer-blobs'] || pick(undefined, 'keep-layer-blobs', parseBool, false);

  const cgroupParent = parseCgroupParent(pick(flags['cgroup-parent'], 'cgroup-parent', expectString, DEFAULT_CGROUP_PARENT));

  const bridge = pick(flags.bridge, 'bridge', expectString, DEFAULT_BRIDGE);
  if (bridge !== 'none' && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/.test(bridge)) throw bad('bridge', `"${bridge}" is not an interface name (at most 15 characters)`);
  const bipValue = flags.bip ?? (file.bip !== undefined ? expectString('bip', file.bip) : undefined);
  if (bipValue !== undefined && (!isCidr(bipValue) || isIP(bipValue.split('/')[0]!) !== 4)) throw bad('bip', `"${bipValue}" is not an IPv4 CIDR such as 10.88.0.1/16`);
  const firewallBackend = pick(flags['firewall-backend'], 'firewall-backend', expectString, 'auto');
  if (!['auto', 'nftables', 'iptables', 'none'].includes(firewallBackend)) throw bad('firewall-backend', `"${firewallBackend}" is not one of auto, nftables, iptables, none`);

  return { kind: 'run', config: { dataRoot, execRoot, hosts, storageDriver, insecureRegistries, logLevel, maxConcurrentDownloads, maxLayerSize, keepLayerBlobs, cgroupParent, configFile, bridge, bip: bipValue, firewallBackend: firewallBackend as DaemonConfig['firewallBackend'], fleet: loadFleetConfig(flags, file) } };
}

/** One plain directory name: the parent lives directly under each controller's root. */
function parseCgroupParent(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(value)) throw bad('cgroup-parent', `${JSON.stringify(value)} is not a plain cgroup name`);
  return value;
}

export function socketPathOf(host: string): string {
  return host.startsWith('unix://') ? host.slice('unix://'.length) : host;
}
