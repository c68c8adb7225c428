// The registry client against real docker-registry instances (plain, basic auth, token
// auth, one shared storage) and small fake servers for the failure cases a real registry
// will not produce: redirects to other hosts, wrong bytes, huge or unknown manifests.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError, type BerthError } from '../../src/util/errors';
import { parseReference } from '../../src/image/reference';
import { RegistryClient } from '../../src/image/registry';
import type { Descriptor, Platform } from '../../src/minimal-graph/types';
import { freePort, startRegistry, type RunningRegistry } from '../helpers/registry';
import { pushFixtures, removeFixtureBuild, type FixtureSet } from '../helpers/fixture-images';

let plain: RunningRegistry;
let basic: RunningRegistry;
let token: RunningRegistry;
let fixtures: FixtureSet;
let client: RegistryClient;
let workDir: string;
const cleanups: Array<() => Promise<void> | void> = [];

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const linux = (architecture: string, variant?: string): Platform => (variant ? { os: 'linux', architecture, variant } : { os: 'linux', architecture });

async function rejectsWith(promise: Promise<unknown>, code: BerthError['code'], message?: RegExp): Promise<BerthError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isBerthError(err, code), `expected ${code}, got ${String((err as Error)?.stack ?? err)}`);
    if (message) assert.match((err as Error).message, message);
    return err as BerthError;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

interface FakeServer { host: string; port: number; close(): Promise<void> }

async function startFake(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeServer> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  const fake = {
    host: `127.0.0.1:${port}`,
    port,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
  cleanups.push(fake.close);
  return fake;
}

const partialPath = (name: string) => join(workDir, name);

test.before(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'berth-registry-test-'));
  try {
    plain = await startRegistry();
    basic = await startRegistry({ auth: 'basic', storageDir: plain.storageDir });
    token = await startRegistry({ auth: 'token', storageDir: plain.storageDir });
    fixtures = await pushFixtures(plain.host);
  } catch (err) {
    await Promise.allSettled([plain?.stop(), basic?.stop(), token?.stop()]);
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  }
  client = new RegistryClient({ userAgent: 'berth-test' });
});

test.after(async () => {
  client?.close();
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  await Promise.allSettled([token?.stop(), basic?.stop(), plain?.stop()]);
  removeFixtureBuild();
  rmSync(workDir, { recursive: true, force: true });
});

test('resolves and fetches an OCI image', async () => {
  const ref = parseReference(fixtures.oci.reference);
  const image = await client.resolveImage(ref, linux('amd64'));
  assert.is(image.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.is(image.manifestDigest, fixtures.oci.digest);
  assert.is(image.indexDigest, undefined);
  assert.is(sha256(image.manifestBody), image.manifestDigest);
  assert.is(image.layers.length, 1);

  const configPath = partialPath('oci-config');
  await client.fetchBlob(ref, image.config, configPath);
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { architecture: string; rootfs: { diff_ids: string[] } };
  assert.is(config.architecture, 'amd64');
  assert.is(config.rootfs.diff_ids.length, 1);

  const layerPath = partialPath('oci-layer');
  const progress: number[] = [];
  await client.fetchBlob(ref, image.layers[0]!, layerPath, { onProgress: (current, total) => { progress.push(current); assert.is(total, image.layers[0]!.size); } });
  const layer = await readFile(layerPath);
  assert.is(sha256(layer), image.layers[0]!.digest);
  assert.is(progress[progress.length - 1], image.layers[0]!.size);
});

test('resolves a Docker schema 2 image and pulls by digest', async () => {
  const image = await client.resolveImage(parseReference(fixtures.v2s2.reference), linux('amd64'));
  assert.is(image.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.is(image.manifestDigest, fixtures.v2s2.digest);
  assert.is(image.layers[0]!.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  const byDigest = await client.getManifest(parseReference(`${plain.host}/busybox@${fixtures.v2s2.digest}`));
  assert.is(byDigest.digest, fixtures.v2s2.digest);
});

test('walks an index to amd64, arm/v7, mipsle and (by fallback) arm64 -> arm64', async () => {
  const ref = parseReference(fixtures.multi.reference);
  const cases: Array<[Platform, string]> = [
    [linux('amd64'), 'linux/amd64'],
    [linux('arm', 'v7'), 'linux/arm/v7'],
    [linux('mipsle'), 'linux/mipsle'],
    [linux('arm64'), 'linux/arm64'],
    [linux('aarch64'), 'linux/arm64'],
  ];
  for (const [platform, key] of cases) {
    const image = await client.resolveImage(ref, platform);
    assert.is(image.indexDigest, fixtures.multi.digest, key);
    assert.is(image.manifestDigest, fixtures.multi.platforms[key], key);
    assert.ok(image.indexBody && sha256(image.indexBody) === fixtures.multi.digest);
  }
  // The arm/v7 image really is the arm one: its config says so and /etc/platform is in its last layer.
  const arm = await client.resolveImage(ref, linux('arm', 'v7'));
  const configPath = partialPath('arm-config');
  await client.fetchBlob(ref, arm.config, configPath);
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { architecture: string; variant?: string };
  assert.is(config.architecture, 'arm');
  assert.is(config.variant, 'v7');
  await rejectsWith(client.resolveImage(ref, linux('s390x')), 'EUNSUPPORTED', /no matching manifest for linux\/s390x in the manifest list entries/);
  await rejectsWith(client.resolveImage(ref, linux('arm', 'v6')), 'EUNSUPPORTED', /linux\/arm\/v6/);
});

test('zstd and multi-layer fixtures resolve with the expected layers', async () => {
  const zstd = await client.resolveImage(parseReference(fixtures.zstd.reference), linux('amd64'));
  assert.is(zstd.manifestDigest, fixtures.zstd.digest);
  assert.is(zstd.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  const layerPath = partialPath('zstd-layer');
  await client.fetchBlob(parseReference(fixtures.zstd.reference), zstd.layers[0]!, layerPath);
  assert.equal([...(await readFile(layerPath)).subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
  const layers = await client.resolveImage(parseReference(fixtures.layers.reference), linux('amd64'));
  assert.is(layers.manifestDigest, fixtures.layers.digest);
  assert.is(layers.layers.length, 3);
});

test('unknown tags and repositories are ENOIMAGE with docker wording', async () => {
  await rejectsWith(client.getManifest(parseReference(`${plain.host}/busybox:nope`)), 'ENOIMAGE', /manifest for 127\.0\.0\.1:\d+\/busybox:nope not found: manifest unknown/);
});

test('basic auth: good credentials pass, a bad password is EAUTH, none is refused', async () => {
  const ref = parseReference(`${basic.host}/busybox:oci`);
  const good = await client.resolveImage(ref, linux('amd64'), { auth: { username: basic.username!, password: basic.password! } });
  assert.is(good.manifestDigest, fixtures.oci.digest);
  // Docker's capitalised X-Registry-Auth keys work too, and blobs carry the credentials.
  const layerPath = partialPath('basic-layer');
  await client.fetchBlob(ref, good.layers[0]!, layerPath, { auth: { Username: basic.username, Password: basic.password } as never });
  await rejectsWith(client.getManifest(ref, { auth: { username: basic.username!, password: 'wrong' } }), 'EAUTH', /^unauthorized: /);
  await rejectsWith(client.getManifest(ref), 'ENOIMAGE', /may require 'docker login'/);
});

test('token auth: anonymous refused, credentials accepted, bad password EAUTH', async () => {
  const ref = parseReference(`${token.host}/busybox:oci`);
  await rejectsWith(client.getManifest(ref), 'ENOIMAGE', /pull access denied for 127\.0\.0\.1:\d+\/busybox/);
  const auth = { username: token.username!, password: token.password! };
  const image = await client.resolveImage(ref, linux('amd64'), { auth });
  assert.is(image.manifestDigest, fixtures.oci.digest);
  await client.fetchBlob(ref, image.config, partialPath('token-config'), { auth });
  const requests = token.tokenServer!.requests;
  assert.ok(requests.some((r) => r.username === token.username && r.granted && r.scopes.includes('repository:busybox:pull')));
  await rejectsWith(client.getManifest(ref, { auth: { username: token.username!, password: 'wrong' } }), 'EAUTH', /unauthorized: incorrect username or password/);
});

test('bearer tokens are renewed on a new 401 and after expires_in', async () => {
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: 1 }, layers: [] }));
  let issued = 0;
  let accepted = '';
  const tokenQueries: string[] = [];
  const fake = await startFake((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (url.pathname === '/token') {
      tokenQueries.push(url.search);
      accepted = `tok-${++issued}`;
      // Alternate the field name: registries answer with either.
      const body = issued % 2 ? { token: accepted, expires_in: 1 } : { access_token: accepted, expires_in: 1 };
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    if (req.headers.authorization !== `Bearer ${accepted}`) {
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${fake.host}/token",service="fake",scope="repository:x:pull"` }).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
  });
  const renewing = new RegistryClient();
  try {
    const ref = parseReference(`${fake.host}/x:y`);
    await renewing.getManifest(ref);
    assert.is(issued, 1);
    assert.match(tokenQueries[0]!, /service=fake/);
    assert.match(decodeURIComponent(tokenQueries[0]!), /scope=repository:x:pull/);
    await renewing.getManifest(ref);
    assert.is(issued, 1, 'a fresh token is reused');
    accepted = 'revoked';
    await renewing.getManifest(ref);
    assert.is(issued, 2, 'a new 401 fetched a new token');
    await new Promise((r) => setTimeout(r, 600));
    await renewing.getManifest(ref);
    assert.is(issued, 3, 'an expired token was renewed before use');
  } finally {
    renewing.close();
  }
});

test('resumes a partial download with a Range request', async () => {
  const image = await client.resolveImage(parseReference(fixtures.oci.reference), linux('amd64'));
  const layer = image.layers[0]!;
  const full = partialPath('resume-full');
  await client.fetchBlob(parseReference(fixtures.oci.reference), layer, full);
  const bytes = await readFile(full);

  // A recording proxy in front of the real registry.
  const seen: Array<{ url: string; range?: string; status?: number; bytes: number }> = [];
  const proxy = await startFake((req, res) => {
    const record: { url: string; range?: string; status?: number; bytes: number } = { url: req.url ?? '', bytes: 0 };
    if (req.headers.range) record.range = req.headers.range;
    seen.push(record);
    const upstream = request({ host: '127.0.0.1', port: plain.port, path: req.url, method: req.method, headers: { ...req.headers, host: plain.host } }, (up) => {
      record.status = up.statusCode;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.on('data', (chunk: Buffer) => { record.bytes += chunk.length; });
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const ref = parseReference(`${proxy.host}/busybox:oci`);
  const half = Math.floor(bytes.length / 2);
  const partial = partialPath('resume-partial');
  await writeFile(partial, bytes.subarray(0, half));
  await client.fetchBlob(ref, layer, partial);
  assert.is(sha256(await readFile(partial)), layer.digest);
  const blobRequest = seen.find((r) => r.url.includes(`/blobs/${layer.digest}`));
  assert.ok(blobRequest, 'the blob was requested through the proxy');
  assert.is(blobRequest!.range, `bytes=${half}-`);
  assert.is(blobRequest!.status, 206);
  assert.is(blobRequest!.bytes, bytes.length - half);

  // A complete partial needs no transfer at all.
  const before = seen.length;
  await client.fetchBlob(ref, layer, partial);
  assert.is(seen.length, before);
});

test('follows a redirect to another host without forwarding Authorization', async () => {
  const blob = Buffer.from('blob content served by another host\n'.repeat(100));
  const desc: Descriptor = { mediaType: 'application/octet-stream', digest: sha256(blob), size: blob.length };
  const cdnHeaders: IncomingHttpHeaders[] = [];
  const registryHeaders: IncomingHttpHeaders[] = [];
  const cdn = await startFake((req, res) => {
    cdnHeaders.push(req.headers);
    res.writeHead(200, { 'Content-Length': String(blob.length) }).end(blob);
  });
  const registry = await startFake((req, res) => {
    registryHeaders.push(req.headers);
    if (!req.headers.authorization) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="fake"', 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    if (req.url === '/v2/') { res.writeHead(200).end('{}'); return; }
    res.writeHead(307, { Location: `http://${cdn.host}/cdn/blob?sig=abc` }).end();
  });
  const ref = parseReference(`${registry.host}/busybox:x`);
  const target = partialPath('redirected');
  await client.fetchBlob(ref, desc, target, { auth: { username: 'u', password: 'p' } });
  assert.equal(await readFile(target), blob);
  assert.ok(registryHeaders.some((h) => h.authorization?.startsWith('Basic ')), 'the registry got the credentials');
  assert.is(cdnHeaders.length, 1);
  assert.is(cdnHeaders[0]!.authorization, undefined);
});

test('a blob with the wrong bytes is EDIGEST and leaves no partial', async () => {
  const good = Buffer.from('the bytes the manifest promised');
  const bad = Buffer.from('the bytes the server really sent');
  const desc: Descriptor = { mediaType: 'application/octet-stream', digest: sha256(good), size: bad.length };
  const fake = await startFake((req, res) => {
    if (req.url === '/v2/') { res.writeHead(200).end('{}'); return; }
    res.writeHead(200, { 'Content-Length': String(bad.length) }).end(bad);
  });
  const target = partialPath('mismatch');
  const err = await rejectsWith(client.fetchBlob(parseReference(`${fake.host}/x:y`), desc, target), 'EDIGEST');
  assert.match(err.message, new RegExp(desc.digest));
  assert.match(err.message, new RegExp(sha256(bad)));
  assert.not.ok(existsSync(target));

  // A server sending more than the descriptor's size is cut off, also without a partial left.
  const longer = await startFake((req, res) => {
    if (req.url === '/v2/') { res.writeHead(200).end('{}'); return; }
    res.writeHead(200);
    res.end(Buffer.alloc(64 * 1024, 1));
  });
  await rejectsWith(client.fetchBlob(parseReference(`${longer.host}/x:y`), { ...desc, size: 10 }, target), 'EDIGEST');
  assert.not.ok(existsSync(target));
});

test('manifest problems: over 4 MiB, unknown media type, schema 1, wrong digests', async () => {
  const huge = Buffer.alloc(5 * 1024 * 1024, 0x20);
  let hugeBytesSent = 0;
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: 1 }, layers: [] }));
  const fake = await startFake((req, res) => {
    const url = req.url ?? '';
    if (url === '/v2/') { res.writeHead(200).end('{}'); return; }
    if (url.endsWith('/manifests/huge')) {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Length': String(huge.length) }).end(huge);
      return;
    }
    if (url.endsWith('/manifests/huge-chunked')) {
      // No Content-Length: the client must stop reading at the limit, not after the body.
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (hugeBytesSent < 64 * 1024 * 1024) {
          hugeBytesSent += chunk.length;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        res.end();
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
      return;
    }
    if (url.endsWith('/manifests/odd')) {
      res.writeHead(200, { 'Content-Type': 'application/vnd.example.thing.v1+json' }).end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.thing.v1+json' }));
      return;
    }
    if (url.endsWith('/manifests/schema1')) {
      res.writeHead(200, { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' }).end(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y' }));
      return;
    }
    if (url.endsWith('/manifests/lying')) {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Docker-Content-Digest': `sha256:${'1'.repeat(64)}` }).end(manifest);
      return;
    }
    if (url.includes('/manifests/sha256:')) {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
      return;
    }
    if (url.endsWith('/manifests/untyped')) {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(manifest);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
  });
  const at = (tag: string) => parseReference(`${fake.host}/x:${tag}`);
  await rejectsWith(client.getManifest(at('huge')), 'ETOOLARGE');
  await rejectsWith(client.getManifest(at('huge-chunked')), 'ETOOLARGE');
  assert.ok(hugeBytesSent < 32 * 1024 * 1024, `the client stopped reading early (server wrote ${hugeBytesSent} bytes)`);
  await rejectsWith(client.getManifest(at('odd')), 'EUNSUPPORTED', /application\/vnd\.example\.thing\.v1\+json/);
  await rejectsWith(client.getManifest(at('schema1')), 'EUNSUPPORTED', /manifest\.v1\+prettyjws/);
  await rejectsWith(client.getManifest(at('lying')), 'EDIGEST', /Docker-Content-Digest/);
  await rejectsWith(client.getManifest(parseReference(`${fake.host}/x@sha256:${'2'.repeat(64)}`)), 'EDIGEST', /expected sha256:2{64}/);
  const untyped = await client.getManifest(at('untyped'));
  assert.is(untyped.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.is(untyped.digest, sha256(manifest));
});

test('an unreachable registry is EREGISTRY naming the host', async () => {
  const port = await freePort();
  await rejectsWith(client.getManifest(parseReference(`127.0.0.1:${port}/x:y`)), 'EREGISTRY', new RegExp(`127\\.0\\.0\\.1:${port}`));
});

test('a plain-HTTP registry is refused unless loopback or listed as insecure', async () => {
  // Needs an address that is not loopback; the host's own interface address will do.
  const address = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  const strict = new RegistryClient();
  const listed = new RegistryClient({ insecureRegistries: ['myregistry.lan:5000', 'other.lan'] });
  try {
    assert.ok(strict.isInsecureRegistry('127.0.0.1:5000'));
    assert.not.ok(strict.isInsecureRegistry('myregistry.lan:5000'));
    assert.ok(listed.isInsecureRegistry('myregistry.lan:5000'));
    assert.ok(listed.isInsecureRegistry('other.lan:443'));
    assert.not.ok(listed.isInsecureRegistry('third.lan'));
    if (!address) return;
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: 1 }, layers: [] }));
    const server = createServer((req, res) => {
      if (req.url === '/v2/') { res.writeHead(200).end('{}'); return; }
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
    });
    await new Promise<void>((resolve) => server.listen(0, address, () => resolve()));
    cleanups.push(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
    const domain = `${address}:${(server.address() as AddressInfo).port}`;
    await rejectsWith(strict.getManifest(parseReference(`${domain}/x:y`)), 'EDENIED', /plain HTTP.*insecure registries/);
    const allowed = new RegistryClient({ insecureRegistries: [domain] });
    try {
      assert.is((await allowed.getManifest(parseReference(`${domain}/x:y`))).digest, sha256(manifest));
    } finally {
      allowed.close();
    }
  } finally {
    strict.close();
    listed.close();
  }
});

test('partials survive network errors so a retry resumes', async () => {
  const blob = Buffer.alloc(256 * 1024, 7);
  const desc: Descriptor = { mediaType: 'application/octet-stream', digest: sha256(blob), size: blob.length };
  let calls = 0;
  const ranges: Array<string | undefined> = [];
  const flaky = await startFake((req, res) => {
    if (req.url === '/v2/') { res.writeHead(200).end('{}'); return; }
    calls++;
    ranges.push(req.headers.range);
    if (calls === 1) {
      res.writeHead(200, { 'Content-Length': String(blob.length) });
      res.write(blob.subarray(0, 100_000), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    res.writeHead(206, { 'Content-Range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'Content-Length': String(blob.length - start) });
    res.end(blob.subarray(start));
  });
  const ref = parseReference(`${flaky.host}/x:y`);
  const target = partialPath('flaky');
  await rejectsWith(client.fetchBlob(ref, desc, target), 'EREGISTRY', new RegExp(flaky.host.replace(/\./g, '\\.')));
  const kept = (await stat(target)).size;
  assert.ok(kept > 0 && kept <= 100_000, `partial kept ${kept} bytes`);
  await client.fetchBlob(ref, desc, target);
  assert.is(ranges[1], `bytes=${kept}-`);
  assert.equal(await readFile(target), blob);
});

test.run();
