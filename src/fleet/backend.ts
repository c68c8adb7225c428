// What the fleet agent needs from the daemon, as narrow interfaces: the engine and the
// image service satisfy them structurally, and tests can hand in fakes.
import type { Engine } from '../engine/types';
import type { ProgressSink } from '../image/progress';
import { isBerthError } from '../util/errors';
import { LABEL_STACK } from './manifest';
import type { OwnedContainer, StackBackend } from './reconciler';

export type FleetEngine = Pick<Engine,
  'create' | 'start' | 'stop' | 'restart' | 'remove' | 'list' | 'inspect' | 'logs' | 'stats' |
  'execCreate' | 'execStart' | 'execInspect' | 'counts' | 'onEvent' | 'prune'>;

export interface FleetImages {
  pull(name: string, opts: { tag?: string; platform?: string }, progress?: ProgressSink): Promise<unknown>;
  list(opts?: { all?: boolean }): Promise<any[]>;
  inspect(name: string): Promise<any>;
  remove(name: string, opts?: { force?: boolean }): Promise<unknown>;
  prune(opts?: { all?: boolean }): Promise<unknown>;
  resolve(name: string): Promise<unknown>;
}

function summaryToOwned(c: Record<string, unknown>): OwnedContainer {
  const names = (c.Names as string[] | undefined) ?? [];
  return { id: c.Id as string, name: (names[0] ?? '').replace(/^\//, ''), state: String(c.State ?? ''), labels: (c.Labels as Record<string, string>) ?? {} };
}

/** The reconciler's backend inside the daemon: direct engine and image service calls. */
export function engineStackBackend(engine: FleetEngine, images: FleetImages): StackBackend {
  return {
    async listStackContainers(stack) {
      const list = await engine.list({ all: true, filters: { label: [stack ? `${LABEL_STACK}=${stack}` : LABEL_STACK] } });
      return list.map(summaryToOwned);
    },
    async hasImage(ref) {
      try { await images.resolve(ref); return true; } catch (err) { if (isBerthError(err, 'ENOIMAGE')) return false; throw err; }
    },
    async pull(ref, progress) { await images.pull(ref, {}, progress); },
    async create(name, req) { return (await engine.create(req, name)).Id; },
    async start(id) {
      try { await engine.start(id); } catch (err) { if (!isBerthError(err, 'ENOTMODIFIED')) throw err; }
    },
    async remove(id) { await engine.remove(id, { force: true }); },
  };
}
