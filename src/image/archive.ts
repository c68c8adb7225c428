// `docker save` / `docker load` archives. We write what Docker 25+ writes: an OCI
// image layout (index.json, blobs/sha256/...) that also carries Docker's manifest.json,
// so both old and new tools read it. We read both Docker's legacy layout
// (<id>/layer.tar, <id>.json, manifest.json) and plain OCI layouts.
//
// Loading never trusts names from the archive as file paths: every regular file is
// spooled under a numbered name in a temp dir inside the data root and looked up by
// its archive name from a map, so a hostile archive cannot write anywhere else.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import tarStream from 'tar-stream';
import type { Graph } from '../minimal-graph';
import { chainIds } from '../minimal-graph';
import type { Descriptor, Digest, ImageRecord, LayerRef, Platform } from '../minimal-graph/types';
import { BerthError } from '../util/errors';
import { registerLayer } from './layer-register';
import { decompressStream, sniffCompression } from './decompress';
import type { ProgressSink } from './progress';
import { familiarString, formatReference, parseReference } from './reference';
import { candidatePlatforms } from './platform';

const MAX_METADATA_BYTES = 4 * 1024 * 1024;
const MAX_ARCHIVE_FILES = 100_000;

const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
};

export interface SaveItem {
  image: ImageRecord;
  /** Normalised references to record as RepoTags ("docker.io/library/busybox:latest"). */
  tags: string[];
}

const hex = (d: Digest) => d.slice('sha256:'.length);

/** Where a layer's uncompressed tar comes from: its stored blob, or tar-split + diff/ once the blob is gone. */
interface LayerTarSource {
  /** Bytes of the uncompressed tar (the archive entry's header needs it up front). */
  size: number;
  open(): AsyncIterable<Buffer> & { destroy?(): void };
  what: string;
}

async function layerTarSource(graph: Graph, image: ImageRecord, layer: LayerRef): Promise<LayerTarSource> {
  if (await graph.content.has(layer.blobDigest)) {
    const open = () => decompressStream(graph.content.openRead(layer.blobDigest)) as unknown as AsyncIterable<Buffer> & { destroy(): void };
    let size = 0;
    for await (const chunk of open()) size += chunk.length;
    return { size, open, what: `stored layer ${layer.blobDigest}` };
  }
  const record = await graph.layers.get(layer.chainId);
  if (record?.tarSplit && await graph.layers.canRebuildTar(layer.chainId)) {
    return { size: record.tarSplit.tarSize, open: () => graph.layers.reassemble(layer.chainId), what: `layer ${layer.chainId} rebuilt from its files` };
  }
  throw new BerthError('ECORRUPT', `cannot save image ${image.id}: layer ${layer.chainId} has neither its blob ${layer.blobDigest} nor a tar-split to rebuild it from; pull the image again`);
}

function addEntry(pack: tarStream.Pack, name: string, data: Buffer | string): void {
  pack.entry({ name, mode: 0o644, mtime: new Date(0) }, data);
}

function addDirectory(pack: tarStream.Pack, name: string): void {
  pack.entry({ name, type: 'directory', mode: 0o755, mtime: new Date(0) });
}

/** Streams a save archive for the given images into `out`. */
export async function saveArchive(graph: Graph, items: SaveItem[], out: Writable): Promise<void> {
  const pack = tarStream.pack();
  const piping = pipeline(pack, out);
  // Observed now, awaited below: the reader may fail while layers are still being read.
  piping.catch(() => {});
  const written = new Set<string>();
  const dockerManifest: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
  const indexEntries: Descriptor[] = [];
  // Held before any blob is looked at: the background blob drop after a pull (and gc)
  // must not delete a blob between "it is there" and reading it.
  const lease = graph.createLease();
  for (const { image } of items) lease.add(image.id, ...image.layers.flatMap((l) => [l.blobDigest, l.chainId]));
  try {
    await graph.leasesInForce();
    addDirectory(pack, 'blobs/');
    addDirectory(pack, 'blobs/sha256/');
    for (const { image, tags } of items) {
      const configBuf = await graph.content.readBlob(image.id);
      const configPath = `blobs/sha256/${hex(image.id)}`;
      if (!written.has(configPath)) { addEntry(pack, configPath, configBuf); written.add(configPath); }
      const layerDescs: Descriptor[] = [];
      for (const layer of image.layers) {
        const layerPath = `blobs/sha256/${hex(layer.diffId)}`;
        const source = await layerTarSource(graph, image, layer);
        layerDescs.push({ mediaType: MT.ociLayerTar, digest: layer.diffId, size: source.size });
        if (written.has(layerPath)) continue;
        written.add(layerPath);
        const actual = await writeLayerEntry(pack, layerPath, source);
        if (actual !== layer.diffId) throw new BerthError('ECORRUPT', `${source.what} does not match its diff_id ${layer.diffId}: run berth system check`);
      }
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: MT.ociManifest,
        config: { mediaType: MT.ociConfig, digest: image.id, size: configBuf.length },
        layers: layerDescs,
      }));
      const manifestDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
      const manifestPath = `blobs/sha256/${hex(manifestDigest)}`;
      if (!written.has(manifestPath)) { addEntry(pack, manifestPath, manifest); written.add(manifestPath); }
      const familiarTags = tags.map((t) => familiarString(parseReference(t)));
      if (tags.length === 0) indexEntries.push({ mediaType: MT.ociManifest, digest: manifestDigest, size: manifest.length });
      for (const tag of tags) {
        const ref = parseReference(tag);
        indexEntries.push({
          mediaType: MT.ociManifest, digest: manifestDigest, size: manifest.length,
          annotations: { 'io.containerd.image.name': formatReference(ref), 'org.opencontainers.image.ref.name': ref.tag ?? 'latest' },
        });
      }
      dockerManifest.push({ Config: configPath, RepoTags: familiarTags, Layers: image.layers.map((l) => `blobs/sha256/${hex(l.diffId)}`) });
    }
    addEntry(pack, 'index.json', JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: indexEntries }));
    addEntry(pack, 'manifest.json', JSON.stringify(dockerManifest));
    addEntry(pack, 'oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    // When the reader went away first, its error is the one worth reporting.
    const outputError = await piping.then(() => undefined, (e: unknown) => e);
    throw outputError ?? err;
  } finally {
    lease.release();
  }
  await piping;
}

/**
 * Streams a layer's uncompressed tar into one archive entry; returns its sha256. The
 * entry reports failure through its callback (also when the output dies and the pack
 * is torn down), so no 'error' event may go unheard: that would crash the daemon.
 */
async function writeLayerEntry(pack: tarStream.Pack, name: string, tar: LayerTarSource): Promise<Digest> {
  const size = tar.size;
  const hash = createHash('sha256');
  let entry!: ReturnType<tarStream.Pack['entry']>;
  const finished = new Promise<void>((resolve, reject) => {
    entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, (err) => (err ? reject(err) : resolve()));
  });
  finished.catch(() => {});
  entry.on('error', () => {});
  const closed = new Promise<void>((resolve) => entry.once('close', () => resolve()));
  const source = tar.open();
  let written = 0;
  try {
    for await (const chunk of source) {
      if (entry.destroyed) break;
      // A tar entry longer or shorter than its header says would corrupt the archive.
      written += chunk.length;
      if (written > size) throw new BerthError('ECORRUPT', `${tar.what} grew while it was saved`);
      hash.update(chunk);
      if (!entry.write(chunk)) await Promise.race([new Promise<void>((resolve) => entry.once('drain', () => resolve())), closed]);
    }
    if (!entry.destroyed) (entry as unknown as { end(): void }).end(); // streamx typings require a chunk
  } finally {
    source.destroy?.();
  }
  await finished;
  return `sha256:${hash.digest('hex')}`;
}

interface SpooledFile { path: string; digest: Digest; size: number }

export interface LoadDeps {
  graph: Graph;
  whiteoutFormat: 'overlay' | 'none';
  maxLayerSize?: number;
  platform: Platform;
}

function cleanArchiveName(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}

/** A spooled archive: regular files by archive name, plus its links between names. */
class SpooledArchive {
  readonly files = new Map<string, SpooledFile>();
  /** Archive name -> archive name it links to (symlinks resolved against the link's dir). */
  readonly links = new Map<string, string>();

  /** Finds a file by archive name, following links inside the archive only. */
  get(name: string): SpooledFile | undefined {
    let current = cleanArchiveName(name);
    // Docker's legacy layout links repeated layers (<id>/layer.tar -> ../<other>/layer.tar).
    for (let hops = 0; hops < 16; hops++) {
      const file = this.files.get(current);
      if (file) return file;
      const next = this.links.get(current);
      if (next === undefined) return undefined;
      current = next;
    }
    return undefined;
  }
}

/** Where a link entry points, as an archive name; undefined when it leaves the archive. */
function linkTarget(entryName: string, linkname: string, kind: 'symlink' | 'link'): string | undefined {
  if (linkname.startsWith('/')) return undefined;
  const joined = posix.normalize(kind === 'symlink' ? posix.join(posix.dirname(entryName), linkname) : linkname);
  if (joined === '..' || joined.startsWith('../') || joined === '.') return undefined;
  return cleanArchiveName(joined);
}

async function spoolArchive(input: Readable, dir: string): Promise<SpooledArchive> {
  const archive = new SpooledArchive();
  const extract = tarStream.extract();
  let count = 0;
  extract.on('entry', (header, stream, next) => {
    const name = cleanArchiveName(header.name);
    if ((header.type === 'symlink' || header.type === 'link') && header.linkname) {
      const target = linkTarget(name, header.linkname, header.type);
      if (target !== undefined) archive.links.set(name, target);
    }
    if (header.type !== 'file' && header.type !== 'contiguous-file') { stream.resume(); stream.on('end', next); return; }
    if (++count > MAX_ARCHIVE_FILES) { stream.resume(); next(new BerthError('EINVAL', `archive has more than ${MAX_ARCHIVE_FILES} files`)); return; }
    const path = join(dir, String(count));
    const hash = createHash('sha256');
    let size = 0;
    stream.on('data', (c: unknown) => { const b = c as Buffer; hash.update(b); size += b.length; });
    pipeline(stream, createWriteStream(path, { flags: 'wx', mode: 0o600 })).then(
      () => { archive.files.set(name, { path, digest: `sha256:${hash.digest('hex')}`, size }); next(); },
      (err) => next(err),
    );
  });
  try {
    // `docker load` also takes compressed archives (docker save | gzip).
    await pipeline(decompressStream(input), extract);
  } catch (err) {
    if (err instanceof BerthError && err.code !== 'EINVAL') throw err;
    throw new BerthError('EINVAL', `invalid image archive: ${(err as Error).message}`, { cause: err });
  }
  return archive;
}

async function readSmall(file: SpooledFile, what: string): Promise<Buffer> {
  if (file.size > MAX_METADATA_BYTES) throw new BerthError('ETOOLARGE', `${what} in the archive is over ${MAX_METADATA_BYTES} bytes`);
  return fsp.readFile(file.path);
}

function parseJson(buf: Buffer, what: string): any {
  try { return JSON.parse(buf.toString('utf8')); } catch (err) {
    throw new BerthError('EINVAL', `invalid ${what} in the archive: ${(err as Error).message}`);
  }
}

interface ArchiveImage { config: SpooledFile; layers: SpooledFile[]; tags: string[] }

function requireFile(files: SpooledArchive, name: unknown, what: string): SpooledFile {
  if (typeof name !== 'string') throw new BerthError('EINVAL', `invalid ${what} name in the archive`);
  const file = files.get(name);
  if (!file) throw new BerthError('EINVAL', `archive is missing ${what} ${JSON.stringify(name)}`);
  return file;
}

async function imagesFromDockerManifest(files: SpooledArchive, manifestFile: SpooledFile): Promise<ArchiveImage[]> {
  const entries = parseJson(await readSmall(manifestFile, 'manifest.json'), 'manifest.json');
  if (!Array.isArray(entries)) throw new BerthError('EINVAL', 'invalid manifest.json in the archive: not a list');
  return entries.map((entry: any) => {
    if (!Array.isArray(entry?.Layers)) throw new BerthError('EINVAL', 'invalid manifest.json in the archive: an entry has no Layers');
    return {
      config: requireFile(files, entry.Config, 'config'),
      layers: entry.Layers.map((l: unknown) => requireFile(files, l, 'layer')),
      tags: Array.isArray(entry.RepoTags) ? entry.RepoTags.filter((t: unknown) => typeof t === 'string') : [],
    };
  });
}

async function imagesFromOciIndex(files: SpooledArchive, indexFile: SpooledFile, platform: Platform): Promise<ArchiveImage[]> {
  const blob = (d: unknown, what: string) => {
    if (typeof d !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d)) throw new BerthError('EINVAL', `invalid ${what} digest in the archive`);
    const file = requireFile(files, `blobs/sha256/${hex(d)}`, what);
    // A layout names blobs by digest: content that hashes otherwise was tampered with.
    if (file.digest !== d) throw new BerthError('EDIGEST', `${what} blob ${d} in the archive hashes to ${file.digest}`);
    return file;
  };
  const images: ArchiveImage[] = [];
  const visit = async (desc: any, name: string | undefined, depth: number): Promise<void> => {
    if (depth > 4) throw new BerthError('EINVAL', 'image index nests too deeply');
    const body = parseJson(await readSmall(blob(desc.digest, 'manifest'), 'manifest'), 'manifest');
    const mediaType = body.mediaType ?? desc.mediaType;
    if (mediaType === MT.ociIndex || mediaType === MT.dockerList) {
      const wanted = candidatePlatforms(platform);
      const chosen = (body.manifests ?? []).find((m: any) => !m.platform || wanted.some((p) => p.os === m.platform.os && p.architecture === m.platform.architecture && (!p.variant || !m.platform.variant || p.variant === m.platform.variant)));
      if (!chosen) throw new BerthError('EUNSUPPORTED', 'no image for this platform in the archive');
      await visit(chosen, name, depth + 1);
      return;
    }
    if (mediaType !== MT.ociManifest && mediaType !== MT.dockerManifest) throw new BerthError('EUNSUPPORTED', `unsupported manifest media type in the archive: ${mediaType}`);
    images.push({
      config: blob(body.config?.digest, 'config'),
      layers: (body.layers ?? []).map((l: any) => blob(l.digest, 'layer')),
      tags: name ? [name] : [],
    });
  };
  const index = parseJson(await readSmall(indexFile, 'index.json'), 'index.json');
  for (const desc of index.manifests ?? []) {
    const name = desc.annotations?.['io.containerd.image.name'];
    await visit(desc, typeof name === 'string' ? name : undefined, 0);
  }
  return images;
}

/** The layer media type its first bytes imply (archives may hold tar, gzip or zstd layers). */
async function sniffLayerMediaType(path: string): Promise<string> {
  const fh = await fsp.open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const kind = sniffCompression(head.subarray(0, bytesRead));
    return kind === 'none' ? MT.ociLayerTar : `${MT.ociLayerTar}+${kind}`;
  } finally {
    await fh.close();
  }
}

/** Moves a spooled file into the content store under its (already computed) digest. */
async function storeSpooled(graph: Graph, file: SpooledFile): Promise<void> {
  if (await graph.content.has(file.digest)) return;
  await fsp.rename(file.path, graph.content.ingestPath(file.digest));
  await graph.content.commitIngest(file.digest, { verified: true, expectedSize: file.size });
}

/** Imports every image of an archive; returns the loaded references (or IDs when untagged). */
export async function loadArchive(deps: LoadDeps, input: Readable, progress: ProgressSink): Promise<string[]> {
  const { graph } = deps;
  const spool = await graph.layers.beginCreate();
  // Keeps the layer blobs this load stores (and reads back to unpack) away from gc and
  // from another pull's or load's removal of redundant layer blobs until its images exist.
  const lease = graph.createLease();
  const loadedIds = new Set<Digest>();
  try {
    const files = await spoolArchive(input, spool);
    const manifestFile = files.get('manifest.json');
    const indexFile = files.get('index.json');
    let images: ArchiveImage[];
    if (manifestFile) images = await imagesFromDockerManifest(files, manifestFile);
    else if (indexFile) images = await imagesFromOciIndex(files, indexFile, deps.platform);
    else throw new BerthError('EINVAL', 'invalid image archive: it has neither manifest.json nor index.json');

    // Bad names are found before anything is stored, so they cannot leave an untagged image.
    const tagRefs = images.map((img) => img.tags.map((tag) => {
      try { return parseReference(tag); } catch (err) {
        throw new BerthError('EINVAL', `invalid image name ${JSON.stringify(tag)} in the archive: ${(err as Error).message}`, { cause: err });
      }
    }));

    const loaded: string[] = [];
    for (const [index, img] of images.entries()) {
      const configBuf = await readSmall(img.config, 'config');
      const config = parseJson(configBuf, 'image config');
      const diffIds: Digest[] = config?.rootfs?.diff_ids;
      if (!Array.isArray(diffIds) || diffIds.length !== img.layers.length) {
        throw new BerthError('EINVAL', `image config lists ${Array.isArray(diffIds) ? diffIds.length : 0} diff_ids for ${img.layers.length} layers`);
      }
      const id = await graph.content.writeBlob(configBuf);
      lease.add(id);
      loadedIds.add(id);
      const chains = chainIds(diffIds);
      lease.add(...chains);
      const layers: LayerRef[] = [];
      let size = 0;
      for (let i = 0; i < img.layers.length; i++) {
        const file = img.layers[i] as SpooledFile;
        lease.add(file.digest);
        // A drop of redundant blobs already under way (e.g. after an earlier load of this
        // same archive) chose before this lease: let it finish before trusting has().
        await graph.leasesInForce();
        // The layer may already be here with its blob gone: then the spooled copy is not stored.
        const mediaType = await sniffLayerMediaType(await graph.content.has(file.digest) ? graph.content.path(file.digest) : file.path);
        if (!(await graph.layers.has(chains[i] as Digest))) {
          await storeSpooled(graph, file);
          await registerLayer(graph, createReadStream(graph.content.path(file.digest)), {
            chainId: chains[i] as Digest, diffId: diffIds[i] as Digest, ...(i > 0 ? { parent: chains[i - 1] } : {}),
            whiteoutFormat: deps.whiteoutFormat, maxBytes: deps.maxLayerSize,
          });
        } else if (!(await graph.layers.canRebuildTar(chains[i] as Digest))) {
          await storeSpooled(graph, file); // this blob is the layer's only way back to its tar
        }
        size += (await graph.layers.get(chains[i] as Digest))?.size ?? 0;
        layers.push({ blobDigest: file.digest, mediaType, blobSize: file.size, diffId: diffIds[i] as Digest, chainId: chains[i] as Digest });
      }
      if (!(await graph.getImage(id))) {
        await graph.putImage({
          id, layers, size, created: config.created, addedAt: new Date().toISOString(),
          platform: { os: config.os ?? 'linux', architecture: config.architecture ?? 'unknown', ...(config.variant ? { variant: config.variant } : {}) },
        });
      }
      if (img.tags.length === 0) {
        progress({ stream: `Loaded image ID: ${id}\n` });
        loaded.push(id);
      }
      for (const ref of tagRefs[index]!) {
        if (!ref.tag) continue;
        await graph.setTag(formatReference(ref), id);
        progress({ stream: `Loaded image: ${familiarString(ref)}\n` });
        loaded.push(formatReference(ref));
      }
    }
    lease.release();
    void graph.settleLayerBlobs([...loadedIds] as Digest[]);
    return loaded;
  } finally {
    lease.release();
    await graph.layers.abortCreate(spool).catch(() => {});
  }
}
