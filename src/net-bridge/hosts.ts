// The container's /etc/hosts as net-bridge maintains it: the engine writes the base file at
// create (localhost lines, 127.0.1.1 for the name); once the container has an address its
// own line carries that address, and on user networks every peer gets a line. Lines berth
// manages end in a `# berth` comment so they can be replaced without touching the rest.
import { promises as fsp } from 'node:fs';

export const MANAGED_MARK = '# berth';

export interface HostsEntry { ip: string; names: string[] }

export function rewriteHosts(current: string, own: HostsEntry | undefined, peers: HostsEntry[]): string {
  const keep = current.split('\n').filter((line) => line !== '' && !line.endsWith(MANAGED_MARK) && !(own && line.startsWith('127.0.1.1\t')));
  const managed = [...(own ? [own] : []), ...peers].map((e) => `${e.ip}\t${[...new Set(e.names.filter(Boolean))].join(' ')}\t${MANAGED_MARK}`);
  return [...keep, ...managed].join('\n') + '\n';
}

/** In place, not by rename: the file is bind-mounted into the running container. */
export async function updateHostsFile(path: string, own: HostsEntry | undefined, peers: HostsEntry[]): Promise<void> {
  const current = await fsp.readFile(path, 'utf8');
  const next = rewriteHosts(current, own, peers);
  if (next !== current) await fsp.writeFile(path, next);
}
