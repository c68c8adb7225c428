// Small real images for registry tests, built from the host's static busybox with umoci
// and pushed with skopeo. The OCI layout is built once per process; pushing is cheap
// (blobs are shared), so each registry storage gets its own push.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { Descriptor, Digest, Platform } from '../../src/minimal-graph/types';

const run = promisify(execFile);

export const FIXTURE_REPOSITORY = 'busybox';

export interface FixtureImage {
  /** "busybox:oci" */
  name: string;
  tag: string;
  /** "127.0.0.1:PORT/busybox:oci" */
  reference: string;
  /** The manifest (or index) digest the registry serves for the tag. */
  digest: Digest;
  mediaType: string;
}

export interface MultiPlatformFixture extends FixtureImage {
  /** platform string ("linux/arm/v7") -> that platform's manifest digest */
  platforms: Record<string, Digest>;
}

export interface FixtureSet {
  host: string;
  repository: string;
  /** OCI image manifest, one gzip layer. */
  oci: FixtureImage;
  /** The same image as Docker schema 2. */
  v2s2: FixtureImage;
  /** OCI index: linux/amd64, linux/arm64, linux/arm/v7, linux/mipsle; each image has /etc/platform naming it. */
  multi: MultiPlatformFixture;
  /** OCI manifest whose single layer is tar+zstd. */
  zstd: FixtureImage;
  /** Three layers: busybox + /data files; a whiteout of /data/file.txt; /data/dir made opaque. */
  layers: FixtureImage;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const REF_NAME = 'org.opencontainers.image.ref.name';
const BUSYBOX_APPLETS = ['sh', 'echo', 'ls', 'cat', 'true', 'sleep', 'test'];

export const MULTI_PLATFORMS: Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
  { os: 'linux', architecture: 'mipsle' },
];

function platformKey(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

// ---- a minimal OCI layout editor (umoci cannot set variants or write indexes) --------

interface LayoutIndex { schemaVersion: number; manifests: Descriptor[] }

class Layout {
  constructor(readonly dir: string) {}

  private async index(): Promise<LayoutIndex> {
    return JSON.parse(await readFile(join(this.dir, 'index.json'), 'utf8')) as LayoutIndex;
  }

  async descriptor(tag: string): Promise<Descriptor> {
    const found = (await this.index()).manifests.find((m) => m.annotations?.[REF_NAME] === tag);
    if (!found) throw new Error(`fixture layout has no tag ${tag}`);
    return found;
  }

  async readBlob(digest: Digest): Promise<Buffer> {
    return readFile(join(this.dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  }

  async readJson<T>(digest: Digest): Promise<T> {
    return JSON.parse((await this.readBlob(digest)).toString('utf8')) as T;
  }

  async writeBlob(mediaType: string, data: Buffer): Promise<Descriptor> {
    const hex = createHash('sha256').update(data).digest('hex');
    await writeFile(join(this.dir, 'blobs', 'sha256', hex), data);
    return { mediaType, digest: `sha256:${hex}`, size: data.length };
  }

  async setTag(tag: string, desc: Descriptor): Promise<void> {
    const index = await this.index();
    const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, annotations: { [REF_NAME]: tag } };
    index.manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== tag).concat(entry);
    await writeFile(join(this.dir, 'index.json'), JSON.stringify(index));
  }

  /** Rewrites the config (and so the manifest) of `tag` in place. */
  async editConfig(tag: string, edit: (config: Record<string, unknown>) => void): Promise<Descriptor> {
    const manifestDesc = await this.descriptor(tag);
    const manifest = await this.readJson<{ config: Descriptor; layers: Descriptor[] }>(manifestDesc.digest);
    const config = await this.readJson<Record<string, unknown>>(manifest.config.digest);
    edit(config);
    manifest.config = await this.writeBlob(manifest.config.mediaType, Buffer.from(JSON.stringify(config)));
    const desc = await this.writeBlob(OCI_MANIFEST, Buffer.from(JSON.stringify(manifest)));
    await this.setTag(tag, desc);
    return desc;
  }
}

// ---- building ----------------------------------------------------------------------

interface BuiltLayout {
  dir: string;
  platforms: Record<string, Digest>;
}

let built: Promise<BuiltLayout> | undefined;
let workDir: string | undefined;
const pushed = new Map<string, Promise<FixtureSet>>();

function cleanupWorkDir(): void {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function umoci(...args: string[]): Promise<void> {
  await run('umoci', args, { maxBuffer: 16 * 1024 * 1024 });
}

async function unpackWithBusybox(layoutDir: string, tag: string, bundle: string): Promise<string> {
  await umoci('unpack', '--image', `${layoutDir}:${tag}`, bundle);
  const bin = join(bundle, 'rootfs', 'bin');
  await mkdir(bin, { recursive: true });
  if (!existsSync(join(bin, 'busybox'))) {
    await copyFile(findBusybox(), join(bin, 'busybox'));
    for (const applet of BUSYBOX_APPLETS) await symlink('busybox', join(bin, applet));
  }
  return join(bundle, 'rootfs');
}

function findBusybox(): string {
  for (const candidate of ['/bin/busybox', '/usr/bin/busybox']) if (existsSync(candidate)) return candidate;
  throw new Error('fixture images need a static busybox (Debian package busybox-static)');
}

async function tarLayer(sourceDir: string, tarPath: string): Promise<void> {
  // Fixed owner and mtime so the layer is the same on every build.
  await run('tar', ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--sort=name', '-C', sourceDir, '-cf', tarPath, '.']);
}

async function buildLayout(): Promise<BuiltLayout> {
  workDir = mkdtempSync(join(tmpdir(), 'berth-fixtures-'));
  process.once('exit', cleanupWorkDir);
  const dir = join(workDir, 'layout');
  const layout = new Layout(dir);
  await umoci('init', '--layout', dir);

  // base: one layer holding busybox (tag "oci"; "v2s2" is the same image converted on push).
  await umoci('new', '--image', `${dir}:oci`);
  await unpackWithBusybox(dir, 'oci', join(workDir, 'b-oci'));
  await umoci('repack', '--image', `${dir}:oci`, join(workDir, 'b-oci'));
  await umoci('config', '--image', `${dir}:oci`, '--config.cmd', '/bin/sh', '--config.env', 'PATH=/bin', '--architecture', 'amd64', '--os', 'linux');

  // One image per platform: the same busybox plus /etc/platform, so each manifest differs.
  const platforms: Record<string, Digest> = {};
  const entries: Descriptor[] = [];
  for (const platform of MULTI_PLATFORMS) {
    const key = platformKey(platform);
    const tag = `p-${key.replace(/\//g, '-')}`;
    const bundle = join(workDir, `b-${tag}`);
    await umoci('unpack', '--image', `${dir}:oci`, bundle);
    await mkdir(join(bundle, 'rootfs', 'etc'), { recursive: true });
    await writeFile(join(bundle, 'rootfs', 'etc', 'platform'), `${key}\n`);
    await umoci('repack', '--image', `${dir}:${tag}`, bundle);
    const desc = await layout.editConfig(tag, (config) => {
      config.architecture = platform.architecture;
      config.os = platform.os;
      if (platform.variant) config.variant = platform.variant; else delete config.variant;
    });
    platforms[key] = desc.digest;
    entries.push({ ...desc, platform });
  }
  // An attestation-like entry, as BuildKit adds: clients must skip unknown/unknown.
  const amd64 = await layout.readJson<{ config: Descriptor }>(platforms['linux/amd64']!);
  const attestationManifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: amd64.config, layers: [] };
  const attestation = await layout.writeBlob(OCI_MANIFEST, Buffer.from(JSON.stringify(attestationManifest)));
  entries.push({ ...attestation, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': platforms['linux/amd64']! } });
  const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries };
  await layout.setTag('multi', await layout.writeBlob(OCI_INDEX, Buffer.from(JSON.stringify(index))));

  // zstd: the base layer recompressed by hand (skopeo 1.9 does not recompress gzip to zstd).
  const base = await layout.readJson<{ config: Descriptor; layers: Descriptor[] }>((await layout.descriptor('oci')).digest);
  const tarBytes = gunzipSync(await layout.readBlob(base.layers[0]!.digest));
  const tarPath = join(workDir, 'base-layer.tar');
  await writeFile(tarPath, tarBytes);
  await run('zstd', ['-q', '-f', '-3', tarPath, '-o', `${tarPath}.zst`]);
  const zstdLayer = await layout.writeBlob('application/vnd.oci.image.layer.v1.tar+zstd', await readFile(`${tarPath}.zst`));
  const zstdManifest = { ...base, layers: [zstdLayer] };
  await layout.setTag('zstd', await layout.writeBlob(OCI_MANIFEST, Buffer.from(JSON.stringify(zstdManifest))));

  // layers: (1) busybox + /data files, (2) a whiteout deleting /data/file.txt,
  // (3) /data/dir made opaque with new content.
  await umoci('new', '--image', `${dir}:layers`);
  const rootfs = await unpackWithBusybox(dir, 'layers', join(workDir, 'b-layers'));
  await mkdir(join(rootfs, 'data', 'dir'), { recursive: true });
  await writeFile(join(rootfs, 'data', 'file.txt'), 'deleted by layer 2\n');
  await writeFile(join(rootfs, 'data', 'keep.txt'), 'kept\n');
  await writeFile(join(rootfs, 'data', 'dir', 'old.txt'), 'hidden by layer 3\n');
  await umoci('repack', '--image', `${dir}:layers`, join(workDir, 'b-layers'));
  const whiteoutDir = join(workDir, 'l2');
  await mkdir(join(whiteoutDir, 'data'), { recursive: true });
  await writeFile(join(whiteoutDir, 'data', '.wh.file.txt'), '');
  await tarLayer(whiteoutDir, join(workDir, 'l2.tar'));
  await umoci('raw', 'add-layer', '--image', `${dir}:layers`, join(workDir, 'l2.tar'));
  const opaqueDir = join(workDir, 'l3');
  await mkdir(join(opaqueDir, 'data', 'dir'), { recursive: true });
  await writeFile(join(opaqueDir, 'data', 'dir', '.wh..wh..opq'), '');
  await writeFile(join(opaqueDir, 'data', 'dir', 'new.txt'), 'from layer 3\n');
  await tarLayer(opaqueDir, join(workDir, 'l3.tar'));
  await umoci('raw', 'add-layer', '--image', `${dir}:layers`, join(workDir, 'l3.tar'));
  await umoci('config', '--image', `${dir}:layers`, '--config.cmd', '/bin/sh', '--config.env', 'PATH=/bin', '--architecture', 'amd64', '--os', 'linux');

  return { dir, platforms };
}

async function skopeoPush(layoutDir: string, tag: string, destination: string, extra: string[]): Promise<Digest> {
  const digestFile = join(layoutDir, '..', `digest-${tag}-${process.hrtime.bigint()}`);
  try {
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--digestfile', digestFile, ...extra, `oci:${layoutDir}:${tag}`, `docker://${destination}`], { maxBuffer: 16 * 1024 * 1024 });
    return (await readFile(digestFile, 'utf8')).trim();
  } finally {
    await rm(digestFile, { force: true });
  }
}

/** Builds the fixture images (once per process) and pushes them to the registry at `host`. */
export function pushFixtures(host: string): Promise<FixtureSet> {
  let pending = pushed.get(host);
  if (!pending) {
    pending = (async () => {
      built ??= buildLayout();
      const { dir, platforms } = await built;
      const image = (tag: string, digest: Digest, mediaType: string): FixtureImage => ({
        name: `${FIXTURE_REPOSITORY}:${tag}`, tag, reference: `${host}/${FIXTURE_REPOSITORY}:${tag}`, digest, mediaType,
      });
      const dest = (tag: string) => `${host}/${FIXTURE_REPOSITORY}:${tag}`;
      const preserve = ['--preserve-digests'];
      const ociDigest = await skopeoPush(dir, 'oci', dest('oci'), preserve);
      const v2s2Digest = await skopeoPush(dir, 'oci', dest('v2s2'), ['--format', 'v2s2']);
      const multiDigest = await skopeoPush(dir, 'multi', dest('multi'), ['--all', ...preserve]);
      const zstdDigest = await skopeoPush(dir, 'zstd', dest('zstd'), preserve);
      const layersDigest = await skopeoPush(dir, 'layers', dest('layers'), preserve);
      return {
        host,
        repository: FIXTURE_REPOSITORY,
        oci: image('oci', ociDigest, OCI_MANIFEST),
        v2s2: image('v2s2', v2s2Digest, DOCKER_MANIFEST),
        multi: { ...image('multi', multiDigest, OCI_INDEX), platforms: { ...platforms } },
        zstd: image('zstd', zstdDigest, OCI_MANIFEST),
        layers: image('layers', layersDigest, OCI_MANIFEST),
      };
    })();
    pushed.set(host, pending);
    pending.catch(() => pushed.delete(host));
  }
  return pending;
}

/** Removes the build directory now rather than at exit (optional). */
export function removeFixtureBuild(): void {
  cleanupWorkDir();
  workDir = undefined;
  built = undefined;
  pushed.clear();
}
