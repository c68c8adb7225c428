// Starts the BUILT berth daemon (bin/berth -> dist/berth.cjs) on a socket in a temp dir
// and gives tests a berth CLI and a real docker CLI pointed at it. Build first
// (`npm run build`); the test runner does.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '../..');
export const BERTH_BIN = join(REPO_ROOT, 'bin/berth');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

export interface StartOptions {
  /** Extra daemon arguments, after the data/exec root and host flags. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Use this data root (kept afterwards) instead of a fresh temp one. */
  dataRoot?: string;
  /** Use this exec root (kept afterwards): a restarted daemon finds its helpers there. */
  execRoot?: string;
  /** Milliseconds to wait for the socket to answer /_ping. */
  readyTimeoutMs?: number;
}

export interface TestDaemon {
  socket: string;
  host: string;
  dataRoot: string;
  execRoot: string;
  pid: number;
  /** Runs `node bin/berth -H unix://SOCK ...args`. */
  cli(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Runs the real docker CLI with DOCKER_HOST at this daemon and a private DOCKER_CONFIG. */
  docker(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Everything the daemon wrote to stderr so far. */
  logs(): string;
  /** Signals the daemon (SIGTERM by default), waits for exit, removes temp dirs; resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL and cleanup. */
  kill(): Promise<void>;
}

export function makeTempDir(prefix = 'berth-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

const running = new Set<ChildProcess>();
process.on('exit', () => { for (const child of running) child.kill('SIGKILL'); });

/** Runs a command to completion, collecting its output. */
export function run(command: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => { clearTimeout(timer); running.delete(child); reject(err); });
    child.on('close', (code) => { clearTimeout(timer); running.delete(child); resolvePromise({ code, stdout, stderr }); });
    // A command that exits without reading its input closes the pipe first: not an error.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs the built berth binary with the given arguments. */
export function runBerth(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  assertBuilt();
  return run(process.execPath, [BERTH_BIN, ...args], opts);
}

function assertBuilt(): void {
  if (!existsSync(join(REPO_ROOT, 'dist/berth.cjs'))) throw new Error('dist/berth.cjs is missing: run `npm run build` first');
}

/** GET /_ping over the socket; true on 200. */
export function pingSocket(socket: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const req = request({ socketPath: socket, path: '/_ping', method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolvePromise(res.statusCode === 200));
    });
    req.on('error', () => resolvePromise(false));
    req.on('timeout', () => { req.destroy(); resolvePromise(false); });
    req.end();
  });
}

/** Removes a test daemon's (empty) cgroup parent from every hierarchy; busy ones are left for the next run to report. */
function removeCgroupParent(name: string): void {
  const roots = ['/sys/fs/cgroup', ...(() => { try { return readdirSync('/sys/fs/cgroup').map((d) => join('/sys/fs/cgroup', d)); } catch { return []; } })()];
  for (const root of roots) {
    try { rmdirSync(join(root, name)); } catch { /* absent or not empty */ }
  }
}

/**
 * A bridge and subnet of its own for each test daemon (stable per data root, so a restarted
 * daemon finds its network again): parallel test daemons never share berth0 or its leases.
 */
export function testNetworkOf(dataRoot: string): { bridge: string; bip: string; owner: string } {
  const h = createHash('sha256').update(`net:${dataRoot}`).digest();
  const bridge = `bt${h.toString('hex').slice(0, 10)}`;
  return { bridge, bip: `10.${200 + (h[6]! % 40)}.${h[7]}.1/24`, owner: `berth-${bridge}` };
}

/** Removes what a test daemon's networking left in the kernel: netns, bridges, nft tables, iptables chains. */
export function removeTestNetworking(dataRoot: string, bridge: string, owner: string): void {
  const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' });
  let netnsNames: string[] = [];
  try { netnsNames = readdirSync('/run/netns'); } catch { /* none */ }
  for (const name of netnsNames) if (name.startsWith(`${owner}-`)) quiet('ip', ['netns', 'del', name]);
  let bridges = [bridge];
  try {
    const nets = JSON.parse(readFileSync(join(dataRoot, 'network', 'networks.json'), 'utf8')) as { networks: Array<{ Bridge: string }> };
    bridges = [...new Set([bridge, ...nets.networks.map((n) => n.Bridge)])];
  } catch { /* no networks written */ }
  for (const b of bridges) {
    let ports: string[] = [];
    try { ports = readdirSync(`/sys/class/net/${b}/brif`); } catch { /* gone */ }
    for (const p of ports) quiet('ip', ['link', 'del', p]);
    quiet('ip', ['link', 'del', b]);
  }
  quiet('nft', ['delete', 'table', 'inet', owner]);
  quiet('nft', ['delete', 'table', 'ip', `${owner}-nat`]);
  const chainBase = owner.toUpperCase().replace(/[^A-Z0-9]/g, '-').slice(0, 20);
  for (const bin of ['iptables', 'iptables-legacy']) {
    for (const [table, builtin, chain] of [['filter', 'FORWARD', 'FWD'], ['nat', 'PREROUTING', 'PRE'], ['nat', 'OUTPUT', 'OUT'], ['nat', 'POSTROUTING', 'POST']] as const) {
      for (let i = 0; i < 5 && quiet(bin, ['-w', '-t', table, '-D', builtin, '-j', `${chainBase}-${chain}`]).status === 0; i++) { /* every copy */ }
    }
    for (const [table, chain] of [['filter', 'FWD'], ['nat', 'PRE'], ['nat', 'OUT'], ['nat', 'DNAT'], ['nat', 'POST']] as const) {
      quiet(bin, ['-w', '-t', table, '-F', `${chainBase}-${chain}`]);
      quiet(bin, ['-w', '-t', table, '-X', `${chainBase}-${chain}`]);
    }
  }
}

const keptNetworks = new Map<string, { bridge: string; owner: string }>();
process.on('exit', () => { for (const [dataRoot, n] of keptNetworks) removeTestNetworking(dataRoot, n.bridge, n.owner); });

export async function startDaemon(opts: StartOptions = {}): Promise<TestDaemon> {
  assertBuilt();
  const tmp = makeTempDir();
  const dataRoot = opts.dataRoot ?? join(tmp, 'data');
  const execRoot = opts.execRoot ?? join(tmp, 'exec');
  const socket = join(tmp, 'berth.sock');
  const dockerConfig = join(tmp, 'docker-config');
  // Each test daemon owns its own cgroup parent (stable per data root, so a restarted daemon
  // re-adopts its containers) and never sweeps another daemon's container cgroups.
  const cgroupParent = `berth-test-${createHash('sha256').update(dataRoot).digest('hex').slice(0, 12)}`;
  const network = testNetworkOf(dataRoot);
  const ownNetwork = !(opts.args ?? []).some((a) => a === '--bridge' || a === '-b' || a.startsWith('--bridge='));
  const networkArgs = ownNetwork ? ['--bridge', network.bridge, '--bip', network.bip] : [];
  const cleanup = (): void => {
    // A kept data root belongs to a test that restarts the daemon on it (live restore): its
    // networking stays until the test process exits.
    if (ownNetwork && !opts.dataRoot) removeTestNetworking(dataRoot, network.bridge, network.owner);
    else if (ownNetwork) keptNetworks.set(dataRoot, network);
    rmSync(tmp, { recursive: true, force: true });
    removeCgroupParent(cgroupParent);
  };

  const child = spawn(process.execPath, [BERTH_BIN, 'daemon', '--data-root', dataRoot, '--exec-root', execRoot, '--host', `unix://${socket}`, '--cgroup-parent', cgroupParent, ...networkArgs, ...(opts.args ?? [])], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let logs = '';
  child.stdout!.on('data', (d) => { logs += d; });
  child.stderr!.on('data', (d) => { logs += d; });
  const exited = new Promise<number | null>((resolvePromise) => {
    child.on('exit', (code) => { running.delete(child); resolvePromise(code); });
  });
  let hasExited = false;
  void exited.then(() => { hasExited = true; });

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  while (!(await pingSocket(socket))) {
    if (hasExited || Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      cleanup();
      throw new Error(`berth daemon did not become ready${hasExited ? ` (exited with ${child.exitCode})` : ''}:\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const host = `unix://${socket}`;
  return {
    socket,
    host,
    dataRoot,
    execRoot,
    pid: child.pid!,
    cli: (args, runOpts = {}) => runBerth(['-H', host, ...args], runOpts),
    docker: (args, runOpts = {}) => {
      const env: NodeJS.ProcessEnv = { ...process.env, ...runOpts.env, DOCKER_HOST: host, DOCKER_CONFIG: dockerConfig };
      delete env.DOCKER_CONTEXT;
      return run('docker', args, { ...runOpts, env });
    },
    logs: () => logs,
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
      if (!hasExited) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      cleanup();
      return code;
    },
    async kill(): Promise<void> {
      if (!hasExited) child.kill('SIGKILL');
      await exited;
      cleanup();
    },
  };
}

/** Polls `check` every 200 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
