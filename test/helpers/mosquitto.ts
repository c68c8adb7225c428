// A real mosquitto for fleet tests: TLS with client certificates made by openssl in a
// temp dir, an ACL keyed on the certificate CN, persistence in the temp dir so a
// restarted broker keeps retained messages and sessions. Port chosen free at start.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ClientCert { ca: string; cert: string; key: string }

export interface TestBroker {
  port: number;
  url: string;
  dir: string;
  /** Files for a client whose certificate CN is `name` (the ACL user name). */
  client(name: string): ClientCert;
  stop(): Promise<void>;
  /** Starts again on the same port with the same persistence. */
  start(): Promise<void>;
  logs(): string;
  /** Stops the broker and removes every file. */
  destroy(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** `clients` are certificate CNs (device ids, "operator"); `acl` is mosquitto ACL text. */
export async function startBroker(opts: { clients: string[]; acl: string }): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-mosquitto-'));
  const port = await freePort();
  try {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=berth test CA'], dir);
    const issue = (name: string, ext?: string): void => {
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
      const extArgs = ext ? (writeFileSync(join(dir, `${name}.ext`), ext), ['-extfile', `${name}.ext`]) : [];
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', ...extArgs], dir);
    };
    issue('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    for (const c of opts.clients) issue(c);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  writeFileSync(join(dir, 'acl'), opts.acl);
  writeFileSync(join(dir, 'mosquitto.conf'), [
    // Stay root: the temp dir is private to this user and mosquitto would drop to its own.
    'user root',
    `listener ${port} 127.0.0.1`,
    `cafile ${join(dir, 'ca.crt')}`, `certfile ${join(dir, 'server.crt')}`, `keyfile ${join(dir, 'server.key')}`,
    'require_certificate true', 'use_identity_as_username true',
    `acl_file ${join(dir, 'acl')}`,
    'persistence true', `persistence_location ${dir}/`,
    'log_dest stderr', 'log_type error', 'log_type warning', 'log_type notice',
    '',
  ].join('\n'));

  let child: ChildProcess | undefined;
  let logs = '';
  const start = async (): Promise<void> => {
    const proc = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const onData = (d: Buffer): void => { logs += d; };
    proc.stderr!.on('data', onData);
    proc.stdout!.on('data', onData);
    // Ready when the port accepts connections (the "running" line is not logged at these levels).
    const deadline = Date.now() + 10_000;
    while (!(await accepts(port))) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`mosquitto did not start:\n${logs}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  process.on('exit', () => { child?.kill('SIGKILL'); });
  try {
    await start();
  } catch (err) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port, dir, url: `mqtts://127.0.0.1:${port}`,
    client: (name) => ({ ca: join(dir, 'ca.crt'), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }),
    stop, start, logs: () => logs,
    async destroy() { await stop(); rmSync(dir, { recursive: true, force: true }); },
  };
}
