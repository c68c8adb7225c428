// Builds the embedded default image from Debian's busybox-static: a tiny root
// filesystem (busybox plus its applet links, passwd/group, the usual dirs) written as
// a `docker save` archive (OCI layout plus manifest.json, as Docker 25+ writes it), so
// `berth load` can import it on a machine that has never seen a registry.
// Deterministic: fixed owners and mtimes, so the image ID is stable for one busybox.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import tarStream from 'tar-stream';

const BUSYBOX = process.env.BERTH_BUSYBOX || '/bin/busybox';
const OUT = process.argv[2] || 'dist/default-image.tar';
export const DEFAULT_IMAGE_NAME = 'localhost/busybox:latest';
const EPOCH = new Date('2024-01-01T00:00:00Z');

const GO_ARCH = { x64: 'amd64', arm64: 'arm64', arm: 'arm', mipsel: 'mipsle', mips: 'mips', ia32: '386' };

function packToBuffer(fill) {
  const pack = tarStream.pack();
  const chunks = [];
  pack.on('data', (c) => chunks.push(c));
  const done = new Promise((resolve, reject) => { pack.on('end', resolve); pack.on('error', reject); });
  fill(pack);
  pack.finalize();
  return done.then(() => Buffer.concat(chunks));
}

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

async function buildRootfsLayer() {
  const busybox = readFileSync(BUSYBOX);
  const applets = execFileSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' })
    .split('\n').map((s) => s.trim()).filter(Boolean).sort();
  const base = { uid: 0, gid: 0, mtime: EPOCH, uname: 'root', gname: 'root' };
  const dirs = ['bin', 'dev', 'etc', 'home', 'proc', 'root', 'sbin', 'sys', 'tmp', 'usr', 'usr/bin', 'usr/sbin', 'var', 'var/log', 'var/run'];
  return packToBuffer((pack) => {
    for (const d of dirs) pack.entry({ ...base, name: d + '/', type: 'directory', mode: d === 'tmp' ? 0o1777 : (d === 'root' ? 0o700 : 0o755) });
    pack.entry({ ...base, name: 'bin/busybox', mode: 0o755, size: busybox.length }, busybox);
    for (const applet of applets) {
      if (applet === 'bin/busybox') continue;
      // Relative links keep the image usable wherever its root is mounted.
      const depth = applet.split('/').length - 1;
      pack.entry({ ...base, name: applet, type: 'symlink', mode: 0o777, linkname: '../'.repeat(depth) + 'bin/busybox' });
    }
    const files = {
      'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n',
      'etc/group': 'root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n',
      'etc/hostname': 'berth\n',
    };
    for (const [name, text] of Object.entries(files)) pack.entry({ ...base, name, mode: 0o644 }, text);
  });
}

async function main() {
  if (!existsSync(BUSYBOX)) {
    console.warn(`default image: ${BUSYBOX} not found (install Debian's busybox-static); skipped`);
    return;
  }
  const layer = await buildRootfsLayer();
  const layerHex = sha256(layer);
  const busyboxVersion = (execFileSync(BUSYBOX, [], { encoding: 'utf8' }).match(/BusyBox v([\w.-]+)/) || [])[1] || 'unknown';
  const config = {
    architecture: GO_ARCH[process.arch] || process.arch,
    os: 'linux',
    created: EPOCH.toISOString(),
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['sh'],
      Labels: { 'org.opencontainers.image.title': 'busybox', 'org.opencontainers.image.version': busyboxVersion, 'io.berth.default-image': 'true' },
    },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerHex}`] },
    history: [{ created: EPOCH.toISOString(), created_by: `berth build/default-image.mjs: busybox ${busyboxVersion}` }],
  };
  const configBuf = Buffer.from(JSON.stringify(config));
  const configHex = sha256(configBuf);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configHex}`, size: configBuf.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerHex}`, size: layer.length }],
  };
  const manifestBuf = Buffer.from(JSON.stringify(manifest));
  const manifestHex = sha256(manifestBuf);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: manifest.mediaType, digest: `sha256:${manifestHex}`, size: manifestBuf.length,
      annotations: { 'io.containerd.image.name': 'localhost/busybox:latest', 'org.opencontainers.image.ref.name': 'latest' },
    }],
  };
  const dockerManifest = [{ Config: `blobs/sha256/${configHex}`, RepoTags: [DEFAULT_IMAGE_NAME], Layers: [`blobs/sha256/${layerHex}`] }];
  const archive = await packToBuffer((pack) => {
    const base = { uid: 0, gid: 0, mtime: EPOCH, mode: 0o644 };
    pack.entry({ ...base, name: 'blobs/', type: 'directory', mode: 0o755 });
    pack.entry({ ...base, name: 'blobs/sha256/', type: 'directory', mode: 0o755 });
    pack.entry({ ...base, name: `blobs/sha256/${configHex}` }, configBuf);
    pack.entry({ ...base, name: `blobs/sha256/${layerHex}` }, layer);
    pack.entry({ ...base, name: `blobs/sha256/${manifestHex}` }, manifestBuf);
    pack.entry({ ...base, name: 'index.json' }, JSON.stringify(index));
    pack.entry({ ...base, name: 'manifest.json' }, JSON.stringify(dockerManifest));
    pack.entry({ ...base, name: 'oci-layout' }, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  });
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT + '.tmp', archive);
  renameSync(OUT + '.tmp', OUT);
  console.log(`default image: ${DEFAULT_IMAGE_NAME} (busybox ${busyboxVersion}) -> ${OUT}, ${(archive.length / 1e6).toFixed(1)} MB, id sha256:${configHex.slice(0, 12)}`);
}

await main();
