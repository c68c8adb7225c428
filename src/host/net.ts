// Kernel networking through the tools OpenWrt ships: `ip` (ip-full), `nft`, `iptables`.
// Each call is one execFile (no shell); a missing tool or a refusal becomes a BerthError
// that names the command and the kernel's words, so a router log says what to install.
import { spawn } from 'node:child_process';
import { promises as fsp, existsSync } from 'node:fs';
import { join, delimiter } from 'node:path';
import { BerthError } from '../util/errors';

/** Where `ip netns add` bind-mounts named network namespaces (compiled into iproute2). */
export const NETNS_DIR = '/run/netns';

const PACKAGE_HINTS: Record<string, string> = {
  ip: 'install ip-full (opkg install ip-full) or iproute2',
  nft: 'install nftables (opkg install nftables)',
  iptables: 'install iptables (opkg install iptables-nft or iptables-legacy)',
  'iptables-restore': 'install iptables',
};

export interface ToolResult { code: number; stdout: string; stderr: string }

/** Runs a tool to completion; never throws for a non-zero exit (see `tool`). */
export function runTool(command: string, args: readonly string[], input?: string): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        reject(new BerthError('EUNSUPPORTED', `${command} not found: ${PACKAGE_HINTS[command] ?? `install ${command}`}`, { cause: err }));
      } else reject(new BerthError('EINTERNAL', `cannot run ${command}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => { /* the tool may exit before reading all input */ });
    child.stdin.end(input ?? '');
  });
}

/** Runs a tool; a non-zero exit is an EINTERNAL naming the command line and its stderr. */
export async function tool(command: string, args: readonly string[], input?: string): Promise<string> {
  const r = await runTool(command, args, input);
  if (r.code !== 0) {
    throw new BerthError('EINTERNAL', `${command} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
  }
  return r.stdout;
}

/** True when `name` is an executable on PATH (detection of nft vs iptables). */
export function hasCommand(name: string, path = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): boolean {
  return path.split(delimiter).filter(Boolean).some((dir) => existsSync(join(dir, name)));
}

// ---- ip ----

/** `ip [-n NETNS] ARGS...` */
export function ip(args: readonly string[], netns?: string): Promise<string> {
  return tool('ip', netns ? ['-n', netns, ...args] : args);
}

/** Several `ip` commands in one process (`ip -batch -`): one fork instead of five per container. */
export async function ipBatch(commands: readonly string[], netns?: string): Promise<void> {
  if (!commands.length) return;
  await tool('ip', [...(netns ? ['-n', netns] : []), '-batch', '-'], commands.join('\n') + '\n');
}

/** `ip -j ...` parsed; ip-full prints JSON, an empty answer is an empty list. */
export async function ipJson<T>(args: readonly string[], netns?: string): Promise<T[]> {
  const out = await ip(['-j', ...args], netns);
  return out.trim() ? JSON.parse(out) as T[] : [];
}

export function linkExists(name: string): boolean {
  return existsSync(join('/sys/class/net', name));
}

export async function linkMtu(name: string): Promise<number> {
  return Number((await fsp.readFile(join('/sys/class/net', name, 'mtu'), 'utf8')).trim());
}

/** Deletes a link if present; true when it was there. */
export async function deleteLink(name: string): Promise<boolean> {
  if (!linkExists(name)) return false;
  const r = await runTool('ip', ['link', 'del', name]);
  if (r.code !== 0 && linkExists(name)) throw new BerthError('EINTERNAL', `ip link del ${name} failed: ${r.stderr.trim()}`);
  return true;
}

/** Names of the links enslaved to `bridge`. */
export async function bridgePorts(bridge: string): Promise<string[]> {
  try { return await fsp.readdir(join('/sys/class/net', bridge, 'brif')); } catch { return []; }
}

/** IPv4 routes of the main table as CIDRs (for picking subnets that clash with nothing). */
export async function ipv4Routes(): Promise<string[]> {
  const routes = await ipJson<{ dst: string }>(['-4', 'route', 'show', 'table', 'all']);
  return routes.map((r) => r.dst).filter((d) => d && d !== 'default' && /^\d/.test(d)).map((d) => (d.includes('/') ? d : `${d}/32`));
}

// ---- named network namespaces ----

export function netnsPath(name: string): string {
  return join(NETNS_DIR, name);
}

export async function netnsAdd(name: string): Promise<string> {
  await ip(['netns', 'add', name]);
  return netnsPath(name);
}

export async function netnsDelete(name: string): Promise<void> {
  if (!existsSync(netnsPath(name))) return;
  const r = await runTool('ip', ['netns', 'del', name]);
  if (r.code !== 0 && existsSync(netnsPath(name))) throw new BerthError('EINTERNAL', `ip netns del ${name} failed: ${r.stderr.trim()}`);
}

export async function netnsList(): Promise<string[]> {
  try { return await fsp.readdir(NETNS_DIR); } catch { return []; }
}

// ---- sysctl and sockets ----

export async function writeSysctl(key: string, value: string): Promise<void> {
  const path = join('/proc/sys', key.replace(/\./g, '/'));
  try {
    if ((await fsp.readFile(path, 'utf8')).trim() === value) return;
    await fsp.writeFile(path, value);
  } catch (err) {
    throw new BerthError('EINTERNAL', `cannot set ${key}=${value}: ${(err as Error).message}`, { cause: err });
  }
}

/** /proc/net/udp's little-endian hex address of a dotted quad. */
function procHexAddress(ipv4: string): string {
  return ipv4.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).reverse().join('').toUpperCase();
}

/** True when some host socket listens on UDP `port` at `address` or the wildcard (is there a resolver at the gateway?). */
export async function udpListening(address: string, port: number): Promise<boolean> {
  let text: string;
  try { text = await fsp.readFile('/proc/net/udp', 'utf8'); } catch { return false; }
  const wanted = new Set([`${procHexAddress(address)}:${port.toString(16).padStart(4, '0').toUpperCase()}`, `00000000:${port.toString(16).padStart(4, '0').toUpperCase()}`]);
  return text.split('\n').slice(1).some((line) => wanted.has(line.trim().split(/\s+/)[1] ?? ''));
}

// ---- firewall tools ----

/** Applies an nft script as one transaction (`nft -f -`): all of it or nothing. */
export async function nftApply(script: string): Promise<void> {
  await tool('nft', ['-f', '-'], script);
}

/** `nft list table FAMILY NAME`, or undefined when the table does not exist. */
export async function nftListTable(family: string, name: string): Promise<string | undefined> {
  const r = await runTool('nft', ['list', 'table', family, name]);
  return r.code === 0 ? r.stdout : undefined;
}

export function iptables(binary: string, args: readonly string[]): Promise<ToolResult> {
  return runTool(binary, ['-w', ...args]);
}
