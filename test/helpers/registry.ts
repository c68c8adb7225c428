// Runs Debian's docker-registry (distribution 2.8) on a free 127.0.0.1 port, plain or
// with basic or token auth. Several instances may share one storage directory, so tests
// push once through a plain registry and read the same images through the others.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTokenServer, type TokenServer } from './token-server';

const run = promisify(execFile);

export interface RegistryOptions {
  auth?: 'basic' | 'token';
  /** Share storage with another registry; when absent a fresh directory is made and removed on stop. */
  storageDir?: string;
  /** Token auth only: let anonymous clients pull. */
  allowAnonymousPull?: boolean;
}

export interface RunningRegistry {
  /** "127.0.0.1:PORT" */
  host: string;
  port: number;
  username?: string;
  password?: string;
  storageDir: string;
  tokenServer?: TokenServer;
  stop(): Promise<void>;
}

export const TEST_USERNAME = 'berth';
export const TEST_PASSWORD = 'correct-horse-battery';
const START_TIMEOUT_MS = 15_000;

// Registries outlive a crashed test otherwise; kill whatever is left when the process exits.
const live = new Set<ChildProcess>();
process.once('exit', () => { for (const child of live) child.kill('SIGKILL'); });

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/v2/', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => { req.destroy(); resolve(undefined); });
    req.end();
  });
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<RunningRegistry> {
  const configDir = await mkdtemp(join(tmpdir(), 'berth-registry-'));
  const ownsStorage = !opts.storageDir;
  const storageDir = opts.storageDir ?? join(configDir, 'storage');
  let tokenServer: TokenServer | undefined;
  let child: ChildProcess | undefined;

  const cleanup = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    if (child) live.delete(child);
    await tokenServer?.stop();
    await rm(configDir, { recursive: true, force: true });
    if (ownsStorage) await rm(storageDir, { recursive: true, force: true });
  };

  try {
    const port = await freePort();
    const lines = [
      'version: 0.1',
      'log: {level: error, accesslog: {disabled: true}}',
      `storage: {filesystem: {rootdirectory: ${JSON.stringify(storageDir)}}, delete: {enabled: true}, maintenance: {uploadpurging: {enabled: false}}}`,
      `http: {addr: "127.0.0.1:${port}", secret: "berth-test-secret"}`,
    ];
    let username: string | undefined;
    let password: string | undefined;
    if (opts.auth === 'basic') {
      username = TEST_USERNAME;
      password = TEST_PASSWORD;
      const { stdout } = await run('htpasswd', ['-Bbn', username, password]);
      const htpasswdPath = join(configDir, 'htpasswd');
      await writeFile(htpasswdPath, stdout.trim() + '\n');
      lines.push(`auth: {htpasswd: {realm: berth-test, path: ${JSON.stringify(htpasswdPath)}}}`);
    } else if (opts.auth === 'token') {
      username = TEST_USERNAME;
      password = TEST_PASSWORD;
      tokenServer = await startTokenServer({ users: { [username]: password }, allowAnonymousPull: opts.allowAnonymousPull });
      lines.push(`auth: {token: {realm: ${JSON.stringify(tokenServer.realm)}, service: ${JSON.stringify(tokenServer.service)}, issuer: ${JSON.stringify(tokenServer.issuer)}, rootcertbundle: ${JSON.stringify(tokenServer.rootCertBundle)}}}`);
    }
    const configPath = join(configDir, 'config.yml');
    await writeFile(configPath, lines.join('\n') + '\n');

    let stderr = '';
    child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(child);
    child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    const spawnError = new Promise<never>((_, reject) => {
      child!.once('error', reject);
      child!.once('exit', (code, signal) => reject(new Error(`docker-registry exited (${code ?? signal}) during start-up: ${stderr.trim()}`)));
    });
    spawnError.catch(() => { /* raced below; avoid an unhandled rejection after start */ });
    const ready = (async () => {
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (Date.now() < deadline) {
        const status = await probe(port);
        if (status === 200 || status === 401) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`docker-registry did not answer on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms: ${stderr.trim()}`);
    })();
    await Promise.race([ready, spawnError]);

    const registry: RunningRegistry = { host: `127.0.0.1:${port}`, port, storageDir, stop: cleanup };
    if (username !== undefined) { registry.username = username; registry.password = password; }
    if (tokenServer) registry.tokenServer = tokenServer;
    return registry;
  } catch (err) {
    await cleanup();
    throw err;
  }
}
