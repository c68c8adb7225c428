// `berth create` (also `container create`): docker's create flags turned into a
// POST /containers/create body. When the image is missing the CLI pulls it (progress
// on stderr, as docker run shows it) and tries again. `run` shares all of this.
import { readFileSync } from 'node:fs';
import { BerthError } from '../../util/errors';
import { isDaemonError } from '../../api/client';
import { parseFlags, formatFlagHelp, type FlagDefs, type FlagValues } from '../flags';
import { authHeaderFor } from '../credentials';
import { splitReference } from '../reference';
import { ProgressPrinter, displayStream, responseError } from '../progress';
import { isTerminal } from '../io';
import { parseCpus, parseGoDuration, parseMemory, parseRestartPolicy } from '../containers';
import type { CliContext } from '../command';

export const CREATE_FLAGS = {
  'add-host': { type: 'list', help: 'Add a custom host-to-IP mapping (host:ip)' },
  'cap-add': { type: 'list', help: 'Add Linux capabilities' },
  'cap-drop': { type: 'list', help: 'Drop Linux capabilities' },
  'cpu-shares': { type: 'string', short: 'c', help: 'CPU shares (relative weight)' },
  cpus: { type: 'string', help: 'Number of CPUs' },
  device: { type: 'list', help: 'Add a host device to the container' },
  'device-cgroup-rule': { type: 'list', help: 'Add a rule to the cgroup allowed devices list' },
  dns: { type: 'list', help: 'Set custom DNS servers' },
  entrypoint: { type: 'string', help: 'Overwrite the default ENTRYPOINT of the image' },
  env: { type: 'list', short: 'e', help: 'Set environment variables' },
  'env-file': { type: 'list', help: 'Read in a file of environment variables' },
  expose: { type: 'list', help: 'Expose a port or a range of ports' },
  'group-add': { type: 'list', help: 'Add additional groups to join' },
  'health-cmd': { type: 'string', help: 'Command to run to check health' },
  'health-interval': { type: 'string', help: 'Time between running the check (ms|s|m|h) (default 0s)', valueName: 'duration' },
  'health-retries': { type: 'string', help: 'Consecutive failures needed to report unhealthy', valueName: 'int' },
  'health-start-interval': { type: 'string', help: 'Time between running the check during the start period (ms|s|m|h) (default 0s)', valueName: 'duration' },
  'health-start-period': { type: 'string', help: 'Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)', valueName: 'duration' },
  'health-timeout': { type: 'string', help: 'Maximum time to allow one check to run (ms|s|m|h) (default 0s)', valueName: 'duration' },
  hostname: { type: 'string', short: 'h', help: 'Container host name' },
  init: { type: 'bool', help: 'Run an init inside the container that forwards signals and reaps processes' },
  interactive: { type: 'bool', short: 'i', help: 'Keep STDIN open even if not attached' },
  label: { type: 'list', short: 'l', help: 'Set meta data on a container' },
  memory: { type: 'string', short: 'm', help: 'Memory limit' },
  'memory-swap': { type: 'string', help: "Swap limit equal to memory plus swap: '-1' to enable unlimited swap" },
  mount: { type: 'list', help: 'Attach a filesystem mount to the container' },
  name: { type: 'string', help: 'Assign a name to the container' },
  'no-healthcheck': { type: 'bool', help: 'Disable any container-specified HEALTHCHECK' },
  network: { type: 'string', help: 'Connect a container to a network', valueName: 'network' },
  'pids-limit': { type: 'string', help: 'Tune container pids limit (set -1 for unlimited)' },
  platform: { type: 'string', help: 'Set platform if server is multi-platform capable' },
  privileged: { type: 'bool', help: 'Give extended privileges to this container' },
  publish: { type: 'list', short: 'p', help: "Publish a container's port(s) to the host" },
  pull: { type: 'string', default: 'missing', help: 'Pull image before creating ("always", "missing", "never")' },
  'read-only': { type: 'bool', help: "Mount the container's root filesystem as read only" },
  restart: { type: 'string', default: 'no', help: 'Restart policy to apply when a container exits' },
  rm: { type: 'bool', help: 'Automatically remove the container when it exits' },
  'stop-signal': { type: 'string', help: 'Signal to stop the container' },
  'stop-timeout': { type: 'string', help: 'Timeout (in seconds) to stop a container' },
  tmpfs: { type: 'list', help: 'Mount a tmpfs directory' },
  tty: { type: 'bool', short: 't', help: 'Allocate a pseudo-TTY' },
  ulimit: { type: 'list', help: 'Ulimit options' },
  user: { type: 'string', short: 'u', help: 'Username or UID (format: <name|uid>[:<group|gid>])' },
  volume: { type: 'list', short: 'v', help: 'Bind mount a volume' },
  workdir: { type: 'string', short: 'w', help: 'Working directory inside the container' },
  quiet: { type: 'bool', short: 'q', help: 'Suppress the pull output' },
} as const satisfies FlagDefs;

export type CreateFlags = FlagValues<typeof CREATE_FLAGS>;

export const summary = 'Create a new container';
export const passthrough = true;
export const usage = `Usage:  berth create [OPTIONS] IMAGE [COMMAND] [ARG...]

${summary}

Aliases:
  berth container create, berth create

${formatFlagHelp(CREATE_FLAGS)}`;

const validDeviceMode = (mode: string) => /^[rwm]{1,3}$/.test(mode) && new Set(mode).size === mode.length;

/** docker's --device HOST[:CONTAINER][:MODE]; a second part that is a mode is the mode. */
export function parseDevice(spec: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = spec.split(':');
  if (parts.length > 3 || !parts[0]) throw new BerthError('EINVAL', `invalid device specification: ${spec}`);
  let target = '';
  let mode = parts.length === 3 ? parts[2]! : 'rwm';
  if (parts.length >= 2) {
    if (parts.length === 2 && validDeviceMode(parts[1]!)) mode = parts[1]!;
    else target = parts[1]!;
  }
  if (!validDeviceMode(mode)) throw new BerthError('EINVAL', `invalid device mode: ${mode}`);
  const PathInContainer = target || parts[0];
  if (!PathInContainer.startsWith('/')) throw new BerthError('EINVAL', `bad format for path: ${PathInContainer}`);
  return { PathOnHost: parts[0], PathInContainer, CgroupPermissions: mode };
}

/** -e KEY=VALUE, or KEY alone to copy it from this environment (dropped when unset). */
function envEntries(flags: CreateFlags, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  const add = (entry: string): void => {
    if (entry.includes('=')) out.push(entry);
    else if (env[entry] !== undefined) out.push(`${entry}=${env[entry]}`);
  };
  for (const file of flags['env-file']) {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (err) { throw new BerthError('EINVAL', `open ${file}: ${(err as Error).message}`); }
    for (const line of text.split(/\r?\n/)) {
      const trimmed = line.trimStart();
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      add(trimmed);
    }
  }
  for (const entry of flags.env) add(entry);
  return out;
}

function parsePortRange(text: string, what: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) throw new BerthError('EINVAL', `invalid ${what}: ${text}`);
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (start < 1 || end > 65535 || end < start) throw new BerthError('EINVAL', `invalid ${what}: ${text}`);
  return [start, end];
}

/** -p [ip:][hostPort:]containerPort[/proto], ranges allowed on both sides. */
export function parsePublish(spec: string): Array<{ key: string; HostIp: string; HostPort: string }> {
  let rest = spec;
  let proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash !== -1) { proto = rest.slice(slash + 1).toLowerCase(); rest = rest.slice(0, slash); }
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new BerthError('EINVAL', `invalid proto: ${proto}`);
  let ip = '';
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    ip = rest.slice(1, close);
    rest = rest.slice(close + 2);
  }
  const parts = rest.split(':');
  if (parts.length > 3) throw new BerthError('EINVAL', `invalid port format: ${spec}`);
  const containerPart = parts.pop()!;
  const hostPart = parts.pop() ?? '';
  if (parts.length) ip = parts.pop()!;
  const [cStart, cEnd] = parsePortRange(containerPart, 'containerPort');
  const hostRange = hostPart === '' ? undefined : parsePortRange(hostPart, 'hostPort');
  if (hostRange && hostRange[1] - hostRange[0] !== cEnd - cStart && hostRange[0] !== hostRange[1]) {
    throw new BerthError('EINVAL', `invalid ranges specified for container and host Ports: ${containerPart} and ${hostPart}`);
  }
  const out: Array<{ key: string; HostIp: string; HostPort: string }> = [];
  for (let p = cStart; p <= cEnd; p++) {
    const hostPort = !hostRange ? '' : hostRange[0] === hostRange[1] && cStart === cEnd ? String(hostRange[0]) : String(hostRange[0] + (p - cStart));
    out.push({ key: `${p}/${proto}`, HostIp: ip, HostPort: hostPort });
  }
  return out;
}

type MountSpec = { Type: 'bind' | 'volume' | 'tmpfs'; Source?: string; Target: string; ReadOnly?: boolean; TmpfsOptions?: { SizeBytes?: number; Mode?: number } };

/** --mount type=bind,source=/a,target=/b[,readonly] (also src/dst/destination, ro=true, tmpfs-size, tmpfs-mode). */
export function parseMount(spec: string): MountSpec {
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    fields.set((eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase(), eq === -1 ? '' : part.slice(eq + 1));
  }
  const type = (fields.get('type') || 'volume') as MountSpec['Type'];
  if (!['bind', 'volume', 'tmpfs'].includes(type)) throw new BerthError('EINVAL', `invalid argument "${spec}" for "--mount" flag: mount type '${type}' is not supported`);
  const target = fields.get('target') ?? fields.get('dst') ?? fields.get('destination');
  if (!target) throw new BerthError('EINVAL', `invalid argument "${spec}" for "--mount" flag: target is required`);
  const mount: MountSpec = { Type: type, Target: target };
  const source = fields.get('source') ?? fields.get('src');
  if (source) mount.Source = source;
  const ro = fields.has('readonly') ? fields.get('readonly') : fields.get('ro');
  if (ro !== undefined && ro !== 'false' && ro !== '0') mount.ReadOnly = true;
  if (type === 'tmpfs') {
    const opts: { SizeBytes?: number; Mode?: number } = {};
    if (fields.get('tmpfs-size')) opts.SizeBytes = parseMemory(fields.get('tmpfs-size')!, '--mount');
    if (fields.get('tmpfs-mode')) opts.Mode = parseInt(fields.get('tmpfs-mode')!, 8);
    if (Object.keys(opts).length) mount.TmpfsOptions = opts;
  }
  return mount;
}

function keyValues(entries: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq === -1) out[entry] = ''; else out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

function optionalInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new BerthError('EINVAL', `invalid argument "${value}" for "${flag}" flag: not an integer`);
  return n;
}

/** docker's --health-* and --no-healthcheck flags -> Config.Healthcheck (undefined: the image's applies). */
export function healthcheckOf(flags: CreateFlags): Record<string, unknown> | undefined {
  const duration = (name: 'health-interval' | 'health-timeout' | 'health-start-period' | 'health-start-interval') => {
    const value = flags[name];
    return value === undefined ? 0 : parseGoDuration(value, `--${name}`);
  };
  const interval = duration('health-interval');
  const timeout = duration('health-timeout');
  const startPeriod = duration('health-start-period');
  const startInterval = duration('health-start-interval');
  const retries = optionalInt(flags['health-retries'], '--health-retries') ?? 0;
  const cmd = flags['health-cmd'] ?? '';
  const haveSettings = cmd !== '' || interval !== 0 || timeout !== 0 || startPeriod !== 0 || startInterval !== 0 || retries !== 0;
  if (flags['no-healthcheck']) {
    if (haveSettings) throw new BerthError('EINVAL', '--no-healthcheck conflicts with --health-* options');
    return { Test: ['NONE'] };
  }
  if (!haveSettings) return undefined;
  if (interval < 0) throw new BerthError('EINVAL', '--health-interval cannot be negative');
  if (timeout < 0) throw new BerthError('EINVAL', '--health-timeout cannot be negative');
  if (retries < 0) throw new BerthError('EINVAL', '--health-retries cannot be negative');
  if (startPeriod < 0) throw new BerthError('EINVAL', '--health-start-period cannot be negative');
  if (startInterval < 0) throw new BerthError('EINVAL', '--health-start-interval cannot be negative');
  return {
    ...(cmd ? { Test: ['CMD-SHELL', cmd] } : {}),
    Interval: interval, Timeout: timeout, StartPeriod: startPeriod, StartInterval: startInterval, Retries: retries,
  };
}

export interface CreatePlan {
  image: string;
  name?: string;
  platform?: string;
  body: Record<string, unknown>;
}

/** The create body for docker's flags; `attach` says whether the caller will attach (run without -d). */
export function buildCreateRequest(flags: CreateFlags, image: string, command: string[], env: NodeJS.ProcessEnv, attach: { stdin: boolean; output: boolean; autoRemove: boolean }): CreatePlan {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const spec of flags.publish) {
    for (const { key, HostIp, HostPort } of parsePublish(spec)) {
      exposed[key] = {};
      (bindings[key] ??= []).push({ HostIp, HostPort });
    }
  }
  for (const spec of flags.expose) {
    const [port, proto = 'tcp'] = spec.split('/');
    const [start, end] = parsePortRange(port!, 'port');
    for (let p = start; p <= end; p++) exposed[`${p}/${proto}`] = {};
  }
  const binds: string[] = [];
  const volumes: Record<string, object> = {};
  for (const v of flags.volume) {
    // "-v /data" is an anonymous volume; anything with a source is a bind or named volume.
    if (!v.includes(':')) volumes[v] = {};
    else binds.push(v);
  }
  const tmpfs: Record<string, string> = {};
  for (const t of flags.tmpfs) {
    const colon = t.indexOf(':');
    if (colon === -1) tmpfs[t] = ''; else tmpfs[t.slice(0, colon)] = t.slice(colon + 1);
  }
  const ulimits = flags.ulimit.map((u) => {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(u);
    if (!m) throw new BerthError('EINVAL', `invalid argument "${u}" for "--ulimit" flag`);
    return { Name: m[1]!, Soft: Number(m[2]), Hard: Number(m[3] ?? m[2]) };
  });
  const devices = flags.device.map(parseDevice);
  const restart = parseRestartPolicy(flags.restart ?? 'no');
  if (attach.autoRemove && restart.Name !== 'no') throw new BerthError('EINVAL', 'Conflicting options: --restart and --rm');

  const hostConfig: Record<string, unknown> = {
    Binds: binds.length ? binds : null,
    NetworkMode: flags.network || 'default',
    PortBindings: Object.keys(bindings).length ? bindings : {},
    RestartPolicy: restart,
    AutoRemove: attach.autoRemove,
    Privileged: flags.privileged,
    ReadonlyRootfs: flags['read-only'],
    Mounts: flags.mount.length ? flags.mount.map(parseMount) : null,
    CapAdd: flags['cap-add'].length ? flags['cap-add'] : null,
    CapDrop: flags['cap-drop'].length ? flags['cap-drop'] : null,
    Dns: flags.dns,
    ExtraHosts: flags['add-host'].length ? flags['add-host'] : null,
    GroupAdd: flags['group-add'].length ? flags['group-add'] : null,
  };
  if (Object.keys(tmpfs).length) hostConfig.Tmpfs = tmpfs;
  if (ulimits.length) hostConfig.Ulimits = ulimits;
  if (devices.length) hostConfig.Devices = devices;
  if (flags['device-cgroup-rule'].length) hostConfig.DeviceCgroupRules = flags['device-cgroup-rule'];
  if (flags.init) hostConfig.Init = true;
  if (flags.memory) hostConfig.Memory = parseMemory(flags.memory, '--memory');
  if (flags['memory-swap']) hostConfig.MemorySwap = flags['memory-swap'] === '-1' ? -1 : parseMemory(flags['memory-swap'], '--memory-swap');
  if (flags.cpus) hostConfig.NanoCpus = parseCpus(flags.cpus);
  const shares = optionalInt(flags['cpu-shares'], '--cpu-shares');
  if (shares !== undefined) hostConfig.CpuShares = shares;
  const pids = optionalInt(flags['pids-limit'], '--pids-limit');
  if (pids !== undefined) hostConfig.PidsLimit = pids;

  const body: Record<string, unknown> = {
    Image: image,
    Cmd: command.length ? command : null,
    Env: envEntries(flags, env),
    Labels: keyValues(flags.label),
    Tty: flags.tty,
    OpenStdin: flags.interactive,
    StdinOnce: flags.interactive && attach.stdin,
    AttachStdin: attach.stdin,
    AttachStdout: attach.output,
    AttachStderr: attach.output,
    HostConfig: hostConfig,
    NetworkingConfig: { EndpointsConfig: {} },
  };
  if (Object.keys(exposed).length) body.ExposedPorts = exposed;
  if (Object.keys(volumes).length) body.Volumes = volumes;
  // An empty --entrypoint clears the image's entrypoint; docker sends [""] for it.
  if (flags.entrypoint !== undefined) body.Entrypoint = [flags.entrypoint];
  if (flags.workdir) body.WorkingDir = flags.workdir;
  if (flags.user) body.User = flags.user;
  if (flags.hostname) body.Hostname = flags.hostname;
  if (flags['stop-signal']) body.StopSignal = flags['stop-signal'];
  const stopTimeout = optionalInt(flags['stop-timeout'], '--stop-timeout');
  if (stopTimeout !== undefined) body.StopTimeout = stopTimeout;
  const healthcheck = healthcheckOf(flags);
  if (healthcheck) body.Healthcheck = healthcheck;
  return { image, name: flags.name || undefined, platform: flags.platform || undefined, body };
}

/** `docker run` pulls into stderr: "Unable to find image ... locally", then pull progress. */
async function pullImage(ctx: CliContext, image: string, platform: string | undefined, quiet: boolean): Promise<void> {
  const ref = splitReference(image);
  const auth = await authHeaderFor(ctx.env, ref.domain);
  const res = await ctx.client().raw('POST', '/images/create', {
    query: { fromImage: `${ref.domain}/${ref.path}`, tag: ref.digest ?? ref.tag ?? 'latest', platform },
    headers: auth ? { 'X-Registry-Auth': auth } : {},
  });
  if ((res.statusCode ?? 0) >= 400) throw await responseError(res);
  const printer = quiet ? undefined : new ProgressPrinter(ctx.stderr, isTerminal(ctx.stderr), (ctx.stderr as { columns?: number }).columns);
  await displayStream(res, printer);
}

function displayName(image: string): string {
  const ref = splitReference(image);
  return ref.tag === undefined && ref.digest === undefined ? `${image}:latest` : image;
}

/** Creates the container, pulling first or on "No such image" as --pull says. Returns the id. */
export async function createContainer(ctx: CliContext, plan: CreatePlan, pullPolicy: string, quiet: boolean): Promise<{ Id: string; Warnings: string[] }> {
  if (!['always', 'missing', 'never'].includes(pullPolicy)) throw new BerthError('EINVAL', `invalid pull option: '${pullPolicy}': must be one of "always", "missing" or "never"`);
  const send = (): Promise<{ Id: string; Warnings: string[] | null }> => ctx.client().json('POST', '/containers/create', { query: { name: plan.name, platform: plan.platform }, body: plan.body });
  if (pullPolicy === 'always') await pullImage(ctx, plan.image, plan.platform, quiet);
  let created: { Id: string; Warnings: string[] | null };
  try {
    created = await send();
  } catch (err) {
    if (pullPolicy !== 'missing' || !isDaemonError(err) || err.status !== 404 || !/no such image/i.test(err.message)) throw err;
    ctx.stderr.write(`Unable to find image '${displayName(plan.image)}' locally\n`);
    await pullImage(ctx, plan.image, plan.platform, quiet);
    created = await send();
  }
  for (const warning of created.Warnings ?? []) ctx.stderr.write(`WARNING: ${warning}\n`);
  return { Id: created.Id, Warnings: created.Warnings ?? [] };
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseFlags(args, CREATE_FLAGS, { stopAtPositional: true });
  if (positionals.length < 1) throw new BerthError('EINVAL', `"${ctx.commandName}" requires at least 1 argument`);
  const [image, ...command] = positionals;
  const plan = buildCreateRequest(flags, image!, command, ctx.env, { stdin: false, output: false, autoRemove: flags.rm });
  const created = await createContainer(ctx, plan, flags.pull ?? 'missing', flags.quiet);
  ctx.stdout.write(`${created.Id}\n`);
  return 0;
}
