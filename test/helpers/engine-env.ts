// A complete engine over throwaway roots for integration tests (root, real kernel): the
// default busybox image loaded into a fresh graph, the real storage driver, cgroups under
// a per-run parent, and the native helper. cleanup() removes everything, even after a
// failed test: helpers, cgroups, mounts, files.
import { createReadStream, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { Graph } from '../../src/minimal-graph';
import { selectDriver, type StorageDriver } from '../../src/storage';
import { RegistryClient } from '../../src/image/registry';
import { ImageService } from '../../src/image/service';
import { createCgroupManager, detectCgroups, type CgroupManager } from '../../src/cgroups';
import { createRuntime, type HelperRuntime } from '../../src/runtime';
import { openEngine, type ContainerEngine, type EngineDeps } from '../../src/engine';
import { umount2, MNT_DETACH } from '../../src/host/mount';
import { ensureHelper, REPO_ROOT } from './helper-bundle';

export const IMAGE = 'localhost/busybox:latest';

export interface EngineEnv {
  root: string;
  dataRoot: string;
  execRoot: string;
  cgroupParent: string;
  storage: StorageDriver;
  graph: Graph;
  images: ImageService;
  cgroups: CgroupManager;
  runtime: HelperRuntime;
  /** Opens an engine over the same roots (a "daemon start"); every opened engine is closed by cleanup(). */
  open(extra?: Partial<EngineDeps>): Promise<ContainerEngine>;
  cleanup(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function makeEngineEnv(prefix = 'berth-eng-'): Promise<EngineEnv> {
  ensureHelper();
  // Short: helper sockets under the exec root must fit in 108 bytes.
  const root = mkdtempSync(join('/tmp', prefix));
  const dataRoot = join(root, 'data');
  const execRoot = join(root, 'x');
  const cgroupParent = `berth-test-${process.pid}-${root.slice(-6)}`;
  const storage = await selectDriver(dataRoot);
  const graph = await Graph.open(join(dataRoot, 'image'));
  const registry = new RegistryClient({});
  const images = new ImageService({ graph, registry, whiteoutFormat: storage.whiteoutFormat, storageDriverName: storage.name });
  await images.load(createReadStream(join(REPO_ROOT, 'dist/default-image.tar')));
  registry.close();
  const cgroups = createCgroupManager(detectCgroups(), { parent: cgroupParent });
  const runtime = createRuntime({ execRoot });
  const opened: ContainerEngine[] = [];
  return {
    root, dataRoot, execRoot, cgroupParent, storage, graph, images, cgroups, runtime,
    async open(extra = {}) {
      const engine = await openEngine({
        dataRoot, runtime, storage, cgroups, graph, resolveImage: (n) => images.resolve(n), ...extra,
      });
      opened.push(engine);
      return engine;
    },
    async cleanup() {
      for (const e of opened) await e.close().catch(() => {});
      for (const id of await runtime.list().catch(() => [] as string[])) await runtime.remove(id).catch(() => {});
      for (const id of await cgroups.listOwned().catch(() => [] as string[])) {
        await (await cgroups.open(id).catch(() => undefined))?.remove({ killLeftovers: true }).catch(() => {});
      }
      removeCgroupParents(cgroupParent);
      unmountUnder(root);
      for (let i = 0; i < 20; i++) {
        try { rmSync(root, { recursive: true, force: true }); break; } catch { await sleep(100); }
      }
    },
  };
}

/** Mount points below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(dir + '/')).sort((a, b) => b.length - a.length);
}

function unmountUnder(dir: string): void {
  for (const m of mountsUnder(dir)) { try { umount2(m, MNT_DETACH); } catch { /* already gone */ } }
}

/** Every v1 hierarchy's (or the v2 root's) directory for the test's parent group. */
export function cgroupParentDirs(parent: string): string[] {
  const base = '/sys/fs/cgroup';
  const dirs: string[] = [];
  for (const name of readdirSync(base)) {
    const dir = join(base, name, parent);
    if (existsSync(dir)) dirs.push(dir);
  }
  if (existsSync(join(base, parent))) dirs.push(join(base, parent));
  return dirs;
}

/** Child groups left under the test's parent in any hierarchy. */
export function cgroupsLeft(parent: string): string[] {
  return cgroupParentDirs(parent).flatMap((dir) => readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name)));
}

function removeCgroupParents(parent: string): void {
  for (const dir of cgroupParentDirs(parent)) { try { rmdirSync(dir); } catch { /* children left: reported by the tests */ } }
}

/** Pids of berth-helper processes whose command line mentions `fragment` (the test's exec root). */
export function helperProcesses(fragment: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes('berth-helper') && cmd.includes(fragment)) pids.push(Number(name));
    } catch { /* gone */ }
  }
  return pids;
}

/** Collects a container's log text. */
export async function logText(engine: ContainerEngine, id: string, stream: 'stdout' | 'stderr' | 'both' = 'stdout'): Promise<string> {
  let out = '';
  for await (const e of engine.logs(id, { stdout: stream !== 'stderr', stderr: stream !== 'stdout', follow: false, timestamps: false })) out += e.line.toString();
  return out;
}
