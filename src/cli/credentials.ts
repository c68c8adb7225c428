// Registry credentials in docker's config.json format, so a file copied from a docker
// host works here and the other way round: {"auths":{"<server>":{"auth":"base64(user:pass)"}}}.
// The file is written atomically with mode 0600: it holds passwords in the clear.
import { promises as fsp } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../util/errors';
import { writeFileAtomic } from '../util/atomic';
import { DEFAULT_REGISTRY } from './reference';

/** Docker keys Docker Hub credentials under the old v1 index URL; so do we. */
export const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

export interface AuthEntry {
  auth?: string;
  identitytoken?: string;
  /** Some tools write these instead of (or beside) "auth". */
  username?: string;
  password?: string;
}

export interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  /** Other docker settings (credsStore, proxies, ...) are kept as they are. */
  [key: string]: unknown;
}

export interface Credentials {
  username: string;
  password: string;
  serveraddress: string;
  identitytoken?: string;
}

export function configDir(env: NodeJS.ProcessEnv): string {
  return env.BERTH_CONFIG || join(env.HOME || homedir(), '.berth');
}

export function configPath(env: NodeJS.ProcessEnv): string {
  return join(configDir(env), 'config.json');
}

/** "https://host:5000/v2/" -> "host:5000"; Docker Hub's many names -> "docker.io". */
export function hostnameOf(server: string): string {
  const host = server.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return DOCKER_HUB_HOSTS.has(host) ? DEFAULT_REGISTRY : host;
}

/** The config.json key a login to `server` is stored under, as docker chooses it. */
export function serverKey(server: string | undefined): string {
  if (!server || hostnameOf(server) === DEFAULT_REGISTRY) return DOCKER_HUB_KEY;
  return server;
}

export async function readConfig(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new BerthError('EINVAL', `cannot read ${path}: ${(err as Error).message}`);
  }
  if (text.trim() === '') return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as ConfigFile;
  } catch (err) {
    throw new BerthError('EINVAL', `${path} is not valid JSON: ${(err as Error).message}`);
  }
}

async function writeConfig(path: string, dir: string, config: ConfigFile): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, JSON.stringify(config, null, '\t') + '\n', 0o600);
}

function decodeEntry(key: string, entry: AuthEntry): Credentials | undefined {
  let username = entry.username ?? '';
  let password = entry.password ?? '';
  if (entry.auth) {
    const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon <= 0) return undefined;
    username = plain.slice(0, colon);
    password = plain.slice(colon + 1);
  }
  if (!username && !entry.identitytoken) return undefined;
  return { username, password, serveraddress: key, ...(entry.identitytoken ? { identitytoken: entry.identitytoken } : {}) };
}

/** Stored credentials for a registry host ("docker.io", "127.0.0.1:5000"), matching keys by hostname as docker does. */
export function findCredentials(config: ConfigFile, registry: string): Credentials | undefined {
  const auths = config.auths ?? {};
  const wanted = hostnameOf(registry);
  const exact = wanted === DEFAULT_REGISTRY ? DOCKER_HUB_KEY : registry;
  if (auths[exact]) return decodeEntry(exact, auths[exact]!);
  for (const [key, entry] of Object.entries(auths)) {
    if (hostnameOf(key) === wanted) return decodeEntry(key, entry);
  }
  return undefined;
}

export interface Login {
  username: string;
  password: string;
  /** When the registry hands one out, it is stored instead of the password. */
  identityToken?: string;
}

/** Stores a login under `key` (see serverKey), keeping everything else in the file. */
export async function saveCredentials(env: NodeJS.ProcessEnv, key: string, login: Login): Promise<string> {
  const path = configPath(env);
  const config = await readConfig(path);
  const entry: AuthEntry = login.identityToken
    ? { auth: Buffer.from(`${login.username}:`).toString('base64'), identitytoken: login.identityToken }
    : { auth: Buffer.from(`${login.username}:${login.password}`).toString('base64') };
  config.auths = { ...(config.auths ?? {}), [key]: entry };
  await writeConfig(path, configDir(env), config);
  return path;
}

/** Removes the login for `server`; false when there was none. */
export async function removeCredentials(env: NodeJS.ProcessEnv, server: string | undefined): Promise<boolean> {
  const path = configPath(env);
  const config = await readConfig(path);
  const auths = config.auths ?? {};
  const key = serverKey(server);
  const wanted = hostnameOf(key);
  const keys = Object.keys(auths).filter((k) => k === key || hostnameOf(k) === wanted);
  if (keys.length === 0) return false;
  for (const k of keys) delete auths[k];
  config.auths = auths;
  await writeConfig(path, configDir(env), config);
  return true;
}

/** The X-Registry-Auth header value: base64url JSON of docker's AuthConfig. */
export function registryAuthHeader(creds: Credentials): string {
  const body: Record<string, string> = { username: creds.username, password: creds.password, serveraddress: creds.serveraddress };
  if (creds.identitytoken) body.identitytoken = creds.identitytoken;
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

/** The header for pulling from `registry`, or undefined when nothing is stored for it. */
export async function authHeaderFor(env: NodeJS.ProcessEnv, registry: string): Promise<string | undefined> {
  const creds = findCredentials(await readConfig(configPath(env)), registry);
  return creds ? registryAuthHeader(creds) : undefined;
}
