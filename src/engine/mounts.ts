// Volumes and the files Docker binds into every container (/etc/resolv.conf, hosts,
// hostname). Parsing is pure; preparing (directories, seeding named volumes from the
// image) touches the data root.
import { promises as fsp } from 'node:fs';
import { join, posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BerthError } from '../util/errors';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic';
import { applyLayerByCopy } from '../storage';
import type { HostConfig } from './types';

/** One entry of inspect's Mounts, plus what berth needs to set it up and tear it down. */
export interface MountRecord {
  Type: 'bind' | 'volume' | 'tmpfs';
  /** Volume name (volumes only). */
  Name?: string;
  /** Host path ('' for tmpfs). */
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  /** Volumes Docker made for the image's VOLUME entries or an unnamed -v /path: removed with `rm -v`. */
  anonymous?: boolean;
  /** Copy the image's content at the destination into a new volume (Docker's default; -v x:/y:nocopy turns it off). */
  seed?: boolean;
  /** tmpfs mount options ("size=65536k,mode=1777"). */
  tmpfsOptions?: string;
}

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function volumeDataPath(volumesRoot: string, name: string): string {
  return join(volumesRoot, name, '_data');
}

function containerPath(path: string, what: string): string {
  if (!path || !posix.isAbsolute(path)) throw new BerthError('EINVAL', `invalid mount config: ${what} "${path}" must be an absolute path`);
  const clean = posix.normalize(path);
  if (clean === '/') throw new BerthError('EINVAL', 'invalid mount config: the destination cannot be "/"');
  return clean.replace(/\/$/, '');
}

/** Docker's `-v` syntax: /host:/ctr[:opts], name:/ctr[:opts], or /ctr alone (an anonymous volume). */
function parseBind(spec: string, volumesRoot: string): MountRecord {
  const parts = spec.split(':');
  if (parts.length === 1) return anonymousVolume(containerPath(parts[0]!, 'destination'), volumesRoot);
  if (parts.length > 3) throw new BerthError('EINVAL', `invalid volume specification: '${spec}'`);
  const [source, target, opts = ''] = parts as [string, string, string?];
  const options = opts.split(',').filter(Boolean);
  for (const o of options) {
    if (!['ro', 'rw', 'z', 'Z', 'nocopy', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(o)) {
      throw new BerthError('EINVAL', `invalid mode: ${o}`);
    }
  }
  const rw = !options.includes('ro');
  const propagation = options.find((o) => /private|shared|slave/.test(o)) ?? 'rprivate';
  const destination = containerPath(target, 'destination');
  if (source.startsWith('/')) {
    return { Type: 'bind', Source: posix.normalize(source), Destination: destination, Mode: opts, RW: rw, Propagation: propagation };
  }
  if (!VOLUME_NAME.test(source)) throw new BerthError('EINVAL', `"${source}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
  return { Type: 'volume', Name: source, Source: volumeDataPath(volumesRoot, source), Destination: destination, Driver: 'local', Mode: opts || 'z', RW: rw, Propagation: '', seed: !options.includes('nocopy') };
}

function anonymousVolume(destination: string, volumesRoot: string): MountRecord {
  const name = randomBytes(32).toString('hex');
  return { Type: 'volume', Name: name, Source: volumeDataPath(volumesRoot, name), Destination: destination, Driver: 'local', Mode: '', RW: true, Propagation: '', anonymous: true, seed: true };
}

/** Every mount of a new container, in Docker's precedence: Binds, Mounts, Tmpfs, then image VOLUMEs not covered. */
export function planMounts(hc: HostConfig, imageVolumes: Record<string, object> | null, volumesRoot: string): MountRecord[] {
  const mounts: MountRecord[] = [];
  const add = (m: MountRecord) => {
    if (mounts.some((o) => o.Destination === m.Destination)) throw new BerthError('EINVAL', `Duplicate mount point: ${m.Destination}`);
    mounts.push(m);
  };
  for (const spec of hc.Binds ?? []) add(parseBind(spec, volumesRoot));
  for (const m of hc.Mounts ?? []) {
    const destination = containerPath(m.Target, 'target');
    switch (m.Type) {
      case 'bind':
        if (!m.Source || !posix.isAbsolute(m.Source)) throw new BerthError('EINVAL', 'invalid mount config for type "bind": invalid mount path: the source must be an absolute path');
        add({ Type: 'bind', Source: posix.normalize(m.Source), Destination: destination, Mode: '', RW: !m.ReadOnly, Propagation: 'rprivate' });
        break;
      case 'volume':
        if (!m.Source) { add({ ...anonymousVolume(destination, volumesRoot), RW: !m.ReadOnly }); break; }
        if (!VOLUME_NAME.test(m.Source)) throw new BerthError('EINVAL', `invalid volume name "${m.Source}"`);
        add({ Type: 'volume', Name: m.Source, Source: volumeDataPath(volumesRoot, m.Source), Destination: destination, Driver: 'local', Mode: 'z', RW: !m.ReadOnly, Propagation: '', seed: true });
        break;
      case 'tmpfs': {
        const opts: string[] = [];
        if (m.TmpfsOptions?.SizeBytes) opts.push(`size=${m.TmpfsOptions.SizeBytes}`);
        if (m.TmpfsOptions?.Mode) opts.push(`mode=${m.TmpfsOptions.Mode.toString(8)}`);
        add({ Type: 'tmpfs', Source: '', Destination: destination, Mode: '', RW: !m.ReadOnly, Propagation: '', tmpfsOptions: opts.join(',') });
        break;
      }
      default:
        throw new BerthError('EINVAL', `invalid mount config: mount type "${String((m as { Type: unknown }).Type)}" is not supported`);
    }
  }
  for (const [target, options] of Object.entries(hc.Tmpfs ?? {})) {
    add({ Type: 'tmpfs', Source: '', Destination: containerPath(target, 'tmpfs target'), Mode: options ?? '', RW: !/(^|,)ro(,|$)/.test(options ?? ''), Propagation: '', tmpfsOptions: options ?? '' });
  }
  for (const target of Object.keys(imageVolumes ?? {})) {
    const destination = containerPath(target, 'volume');
    if (!mounts.some((m) => m.Destination === destination)) add(anonymousVolume(destination, volumesRoot));
  }
  return mounts;
}

/**
 * The directory `path` names inside `root`, refusing symlinks on the way: an image's
 * symlink must not point a seed copy at the host.
 */
async function realDirInside(root: string, path: string): Promise<string | undefined> {
  let current = root;
  for (const part of path.split('/').filter(Boolean)) {
    current = join(current, part);
    try {
      const st = await fsp.lstat(current);
      if (!st.isDirectory()) return undefined;
    } catch { return undefined; }
  }
  return current;
}

/**
 * Creates missing bind sources (Binds only, as Docker does) and volume directories; a
 * volume that is new or empty gets the image's content at its destination. `rootfs` is
 * called only when some volume needs seeding.
 */
export async function prepareMounts(mounts: MountRecord[], volumesRoot: string, rootfs: () => Promise<string>, strictBindSources: Set<string>): Promise<void> {
  for (const m of mounts) {
    if (m.Type === 'bind') {
      try { await fsp.stat(m.Source); } catch {
        if (strictBindSources.has(m.Destination)) throw new BerthError('EINVAL', `invalid mount config for type "bind": bind source path does not exist: ${m.Source}`);
        await fsp.mkdir(m.Source, { recursive: true, mode: 0o755 });
      }
    } else if (m.Type === 'volume') {
      const volumeDir = join(volumesRoot, m.Name!);
      let fresh = false;
      try { await fsp.stat(join(volumeDir, 'volume.json')); } catch {
        await fsp.mkdir(m.Source, { recursive: true, mode: 0o755 });
        await writeJsonAtomic(join(volumeDir, 'volume.json'), { Name: m.Name, Driver: 'local', CreatedAt: new Date().toISOString(), Anonymous: !!m.anonymous, Labels: {} });
        fresh = true;
      }
      if (m.seed && (fresh || (await fsp.readdir(m.Source)).length === 0)) {
        const from = await realDirInside(await rootfs(), m.Destination);
        if (from) await applyLayerByCopy(m.Source, { diffPath: from, whiteouts: [], opaques: [], whiteoutFormat: 'none' });
      }
    }
  }
}

/** Removes a volume's directory (anonymous volumes on `rm -v`). */
export async function removeVolume(volumesRoot: string, name: string): Promise<void> {
  if (!VOLUME_NAME.test(name)) return;
  await fsp.rm(join(volumesRoot, name), { recursive: true, force: true });
}

// ---- /etc files ----

const LOCAL_NAMESERVER = /^nameserver\s+(127\.|::1\s*$|::1$)/;
/** Google's resolvers: Docker's fallback when the host only has local ones. */
const FALLBACK_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

export interface EtcOptions {
  hostname: string;
  domainname: string;
  /** 'host' keeps the host's files as they are. */
  networkMode: string;
  dns?: string[] | null;
  dnsSearch?: string[] | null;
  extraHosts?: string[] | null;
  /** A resolver at the container network's gateway (dnsmasq on a router), tried before public fallbacks. */
  gatewayNameserver?: string;
  /** Host resolv.conf candidates, in order: the first with a non-local nameserver wins. */
  resolvConfSources: string[];
  hostsSource: string;
}

async function readOrEmpty(path: string): Promise<string> {
  try { return await fsp.readFile(path, 'utf8'); } catch { return ''; }
}

/**
 * A container in its own network namespace cannot reach the host's 127.0.0.1 (OpenWrt's
 * dnsmasq): drop local nameservers, take the next candidate file (OpenWrt keeps the
 * upstream servers in /tmp/resolv.conf.d/resolv.conf.auto), else Docker's fallback.
 */
export async function containerResolvConf(opts: EtcOptions): Promise<string> {
  const texts = await Promise.all(opts.resolvConfSources.map(readOrEmpty));
  const first = texts[0] ?? '';
  const linesOf = (text: string) => text.split('\n').filter((l) => l.trim() !== '');
  let lines = linesOf(first);
  if (opts.networkMode !== 'host') {
    const usable = texts.find((t) => t.split('\n').some((l) => /^nameserver\s/.test(l) && !LOCAL_NAMESERVER.test(l)));
    lines = linesOf(usable ?? first).filter((l) => !LOCAL_NAMESERVER.test(l));
    if (!lines.some((l) => /^nameserver\s/.test(l))) lines.push(...(opts.gatewayNameserver ? [opts.gatewayNameserver] : FALLBACK_NAMESERVERS).map((n) => `nameserver ${n}`));
  }
  if (opts.dns?.length) lines = [...lines.filter((l) => !/^nameserver\s/.test(l)), ...opts.dns.map((n) => `nameserver ${n}`)];
  if (opts.dnsSearch?.length) lines = [...lines.filter((l) => !/^(search|domain)\s/.test(l)), `search ${opts.dnsSearch.join(' ')}`];
  return lines.join('\n') + '\n';
}

export function containerHosts(opts: EtcOptions, hostHosts: string): string {
  const extra = (opts.extraHosts ?? []).map((entry) => {
    const sep = entry.indexOf(':');
    if (sep <= 0) throw new BerthError('EINVAL', `invalid extra host entry "${entry}": use host:ip`);
    return `${entry.slice(sep + 1)}\t${entry.slice(0, sep)}`;
  });
  if (opts.networkMode === 'host') return hostHosts + (extra.length ? extra.join('\n') + '\n' : '');
  const fqdn = opts.domainname ? `${opts.hostname}.${opts.domainname} ${opts.hostname}` : opts.hostname;
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    // No address yet: net-bridge replaces this line with the container's address at start.
    `127.0.1.1\t${fqdn}`,
    ...extra,
  ].join('\n') + '\n';
}

export interface EtcPaths { resolvConf: string; hosts: string; hostname: string }

export function etcPaths(containerDir: string): EtcPaths {
  return { resolvConf: join(containerDir, 'resolv.conf'), hosts: join(containerDir, 'hosts'), hostname: join(containerDir, 'hostname') };
}

export async function writeEtcFiles(containerDir: string, opts: EtcOptions): Promise<EtcPaths> {
  const paths = etcPaths(containerDir);
  await writeFileAtomic(paths.resolvConf, await containerResolvConf(opts));
  await writeFileAtomic(paths.hosts, containerHosts(opts, await readOrEmpty(opts.hostsSource)));
  await writeFileAtomic(paths.hostname, opts.hostname + '\n');
  return paths;
}
