// A tiny registry on 127.0.0.1 serving whatever a test crafts: manifests of any media
// type and size, configs whose diff_ids lie, blobs whose bytes do not match their
// digest, blobs cut short mid-transfer. Real registries refuse to store such things,
// so hostile-pull tests need their own server. It speaks just enough of the
// distribution API for RegistryClient: /v2/, manifests by tag or digest, blobs with Range.

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import type { Descriptor, Digest } from '../../src/minimal-graph/types';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';

export const sha256 = (data: Buffer | string): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}`;

interface StoredManifest { body: Buffer; mediaType: string }

export interface BlobFault {
  /** Send the real Content-Length but only this many bytes, then drop the connection. */
  truncateAt?: number;
  /** How many requests the fault applies to before the blob is served properly. */
  times?: number;
}

export interface FakeImageSpec {
  /** Uncompressed layer tars, bottom first; each is gzipped for the registry. */
  layers: Buffer[];
  /** Replaces the diff_ids the config would list (to make them lie). */
  diffIds?: Digest[];
  architecture?: string;
  /** Serve the layers as plain tars instead of gzip. */
  uncompressed?: boolean;
  /** Extra config fields (to make two images with the same layers differ). */
  labels?: Record<string, string>;
}

export interface FakeImage {
  reference: string;
  manifestDigest: Digest;
  configDigest: Digest;
  layerDescriptors: Descriptor[];
  diffIds: Digest[];
}

export interface RequestRecord { method: string; path: string; range?: string }

export class FakeRegistry {
  readonly requests: RequestRecord[] = [];
  private readonly blobs = new Map<Digest, Buffer>();
  /** Bytes served instead of the real blob, under the real digest. */
  private readonly substitutes = new Map<Digest, Buffer>();
  private readonly faults = new Map<Digest, BlobFault>();
  private readonly manifests = new Map<string, StoredManifest>();
  private server!: Server;
  host = '';

  static async start(): Promise<FakeRegistry> {
    const registry = new FakeRegistry();
    registry.server = createServer((req, res) => registry.handle(req, res));
    await new Promise<void>((resolve) => registry.server.listen(0, '127.0.0.1', () => resolve()));
    registry.host = `127.0.0.1:${(registry.server.address() as AddressInfo).port}`;
    return registry;
  }

  close(): Promise<void> {
    return new Promise((resolve) => { this.server.closeAllConnections(); this.server.close(() => resolve()); });
  }

  addBlob(data: Buffer, mediaType = 'application/octet-stream'): Descriptor {
    const digest = sha256(data);
    this.blobs.set(digest, data);
    return { mediaType, digest, size: data.length };
  }

  /** Serves `bytes` whenever `digest` is asked for. */
  substituteBlob(digest: Digest, bytes: Buffer): void {
    this.substitutes.set(digest, bytes);
  }

  faultBlob(digest: Digest, fault: BlobFault): void {
    this.faults.set(digest, { times: 1, ...fault });
  }

  /** Stores a manifest under `repo:tag` and `repo@digest`; returns its digest. */
  addManifest(repo: string, tag: string, body: Buffer, mediaType: string): Digest {
    const digest = sha256(body);
    this.manifests.set(`${repo}:${tag}`, { body, mediaType });
    this.manifests.set(`${repo}@${digest}`, { body, mediaType });
    return digest;
  }

  /** Builds and serves a one-platform (linux/amd64 unless told) OCI image. */
  addImage(repo: string, tag: string, spec: FakeImageSpec): FakeImage {
    const diffIds = spec.diffIds ?? spec.layers.map((layer) => sha256(layer));
    const layerDescriptors = spec.layers.map((layer) => (spec.uncompressed ? this.addBlob(layer, OCI_LAYER_TAR) : this.addBlob(gzipSync(layer), OCI_LAYER_GZIP)));
    const config = {
      architecture: spec.architecture ?? 'amd64', os: 'linux', created: '2024-01-02T03:04:05Z',
      config: { Cmd: ['/bin/sh'], ...(spec.labels ? { Labels: spec.labels } : {}) },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: spec.layers.map((_, i) => ({ created: '2024-01-02T03:04:05Z', created_by: `layer ${i}` })),
    };
    const configDesc = this.addBlob(Buffer.from(JSON.stringify(config)), OCI_CONFIG);
    const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc, layers: layerDescriptors };
    const manifestDigest = this.addManifest(repo, tag, Buffer.from(JSON.stringify(manifest)), OCI_MANIFEST);
    return { reference: `${this.host}/${repo}:${tag}`, manifestDigest, configDigest: configDesc.digest, layerDescriptors, diffIds };
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0]!;
    const range = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    this.requests.push({ method: req.method ?? 'GET', path, ...(range ? { range } : {}) });
    if (path === '/v2/' || path === '/v2') { res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}'); return; }

    const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (manifest) {
      const [, repo, reference] = manifest;
      const key = reference!.startsWith('sha256:') ? `${repo}@${reference}` : `${repo}:${reference}`;
      const found = this.manifests.get(key);
      if (!found) { notFound(res, 'MANIFEST_UNKNOWN'); return; }
      res.writeHead(200, { 'Content-Type': found.mediaType, 'Content-Length': found.body.length, 'Docker-Content-Digest': sha256(found.body) });
      res.end(req.method === 'HEAD' ? undefined : found.body);
      return;
    }

    const blob = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);
    if (blob) {
      const digest = blob[2]!;
      const data = this.substitutes.get(digest) ?? this.blobs.get(digest);
      if (!data) { notFound(res, 'BLOB_UNKNOWN'); return; }
      const start = range ? Number(/^bytes=(\d+)-$/.exec(range)?.[1] ?? 0) : 0;
      if (start >= data.length && start > 0) { res.writeHead(416).end(); return; }
      const body = data.subarray(start);
      const headers: Record<string, string | number> = { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length };
      if (start > 0) headers['Content-Range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
      res.writeHead(start > 0 ? 206 : 200, headers);
      const fault = this.faults.get(digest);
      if (fault?.truncateAt !== undefined && (fault.times ?? 1) > 0) {
        fault.times = (fault.times ?? 1) - 1;
        // Flush the first part, then cut the connection as a dying proxy would.
        res.write(body.subarray(0, fault.truncateAt), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    notFound(res, 'NAME_UNKNOWN');
  }
}

function notFound(res: ServerResponse, code: string): void {
  res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] }));
}
