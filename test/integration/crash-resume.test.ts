// A daemon killed with SIGKILL in the middle of a pull leaves a store that the next
// daemon on the same data root resumes: finished blobs are not fetched again, a partly
// downloaded blob continues with an HTTP Range request, a half-extracted layer is thrown
// away at start-up, and the store check is clean afterwards.
//
// Deterministic by construction: a gating proxy in front of a fake registry lets chosen
// blobs through only up to a byte count and then holds the connection open, so the
// daemon is killed in a known state rather than after a guessed delay.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, startDaemon, type TestDaemon } from '../helpers/daemon';
import { FakeRegistry, type FakeImage } from '../helpers/fake-registry';
import { buildTar, type EntryInput } from '../helpers/tar';
import type { ProgressMessage } from '../../src/image/progress';

const MiB = 1024 * 1024;
/** How much of the second layer travels before the proxy holds it. */
const PARTIAL_BYTES = 1 * MiB;

// ---- a proxy that records blob requests and can hold a blob after N bytes ----------

interface BlobRequest {
  digest: string;
  range?: string;
  status: number;
  /** Body bytes the proxy passed on to the daemon. */
  bytesSent: number;
}

class GatingProxy {
  readonly blobRequests: BlobRequest[] = [];
  /** digest -> body bytes to pass per request before holding the rest. */
  private readonly gates = new Map<string, number>();
  private readonly server: Server;
  host = '';

  private constructor(private readonly upstream: { host: string; port: number }) {
    this.server = createServer((req, res) => this.forward(req, res));
  }

  static async start(upstreamHost: string): Promise<GatingProxy> {
    const [host, port] = upstreamHost.split(':');
    const proxy = new GatingProxy({ host: host!, port: Number(port) });
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', () => resolve()));
    proxy.host = `127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    return proxy;
  }

  gate(digest: string, bytes: number): void { this.gates.set(digest, bytes); }
  openAllGates(): void { this.gates.clear(); }

  requestsFor(digest: string, since = 0): BlobRequest[] {
    return this.blobRequests.slice(since).filter((r) => r.digest === digest);
  }

  close(): Promise<void> {
    return new Promise((resolve) => { this.server.closeAllConnections(); this.server.close(() => resolve()); });
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1];
    const upstreamReq = request({ ...this.upstream, method: req.method, path: req.url, headers: req.headers }, (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      const record: BlobRequest | undefined = digest ? { digest, status: upstreamRes.statusCode ?? 0, bytesSent: 0 } : undefined;
      if (record) {
        if (typeof req.headers.range === 'string') record.range = req.headers.range;
        this.blobRequests.push(record);
      }
      // The gate is read once per request: reopening gates later does not free a held
      // connection, the daemon's retry after restart is a new request.
      const allowed = (digest === undefined ? undefined : this.gates.get(digest)) ?? Infinity;
      let passed = 0;
      let holding = false;
      upstreamRes.on('data', (chunk: Buffer) => {
        if (holding) return;
        const room = allowed - passed;
        const part = room < chunk.length ? chunk.subarray(0, Math.max(0, room)) : chunk;
        passed += part.length;
        if (record) record.bytesSent += part.length;
        if (part.length < chunk.length) { holding = true; upstreamRes.pause(); } // the rest never goes
        if (part.length > 0 && !res.write(part) && !holding) {
          upstreamRes.pause();
          res.once('drain', () => upstreamRes.resume());
        }
      });
      upstreamRes.on('end', () => { if (!holding) res.end(); });
    });
    upstreamReq.on('error', () => res.destroy());
    res.on('close', () => upstreamReq.destroy());
    req.pipe(upstreamReq);
  }
}

// ---- pulling through the raw API ---------------------------------------------------

interface PullStream {
  messages: ProgressMessage[];
  /** Resolves with the first message (seen so far or later) matching `match`. */
  waitFor(match: (m: ProgressMessage & { error?: string }) => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Settles when the response ends or breaks (a killed daemon breaks it). */
  finished: Promise<void>;
}

function startPull(socket: string, repository: string, tag: string): PullStream {
  const messages: Array<ProgressMessage & { error?: string }> = [];
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((l) => l());
  const finished = new Promise<void>((resolve) => {
    const path = `/v1.47/images/create?fromImage=${encodeURIComponent(repository)}&tag=${encodeURIComponent(tag)}`;
    const req = request({ socketPath: socket, method: 'POST', path }, (res) => {
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        buffered += text;
        const lines = buffered.split('\r\n');
        buffered = lines.pop()!;
        for (const line of lines) if (line.trim()) messages.push(JSON.parse(line));
        notify();
      });
      res.on('end', () => { if (res.statusCode !== 200) messages.push({ error: `HTTP ${res.statusCode}: ${buffered}` }); resolve(); notify(); });
      res.on('error', () => { resolve(); notify(); });
      res.on('aborted', () => { resolve(); notify(); });
    });
    req.on('error', () => { resolve(); notify(); });
    req.end();
  });
  let done = false;
  void finished.then(() => { done = true; });
  return {
    messages,
    finished,
    waitFor(match, what, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (messages.some(match)) { cleanup(); resolve(); } else if (done) { cleanup(); reject(new Error(`pull ended before ${what}: ${JSON.stringify(messages)}`)); }
        };
        const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(messages.slice(-5))}`)); }, timeoutMs);
        const cleanup = () => { clearTimeout(timer); listeners.delete(check); };
        listeners.add(check);
        check();
      });
    },
  };
}

async function pullToEnd(socket: string, repository: string, tag: string): Promise<ProgressMessage[]> {
  const pull = startPull(socket, repository, tag);
  await pull.finished;
  return pull.messages;
}

function post(socket: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method: 'POST', path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

// ---- the store on disk ---------------------------------------------------------------

let workDir: string;
let dataRoot: string;
const store = () => join(dataRoot, 'image');
const hexOf = (digest: string) => digest.slice('sha256:'.length);
const shortId = (digest: string) => hexOf(digest).slice(0, 12);
const partialPath = (digest: string) => join(store(), 'ingest', `${hexOf(digest)}.partial`);
const blobStored = (digest: string) => existsSync(join(store(), 'blobs', 'sha256', hexOf(digest)));
const tmpEntries = () => readdirSync(join(store(), 'tmp'));
const ingestEntries = () => readdirSync(join(store(), 'ingest'));

function hasImageRecord(id: string): boolean {
  return readdirSync(join(store(), 'images')).some((name) => name.includes(hexOf(id)));
}

function tagsInRepositories(): string {
  const file = join(store(), 'repositories.json');
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function assertStoreClean(daemon: TestDaemon): Promise<void> {
  assert.equal(ingestEntries().filter((n) => n.endsWith('.partial')), [], 'no partial downloads left in ingest/');
  assert.equal(tmpEntries(), [], 'nothing left in tmp/');
  const check = await post(daemon.socket, '/system/check');
  assert.is(check.status, 200, check.body);
  assert.equal(JSON.parse(check.body), { Problems: [] });
}

const isStatus = (status: string, id?: string) => (m: ProgressMessage) => m.status === status && (id === undefined || m.id === id);

// ---- fixtures --------------------------------------------------------------------------

/** A layer of one file of random bytes: gzip cannot shrink it, so blob size ~ `size`. */
function randomLayer(name: string, size: number): Promise<Buffer> {
  return buildTar([{ name, mode: 0o644, body: randomBytes(size) }]);
}

/** Many small files: extraction (and its per-file fsync) takes long enough to catch. */
function manyFilesLayer(count: number): Promise<Buffer> {
  const entries: EntryInput[] = [{ name: 'many/', type: 'directory', mode: 0o755 }];
  for (let i = 0; i < count; i++) entries.push({ name: `many/f${i}`, mode: 0o644, body: randomBytes(512) });
  return buildTar(entries);
}

let registry: FakeRegistry;
let proxy: GatingProxy;
let resumeImage: FakeImage;
let extractImage: FakeImage;
const daemons: TestDaemon[] = [];

async function startOnDataRoot(): Promise<TestDaemon> {
  const daemon = await startDaemon({ dataRoot });
  daemons.push(daemon);
  return daemon;
}

test.before(async () => {
  workDir = makeTempDir('berth-crash-resume-');
  dataRoot = join(workDir, 'data');
  registry = await FakeRegistry.start();
  resumeImage = registry.addImage('crash/resume', 'one', {
    layers: await Promise.all([randomLayer('a.bin', 3 * MiB), randomLayer('b.bin', 3 * MiB + 12345), randomLayer('c.bin', 2 * MiB)]),
  });
  extractImage = registry.addImage('crash/extract', 'one', {
    layers: [await randomLayer('base.bin', 512 * 1024), await manyFilesLayer(1500)],
  });
  proxy = await GatingProxy.start(registry.host);
});

async function killAllDaemons(): Promise<void> {
  for (const daemon of daemons.splice(0)) await daemon.kill().catch(() => {});
}

// A test that failed half-way leaves its daemon holding the data root.
test.before.each(killAllDaemons);

test.after(async () => {
  await killAllDaemons();
  await proxy?.close();
  await registry?.close();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('SIGKILL mid-download: the restarted daemon resumes without fetching finished blobs again', async () => {
  const [done, partial, untouched] = resumeImage.layerDescriptors as [typeof resumeImage.layerDescriptors[0], typeof resumeImage.layerDescriptors[0], typeof resumeImage.layerDescriptors[0]];
  const repository = `${proxy.host}/crash/resume`;
  proxy.gate(partial.digest, PARTIAL_BYTES);
  proxy.gate(untouched.digest, 0);

  const first = await startOnDataRoot();
  const pull = startPull(first.socket, repository, 'one');
  await pull.waitFor(isStatus('Download complete', shortId(done.digest)), 'the first layer downloaded');
  await pull.waitFor(isStatus('Pull complete', shortId(done.digest)), 'the first layer extracted');
  await waitUntil(() => existsSync(partialPath(partial.digest)) && statSync(partialPath(partial.digest)).size === PARTIAL_BYTES, 'the second layer is partly downloaded');
  assert.not.ok(pull.messages.some(isStatus('Download complete', shortId(partial.digest))));

  await first.kill();
  await pull.finished;

  // Nothing names the image yet: no record, no tag.
  assert.not.ok(hasImageRecord(resumeImage.configDigest), 'no image record after the crash');
  assert.not.match(tagsInRepositories(), 'crash/resume');
  assert.ok(blobStored(done.digest));
  assert.not.ok(blobStored(partial.digest));
  const kept = statSync(partialPath(partial.digest)).size;
  assert.is(kept, PARTIAL_BYTES);

  proxy.openAllGates();
  const mark = proxy.blobRequests.length;
  const second = await startOnDataRoot();
  const messages = await pullToEnd(second.socket, repository, 'one');
  assert.not.ok(messages.some((m) => 'error' in m), JSON.stringify(messages));
  assert.equal(messages[messages.length - 1], { status: `Status: Downloaded newer image for ${repository}:one` });
  assert.ok(messages.some(isStatus('Already exists', shortId(done.digest))), 'the extracted layer is reused');

  // Finished blobs (the first layer and the config) were not requested again.
  assert.equal(proxy.requestsFor(done.digest, mark), []);
  assert.equal(proxy.requestsFor(resumeImage.configDigest, mark), []);
  assert.is(proxy.requestsFor(done.digest).length, 1);
  // The partial one continued where the file ended, and only the missing bytes travelled.
  const resumed = proxy.requestsFor(partial.digest, mark);
  assert.is(resumed.length, 1, JSON.stringify(resumed));
  assert.is(resumed[0]!.range, `bytes=${kept}-`);
  assert.is(resumed[0]!.status, 206);
  assert.is(resumed[0]!.bytesSent, partial.size - kept);
  const sentInTotal = proxy.requestsFor(partial.digest).reduce((sum, r) => sum + r.bytesSent, 0);
  assert.is(sentInTotal, partial.size, 'every byte of the resumed blob travelled once');
  // The held blob had no bytes on disk, so it starts over without a Range.
  const restarted = proxy.requestsFor(untouched.digest, mark);
  assert.is(restarted.length, 1);
  assert.is(restarted[0]!.range, undefined);
  assert.is(restarted[0]!.bytesSent, untouched.size);

  assert.ok(hasImageRecord(resumeImage.configDigest));
  assert.match(tagsInRepositories(), `${proxy.host}/crash/resume:one`);
  await assertStoreClean(second);
  await second.stop();
});

test('SIGKILL mid-extraction: the restart removes the half-extracted layer and the pull completes', async () => {
  const [base, many] = extractImage.layerDescriptors as [typeof extractImage.layerDescriptors[0], typeof extractImage.layerDescriptors[0]];
  const repository = `${proxy.host}/crash/extract`;

  const first = await startOnDataRoot();
  const pull = startPull(first.socket, repository, 'one');
  await pull.waitFor(isStatus('Pull complete', shortId(base.digest)), 'the base layer extracted');
  await pull.waitFor(isStatus('Extracting', shortId(many.digest)), 'extraction of the second layer started');
  // Freeze the daemon first so what is on disk is what the crash leaves.
  process.kill(first.pid, 'SIGSTOP');
  const halfExtracted = tmpEntries();
  await first.kill();
  await pull.finished;
  assert.is(halfExtracted.length, 1, `one extraction dir in tmp/: ${JSON.stringify(halfExtracted)}`);
  assert.ok(tmpEntries().includes(halfExtracted[0]!), 'the crash left it behind');
  assert.not.ok(hasImageRecord(extractImage.configDigest), 'no image record after the crash');
  assert.not.match(tagsInRepositories(), 'crash/extract');
  assert.ok(blobStored(many.digest), 'the blob itself was complete before extraction');

  const mark = proxy.blobRequests.length;
  const second = await startOnDataRoot();
  assert.equal(tmpEntries(), [], 'start-up removed the half-extracted layer');

  const messages = await pullToEnd(second.socket, repository, 'one');
  assert.not.ok(messages.some((m) => 'error' in m), JSON.stringify(messages));
  assert.equal(messages[messages.length - 1], { status: `Status: Downloaded newer image for ${repository}:one` });
  assert.ok(messages.some(isStatus('Already exists', shortId(base.digest))));
  assert.ok(messages.some(isStatus('Pull complete', shortId(many.digest))), 'the layer is extracted again');
  assert.equal(proxy.blobRequests.slice(mark), [], 'no blob was downloaded again');

  assert.ok(hasImageRecord(extractImage.configDigest));
  await assertStoreClean(second);
  // The first image survived both crashes.
  assert.ok(hasImageRecord(resumeImage.configDigest));
  await second.stop();
});

test.run();
