// The flat files of net-bridge. Every write is atomic (temp, fsync, rename): after a power
// cut the daemon finds the old leases or the new ones, so an address is never handed out
// twice across restarts.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../util/atomic';
import { BerthError } from '../util/errors';
import type { LeaseState, NetworkRecord } from './types';

export function emptyLeases(): LeaseState {
  return { version: 1, sandboxes: {}, endpoints: [], lastIp: {}, extra: {} };
}

async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string;
  try { text = await fsp.readFile(path, 'utf8'); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try { return JSON.parse(text) as T; } catch (err) {
    throw new BerthError('ECORRUPT', `${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

export class NetworkStore {
  readonly dir: string;
  constructor(dataRoot: string) { this.dir = join(dataRoot, 'network'); }

  private get networksFile(): string { return join(this.dir, 'networks.json'); }
  private get leasesFile(): string { return join(this.dir, 'leases.json'); }

  async load(): Promise<{ networks: NetworkRecord[]; leases: LeaseState }> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const networks = (await readJson<{ networks: NetworkRecord[] }>(this.networksFile))?.networks ?? [];
    const leases = { ...emptyLeases(), ...(await readJson<LeaseState>(this.leasesFile)) };
    return { networks, leases };
  }

  saveNetworks(networks: NetworkRecord[]): Promise<void> {
    return writeJsonAtomic(this.networksFile, { networks }, 0o600);
  }

  saveLeases(leases: LeaseState): Promise<void> {
    return writeJsonAtomic(this.leasesFile, leases, 0o600);
  }
}
