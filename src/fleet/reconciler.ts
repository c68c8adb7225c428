// Converges the containers of one stack to a manifest. It works through StackBackend,
// so the same code runs inside the daemon (fleet desired state, `deploy`) and in the
// CLI over the Docker API (`berth stack deploy`). It only ever touches containers that
// carry its io.berth.stack label: anything else on the device is not its business.
import { isBerthError, toBerthError, mqttCodeOf } from '../util/errors';
import { containerName, LABEL_HASH, LABEL_SERVICE, LABEL_SOURCE, LABEL_STACK, serviceHash, toCreateRequest, type StackManifest } from './manifest';
import type { CreateRequest } from '../engine/types';

export interface OwnedContainer {
  id: string;
  name: string;
  state: string;
  labels: Record<string, string>;
}

export interface StackBackend {
  /** Containers (any state) labelled with io.berth.stack, optionally of one stack. */
  listStackContainers(stack?: string): Promise<OwnedContainer[]>;
  hasImage(ref: string): Promise<boolean>;
  pull(ref: string, progress: (msg: unknown) => void): Promise<void>;
  create(name: string, req: CreateRequest): Promise<string>;
  start(id: string): Promise<void>;
  /** Stops and removes, whatever its state. */
  remove(id: string): Promise<void>;
}

export interface ServiceStatus {
  status: 'running' | 'error';
  container?: string;
  image: string;
  hash: string;
  action: 'unchanged' | 'started' | 'created' | 'replaced';
  error?: { code: string; message: string };
}

export interface StackStatus {
  stack: string;
  generation: string;
  status: 'converged' | 'error';
  services: Record<string, ServiceStatus>;
  removed: string[];
}

export interface ReconcileOptions {
  progress?: (msg: unknown) => void;
  /** Extra labels for created containers, e.g. which fleet topic asked for them. */
  labels?: Record<string, string>;
}

export async function reconcileStack(backend: StackBackend, stack: string, manifest: StackManifest, opts: ReconcileOptions = {}): Promise<StackStatus> {
  const progress = opts.progress ?? (() => {});
  const current = await backend.listStackContainers(stack);
  const services: Record<string, ServiceStatus> = {};
  const removed: string[] = [];
  const removeContainer = async (c: OwnedContainer): Promise<void> => {
    progress({ status: 'removing', container: c.name });
    await backend.remove(c.id);
    removed.push(c.name);
  };

  // Containers of services that are gone first: their names and ports are then free.
  for (const c of current) {
    const svc = c.labels[LABEL_SERVICE];
    if (!svc || !Object.hasOwn(manifest.services, svc)) await removeContainer(c).catch((err) => progress({ status: 'remove failed', container: c.name, error: toBerthError(err).message }));
  }

  for (const [name, spec] of Object.entries(manifest.services)) {
    const hash = serviceHash(spec);
    const mine = current.filter((c) => c.labels[LABEL_SERVICE] === name);
    const keep = mine.find((c) => c.labels[LABEL_HASH] === hash);
    try {
      for (const c of mine) if (c !== keep) await removeContainer(c);
      if (keep) {
        const running = keep.state === 'running' || keep.state === 'restarting';
        if (!running) { progress({ status: 'starting', service: name }); await backend.start(keep.id); }
        services[name] = { status: 'running', container: keep.name, image: spec.image, hash, action: running ? 'unchanged' : 'started' };
        continue;
      }
      if (!(await backend.hasImage(spec.image))) {
        progress({ status: 'pulling', service: name, image: spec.image });
        await backend.pull(spec.image, (msg) => progress({ service: name, pull: msg }));
      }
      const cname = containerName(stack, name);
      progress({ status: 'creating', service: name, container: cname });
      const id = await backend.create(cname, toCreateRequest(stack, name, spec, opts.labels));
      await backend.start(id);
      services[name] = { status: 'running', container: cname, image: spec.image, hash, action: mine.length ? 'replaced' : 'created' };
    } catch (err) {
      const e = toBerthError(err);
      services[name] = { status: 'error', image: spec.image, hash, action: mine.length ? 'replaced' : 'created', error: { code: mqttCodeOf(e), message: e.message } };
    }
  }
  const ok = Object.values(services).every((s) => s.status === 'running');
  return { stack, generation: manifest.generation, status: ok ? 'converged' : 'error', services, removed };
}

/** Removes every container of a stack; returns their names. */
export async function removeStack(backend: StackBackend, stack: string): Promise<string[]> {
  const removed: string[] = [];
  for (const c of await backend.listStackContainers(stack)) {
    try {
      await backend.remove(c.id);
      removed.push(c.name);
    } catch (err) {
      if (!isBerthError(err, 'ENOCONTAINER') && !isBerthError(err, 'ENOTFOUND')) throw err;
    }
  }
  return removed;
}

/** Stack names present on the device, with their services' states. */
export async function listStacks(backend: StackBackend): Promise<Array<{ stack: string; source: string; services: Array<{ service: string; container: string; state: string }> }>> {
  const byStack = new Map<string, { stack: string; source: string; services: Array<{ service: string; container: string; state: string }> }>();
  for (const c of await backend.listStackContainers()) {
    const stack = c.labels[LABEL_STACK]!;
    const entry = byStack.get(stack) ?? { stack, source: c.labels[LABEL_SOURCE] ?? 'local', services: [] };
    entry.services.push({ service: c.labels[LABEL_SERVICE] ?? '', container: c.name, state: c.state });
    byStack.set(stack, entry);
  }
  return [...byStack.values()].sort((a, b) => a.stack.localeCompare(b.stack));
}
