// The stack manifest: one compose-like subset used by `berth stack deploy`, the fleet
// `deploy` action and retained desired state. Parsing is strict: every unknown key or
// wrong type is an EINVAL naming its path, so an operator finds the typo before a
// thousand routers do.
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { BerthError } from '../util/errors';
import type { CreateRequest } from '../engine/types';
import { canonicalJson } from './signing';

export interface ServiceSpec {
  image: string;
  command?: string[];
  entrypoint?: string[];
  env: Record<string, string>;
  /** Docker -p syntax: [ip:]hostPort:containerPort[/proto]. */
  ports: string[];
  /** Docker -v syntax: source:target[:ro|rw]. */
  volumes: string[];
  restart: 'no' | 'always' | 'on-failure' | 'unless-stopped';
  restartRetries?: number;
  resources: { memory?: number; cpus?: number; pids?: number };
  labels: Record<string, string>;
  networkMode?: 'bridge' | 'host' | 'none';
}

export interface StackManifest {
  name?: string;
  /** Operator-chosen version; when absent the content hash stands in. */
  generation: string;
  services: Record<string, ServiceSpec>;
}

export const LABEL_STACK = 'io.berth.stack';
export const LABEL_SERVICE = 'io.berth.service';
export const LABEL_HASH = 'io.berth.hash';
export const LABEL_SOURCE = 'io.berth.source';

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

function fail(path: string, why: string): never {
  throw new BerthError('EINVAL', `manifest: ${path}: ${why}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(path: string, obj: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) fail(`${path}.${k}`, `unknown key (allowed: ${allowed.join(', ')})`);
}

function stringList(path: string, v: unknown, shell: boolean): string[] {
  if (typeof v === 'string' && v.trim()) return shell ? ['/bin/sh', '-c', v] : [v];
  if (Array.isArray(v) && v.length && v.every((s) => typeof s === 'string')) return v as string[];
  fail(path, 'expected a string or a non-empty list of strings');
}

/** Compose allows both {K: V} and ["K=V"]; numbers and booleans become strings. */
function stringMap(path: string, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    v.forEach((item, i) => {
      if (typeof item !== 'string' || !/^[^=]+=/.test(item)) fail(`${path}[${i}]`, 'expected "KEY=value"');
      const eq = item.indexOf('=');
      out[item.slice(0, eq)] = item.slice(eq + 1);
    });
    return out;
  }
  if (!isPlainObject(v)) fail(path, 'expected a map or a list of "KEY=value"');
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') fail(`${path}.${k}`, 'expected a string, number or boolean');
    out[k] = String(val);
  }
  return out;
}

const PORT = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(?:(\d{1,5}):)?(\d{1,5})(?:\/(tcp|udp))?$/;
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

function parseSize(path: string, v: unknown): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(v.trim()) : null;
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) fail(path, `expected a size such as 64m or 1g, got ${JSON.stringify(v)}`);
  return Math.floor(Number(m[1]) * unit);
}

function parseService(path: string, raw: unknown): ServiceSpec {
  if (!isPlainObject(raw)) fail(path, 'expected a map');
  checkKeys(path, raw, ['image', 'command', 'entrypoint', 'env', 'environment', 'ports', 'volumes', 'restart', 'resources', 'labels', 'networks', 'network_mode']);
  if (typeof raw.image !== 'string' || !raw.image.trim()) fail(`${path}.image`, 'required: an image reference');
  const spec: ServiceSpec = {
    image: raw.image.trim(), env: { ...stringMap(`${path}.environment`, raw.environment), ...stringMap(`${path}.env`, raw.env) },
    ports: [], volumes: [], restart: 'no', resources: {}, labels: stringMap(`${path}.labels`, raw.labels),
  };
  if (raw.command !== undefined) spec.command = stringList(`${path}.command`, raw.command, true);
  if (raw.entrypoint !== undefined) spec.entrypoint = stringList(`${path}.entrypoint`, raw.entrypoint, false);
  for (const key of Object.keys(spec.labels)) if (key.startsWith('io.berth.')) fail(`${path}.labels.${key}`, 'io.berth.* labels are reserved');
  if (raw.ports !== undefined) {
    if (!Array.isArray(raw.ports)) fail(`${path}.ports`, 'expected a list');
    spec.ports = raw.ports.map((p, i) => {
      const text = typeof p === 'number' ? String(p) : p;
      const m = typeof text === 'string' ? PORT.exec(text) : null;
      if (!m || [m[2], m[3]].some((n) => n !== undefined && (Number(n) < 1 || Number(n) > 65535))) fail(`${path}.ports[${i}]`, `expected [ip:]host:container[/tcp|udp], got ${JSON.stringify(p)}`);
      return text as string;
    });
  }
  if (raw.volumes !== undefined) {
    if (!Array.isArray(raw.volumes)) fail(`${path}.volumes`, 'expected a list');
    spec.volumes = raw.volumes.map((v, i) => {
      const parts = typeof v === 'string' ? v.split(':') : [];
      if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]!.startsWith('/') || (parts[2] !== undefined && !['ro', 'rw'].includes(parts[2]))) {
        fail(`${path}.volumes[${i}]`, `expected source:/target[:ro|rw], got ${JSON.stringify(v)}`);
      }
      return v as string;
    });
  }
  if (raw.restart !== undefined) {
    const m = typeof raw.restart === 'string' ? /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(raw.restart) : null;
    if (!m || (m[2] !== undefined && m[1] !== 'on-failure')) fail(`${path}.restart`, 'expected no, always, unless-stopped or on-failure[:N]');
    spec.restart = m[1] as ServiceSpec['restart'];
    if (m[2] !== undefined) spec.restartRetries = Number(m[2]);
  }
  if (raw.resources !== undefined) {
    if (!isPlainObject(raw.resources)) fail(`${path}.resources`, 'expected a map');
    checkKeys(`${path}.resources`, raw.resources, ['memory', 'cpus', 'pids']);
    const r = raw.resources;
    if (r.memory !== undefined) spec.resources.memory = parseSize(`${path}.resources.memory`, r.memory);
    if (r.cpus !== undefined) {
      const cpus = Number(r.cpus);
      if (!(cpus > 0 && cpus <= 1024)) fail(`${path}.resources.cpus`, 'expected a positive number of CPUs');
      spec.resources.cpus = cpus;
    }
    if (r.pids !== undefined) {
      if (typeof r.pids !== 'number' || !Number.isSafeInteger(r.pids) || r.pids < 1) fail(`${path}.resources.pids`, 'expected a positive integer');
      spec.resources.pids = r.pids;
    }
  }
  const network = raw.network_mode ?? (Array.isArray(raw.networks) && raw.networks.length === 1 ? raw.networks[0] : raw.networks);
  if (network !== undefined) {
    if (!['bridge', 'host', 'none'].includes(network as string)) fail(`${path}.networks`, 'only one of bridge, host or none is supported');
    spec.networkMode = network as ServiceSpec['networkMode'];
  }
  return spec;
}

/** Parses YAML or JSON text (JSON is YAML) or an already-parsed object. */
export function parseManifest(input: string | unknown): StackManifest {
  let data: unknown = input;
  if (typeof input === 'string') {
    try {
      data = parseYaml(input, { maxAliasCount: 100 });
    } catch (err) {
      throw new BerthError('EINVAL', `manifest is neither valid YAML nor JSON: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (!isPlainObject(data)) fail('(top)', 'expected a map with "services"');
  checkKeys('(top)', data, ['version', 'name', 'generation', 'services']);
  if (data.name !== undefined && (typeof data.name !== 'string' || !NAME.test(data.name))) fail('name', 'expected lower-case letters, digits, "_" or "-" (at most 63)');
  if (data.generation !== undefined && typeof data.generation !== 'string' && typeof data.generation !== 'number') fail('generation', 'expected a string or number');
  if (!isPlainObject(data.services)) fail('services', 'required: a map of service name to service');
  const services: Record<string, ServiceSpec> = {};
  for (const [name, raw] of Object.entries(data.services)) {
    if (!NAME.test(name)) fail(`services.${name}`, 'service names are lower-case letters, digits, "_" or "-"');
    services[name] = parseService(`services.${name}`, raw);
  }
  const generation = data.generation !== undefined ? String(data.generation) : contentHash({ services }).slice(0, 12);
  return { ...(data.name !== undefined ? { name: data.name as string } : {}), generation, services };
}

export function contentHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/** The hash put on a service's container: any change to the spec means replacing it. */
export function serviceHash(spec: ServiceSpec): string {
  return contentHash(spec).slice(0, 16);
}

export function containerName(stack: string, service: string): string {
  return `${stack}_${service}`;
}

/** The engine create request for one service, labelled as owned by the stack. */
export function toCreateRequest(stack: string, service: string, spec: ServiceSpec, extraLabels: Record<string, string> = {}): CreateRequest {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp?: string; HostPort?: string }>> = {};
  for (const p of spec.ports) {
    const m = PORT.exec(p)!;
    const key = `${m[3]}/${m[4] ?? 'tcp'}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({ ...(m[1] ? { HostIp: m[1] } : {}), HostPort: m[2] ?? '' });
  }
  return {
    Image: spec.image,
    ...(spec.command ? { Cmd: spec.command } : {}),
    ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Labels: { ...spec.labels, ...extraLabels, [LABEL_STACK]: stack, [LABEL_SERVICE]: service, [LABEL_HASH]: serviceHash(spec) },
    ExposedPorts: exposed,
    HostConfig: {
      Binds: spec.volumes,
      PortBindings: bindings,
      RestartPolicy: { Name: spec.restart, ...(spec.restartRetries !== undefined ? { MaximumRetryCount: spec.restartRetries } : {}) },
      ...(spec.resources.memory ? { Memory: spec.resources.memory } : {}),
      ...(spec.resources.cpus ? { NanoCpus: Math.round(spec.resources.cpus * 1e9) } : {}),
      ...(spec.resources.pids ? { PidsLimit: spec.resources.pids } : {}),
      ...(spec.networkMode ? { NetworkMode: spec.networkMode } : {}),
    },
  };
}
