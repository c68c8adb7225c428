// OpenWrt packages without the SDK: dist/ipk/berth_<version>_<openwrt arch>.ipk per target.
// Usage: node build/ipk.mjs [TARGET...]
//
// An .ipk as OpenWrt's ipkg-build writes it and opkg reads it: a gzip'd tar holding
// ./debian-binary ("2.0\n"), ./data.tar.gz and ./control.tar.gz. (Older opkg wanted an ar
// archive of the same three members; current opkg reads both.)
// Layout on the device:
//   /usr/lib/berth/berth          single binary (x86_64, aarch64, armv7) or berth.cjs (MIPS)
//   /usr/lib/berth/berth-helper   the static helper, found beside the executable
//   /usr/lib/berth/koffi/<triplet>/koffi.node   koffi's native module (single binaries)
//   /usr/bin/berth                link to the binary (MIPS: a script running node)
//   /etc/init.d/berth, /etc/config/berth, /etc/uci-defaults/90-berth
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { loadTargets, ROOT } from './cache.mjs';
import { helperPath } from './helpers.mjs';

const FILES = join(ROOT, 'openwrt/package/berth/files');
const OUT_DIR = join(ROOT, 'dist/ipk');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
// Fixed mtime: the same inputs give the same package bytes.
const MTIME = new Date('2024-01-01T00:00:00Z');
export const DEPENDS = ['kmod-veth', 'kmod-fs-overlay', 'kmod-nft-nat', 'kmod-br-netfilter', 'ca-bundle'];

/** Entries: { path, mode, data? (Buffer), link?, dir? } -> tar.gz with root:root owners. */
async function tarGz(entries) {
  const pack = tarStream.pack();
  const chunks = [];
  pack.on('data', (c) => chunks.push(c));
  const done = new Promise((res, rej) => { pack.on('end', res); pack.on('error', rej); });
  for (const e of entries) {
    const header = { name: e.path, mode: e.mode, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: MTIME };
    if (e.dir) pack.entry({ ...header, type: 'directory' });
    else if (e.link) pack.entry({ ...header, type: 'symlink', linkname: e.link });
    else pack.entry({ ...header, size: e.data.length }, e.data);
  }
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks), { level: 9 });
}

/** Adds parent directories ahead of the files, as ipkg-build's tar does. */
function withDirs(files) {
  const dirs = new Set();
  for (const f of files) {
    const parts = f.path.replace(/^\.\//, '').split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(`./${parts.slice(0, i).join('/')}/`);
  }
  return [{ path: './', mode: 0o755, dir: true }, ...[...dirs].sort().map((d) => ({ path: d, mode: 0o755, dir: true })), ...files];
}

function file(path, source, mode = 0o644) {
  if (!existsSync(source)) throw new Error(`${source} is missing: run npm run build:all (or the build step that makes it)`);
  return { path: `./${path}`, mode, data: readFileSync(source) };
}

export function dataFiles(target) {
  const files = [
    file('etc/init.d/berth', join(FILES, 'berth.init'), 0o755),
    file('etc/config/berth', join(FILES, 'berth.config'), 0o600),
    file('etc/uci-defaults/90-berth', join(FILES, 'uci-defaults'), 0o755),
    file('usr/lib/berth/berth-helper', helperPath(target.name), 0o755),
  ];
  if (target.binary) {
    files.push(file('usr/lib/berth/berth', join(ROOT, 'dist', target.binary), 0o755));
    files.push(file(`usr/lib/berth/koffi/${target.koffi.dir}/koffi.node`, join(ROOT, 'dist/koffi', target.koffi.dir, 'koffi.node'), 0o644));
    files.push({ path: './usr/bin/berth', mode: 0o777, link: '../lib/berth/berth' });
  } else {
    files.push(file('usr/lib/berth/berth.cjs', join(ROOT, 'dist/berth.cjs'), 0o644));
    files.push(file('usr/bin/berth', join(FILES, 'berth.sh'), 0o755));
  }
  return files;
}

export function controlText(target, installedSize) {
  const description = target.binary
    ? 'A small Docker-compatible container engine: Docker Engine API on a unix socket, images, containers, bridge networking, MQTT fleet agent.'
    : 'A small Docker-compatible container engine (bundle and helper only: no Node.js exists for MIPS, so the engine does not run here yet).';
  return [
    `Package: berth`,
    `Version: ${pkg.version}`,
    `Depends: ${DEPENDS.join(', ')}`,
    `Source: openwrt/package/berth`,
    `SourceName: berth`,
    `License: ${pkg.license}`,
    `Section: utils`,
    `Maintainer: berth maintainers`,
    `Architecture: ${target.openwrtArch}`,
    `Installed-Size: ${installedSize}`,
    `Description: ${description}`,
    '',
  ].join('\n');
}

export async function buildIpk(target) {
  const files = dataFiles(target);
  const installedSize = files.reduce((n, f) => n + (f.data?.length ?? 0), 0);
  const data = await tarGz(withDirs(files));
  const control = await tarGz([
    { path: './', mode: 0o755, dir: true },
    { path: './control', mode: 0o644, data: Buffer.from(controlText(target, installedSize)) },
    file('conffiles', join(FILES, 'conffiles')),
    file('postinst', join(FILES, 'postinst'), 0o755),
    file('prerm', join(FILES, 'prerm'), 0o755),
  ]);
  const ipk = await tarGz([
    { path: './debian-binary', mode: 0o644, data: Buffer.from('2.0\n') },
    { path: './data.tar.gz', mode: 0o644, data },
    { path: './control.tar.gz', mode: 0o644, data: control },
  ]);
  mkdirSync(OUT_DIR, { recursive: true });
  const out = join(OUT_DIR, `berth_${pkg.version}_${target.openwrtArch}.ipk`);
  writeFileSync(`${out}.tmp`, ipk);
  renameSync(`${out}.tmp`, out);
  return { out, bytes: ipk.length, installedSize };
}

export async function buildAllIpks(names = []) {
  const results = [];
  for (const t of loadTargets().filter((t) => !names.length || names.includes(t.name))) results.push({ target: t.name, ...(await buildIpk(t)) });
  return results;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const r of await buildAllIpks(process.argv.slice(2))) {
    console.log(`ipk ${r.target}: ${r.out} (${(r.bytes / 1e6).toFixed(1)} MB, installed ${(r.installedSize / 1e6).toFixed(1)} MB)`);
  }
}
