// The container record: one JSON file per container, <dataRoot>/containers/<id>/config.json,
// rewritten atomically on every state change so a restarted daemon (or a power cut) sees
// exactly the last recorded state.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { readJsonIfExists, writeJsonAtomic } from '../util/atomic';
import type { Digest } from '../minimal-graph';
import type { MergedConfig } from './config';
import type { MountRecord } from './mounts';
import type { ContainerState, CreateRequest, HostConfig } from './types';

export const RECORD_FILE = 'config.json';
export const RECORD_VERSION = 1;

export interface ContainerRecord {
  version: typeof RECORD_VERSION;
  id: string;
  /** "/name" */
  name: string;
  /** RFC 3339 with nanoseconds, like Docker. */
  created: string;
  /** The create request as received (for debugging and future migrations). */
  request: CreateRequest;
  config: MergedConfig;
  hostConfig: HostConfig;
  path: string;
  args: string[];
  state: ContainerState;
  restartCount: number;
  /** A user stop (stop, kill of a stopped policy, ...): unless-stopped stays down across daemon restarts. */
  manuallyStopped: boolean;
  imageId: Digest;
  /** Chain ids of the image's layers, bottom first: what the container holds in the graph. */
  chainIds: Digest[];
  storageDriver: string;
  /** '' when the log driver keeps no file ('local', 'none'). */
  logPath: string;
  mounts: MountRecord[];
  resolvConfPath: string;
  hostsPath: string;
  hostnamePath: string;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';
export { ZERO_TIME };

export function initialState(): ContainerState {
  return {
    Status: 'created', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
    Pid: 0, ExitCode: 0, Error: '', StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME,
  };
}

/** RFC 3339 with nanosecond digits, Docker's timestamp format. */
export function nowNano(): string {
  const ns = process.hrtime.bigint() % 1_000_000n;
  return new Date().toISOString().replace(/Z$/, ns.toString().padStart(6, '0') + 'Z');
}

export class RecordStore {
  constructor(readonly root: string) {}

  dirOf(id: string): string { return join(this.root, id); }

  async save(record: ContainerRecord): Promise<void> {
    await writeJsonAtomic(join(this.dirOf(record.id), RECORD_FILE), record, 0o600);
  }

  /** Every container dir: its record, or undefined when the create never completed. */
  async loadAll(): Promise<Array<{ id: string; record?: ContainerRecord }>> {
    await fsp.mkdir(this.root, { recursive: true, mode: 0o700 });
    const out: Array<{ id: string; record?: ContainerRecord }> = [];
    for (const id of await fsp.readdir(this.root)) {
      if (!/^[0-9a-f]{64}$/.test(id)) continue;
      let record: ContainerRecord | undefined;
      try { record = await readJsonIfExists<ContainerRecord>(join(this.dirOf(id), RECORD_FILE)); } catch { record = undefined; }
      out.push({ id, record: record?.version === RECORD_VERSION && record.id === id ? record : undefined });
    }
    return out;
  }

  async removeDir(id: string): Promise<void> {
    await fsp.rm(this.dirOf(id), { recursive: true, force: true });
  }
}
