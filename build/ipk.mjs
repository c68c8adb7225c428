// OpenWrt packages without the SDK: dist/ipk/berth_<version>_<openwrt arch>.ipk per target,
// and dist/ipk/luci-app-berth_<version>_all.ipk (the LuCI app, architecture-independent).
// Usage: node build/ipk.mjs [TARGET... | luci-app-berth]
//
// An .ipk as OpenWrt's ipkg-build writes it and opkg reads it: a gzip'd tar holding
// ./debian-binary ("2.0\n"), ./data.tar.gz and ./control.tar.gz. (Older opkg wanted an ar
// archive of the same three members; current opkg reads both.)
// Layout on the device:
//   /usr/lib/berth/berth          single binary (x86_64, aarch64, armv7) or berth.cjs (MIPS)
//   /usr/lib/berth/berth-helper   the static helper, found beside the executable
//   /usr/lib/berth/koffi/<triplet>/koffi.node   koffi's native module (single binaries)
//   /usr/lib/berth/glibc/         glibc's loader and the libraries the single binary and
//                                 koffi.node need (OpenWrt has musl only): the packaged
//                                 binary's interpreter and RPATH point there (patchelf)
//   /usr/share/berth/default-image.tar   the embedded busybox image (`berth load -i`)
//   /usr/bin/berth                link to the binary (MIPS: a script running node)
//   /etc/init.d/berth, /etc/config/berth, /etc/uci-defaults/90-berth
// Depends, conffiles and the maintainer scripts are read from openwrt/package/berth/Makefile,
// so the SDK's package and this one agree. Each target's engine files (everything but
// /etc) are also written to dist/stage/<target>/, which that Makefile installs: the SDK
// build gets the same patched binary and glibc.
// luci-app-berth: openwrt/luci-app-berth/htdocs/ -> /www/, root/ -> /, as luci.mk installs
// them; title, depends and the maintainer scripts are read from its SDK Makefile.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
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
export const STAGE_DIR = join(ROOT, 'dist/stage');

/** `NAME:=value` and `define NAME ... endef` of an SDK Makefile, make's `$$` unescaped. */
export function readMakefile(path) {
  const text = readFileSync(path, 'utf8').replace(/\\\n[ \t]*/g, ' ');
  return {
    variable: (name) => text.match(new RegExp(`^[ \\t]*${name}\\s*:?=[ \\t]*(.*)$`, 'm'))?.[1].trim(),
    define: (name) => text.match(new RegExp(`^define ${name}\\n([\\s\\S]*?)^endef$`, 'm'))?.[1].replace(/\$\$/g, '$'),
  };
}

/** What openwrt/package/berth/Makefile says the package needs and runs. */
export function berthMakefile() {
  const path = join(ROOT, 'openwrt/package/berth/Makefile');
  const mk = readMakefile(path);
  // `+pkg` entries of DEPENDS; `@(...)` is a build-time condition, not a package.
  const depends = (mk.define('Package/berth')?.match(/^\s*DEPENDS:=(.*)$/m)?.[1] ?? '').split(/\s+/).filter((d) => d.startsWith('+')).map((d) => d.slice(1));
  const postinst = mk.define('Package/berth/postinst');
  const prerm = mk.define('Package/berth/prerm');
  const conffiles = mk.define('Package/berth/conffiles');
  if (!depends.length || !postinst || !prerm || !conffiles) throw new Error(`${path}: DEPENDS, the postinst, the prerm or the conffiles is missing`);
  return { depends, postinst, prerm, conffiles };
}

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

// glibc for the single binaries (Node's are glibc-linked; OpenWrt is musl): where Debian keeps
// each target's glibc (the host's, or the cross libc6-*-cross packages the C toolchains pull
// in) and the loader's name.
export const GLIBC_DIR = '/usr/lib/berth/glibc';
const GLIBC = {
  x86_64: { dirs: ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64'], loader: 'ld-linux-x86-64.so.2' },
  aarch64: { dirs: ['/usr/aarch64-linux-gnu/lib'], loader: 'ld-linux-aarch64.so.1' },
  armv7: { dirs: ['/usr/arm-linux-gnueabihf/lib'], loader: 'ld-linux-armhf.so.3' },
};

const needed = (elf) => [...execFileSync('readelf', ['-d', elf], { encoding: 'utf8' }).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);

/** The loader and every library the binary and koffi.node need, transitively: [{ name, source }]. */
export function glibcLibraries(target, elves) {
  const g = GLIBC[target.name];
  if (!g) throw new Error(`no glibc source known for ${target.name}`);
  const find = (name) => g.dirs.map((d) => join(d, name)).find((f) => existsSync(f));
  const found = new Map();
  const queue = [g.loader, ...elves.flatMap(needed)];
  while (queue.length) {
    const name = queue.shift();
    if (found.has(name)) continue;
    const source = find(name);
    if (!source) throw new Error(`${name} (needed by the ${target.name} single binary) not found in ${g.dirs.join(', ')}: install Debian's libc6/libstdc++6 for that architecture (the cross toolchain packages bring them)`);
    found.set(name, source);
    queue.push(...needed(source));
  }
  return [...found].map(([name, source]) => ({ name, source }));
}

/** The single binary with its interpreter and RPATH (DT_RPATH: koffi's dlopen of libc.so.6 too) in GLIBC_DIR. */
function patchedBinary(target) {
  const source = join(ROOT, 'dist', target.binary);
  if (!existsSync(source)) throw new Error(`${source} is missing: run npm run build:binaries`);
  const tmp = mkdtempSync(join(tmpdir(), 'berth-ipk-'));
  try {
    const out = join(tmp, basename(source));
    copyFileSync(source, out);
    try {
      execFileSync('patchelf', ['--set-interpreter', `${GLIBC_DIR}/${GLIBC[target.name].loader}`, '--force-rpath', '--set-rpath', GLIBC_DIR, out], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      throw new Error(`patchelf failed on ${source} (install Debian's patchelf): ${err.stderr ?? err.message}`);
    }
    return readFileSync(out);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export function dataFiles(target) {
  const files = [
    file('etc/init.d/berth', join(FILES, 'berth.init'), 0o755),
    file('etc/config/berth', join(FILES, 'berth.config'), 0o600),
    file('etc/uci-defaults/90-berth', join(FILES, 'uci-defaults'), 0o755),
    file('usr/lib/berth/berth-helper', helperPath(target.name), 0o755),
  ];
  if (existsSync(join(ROOT, 'dist/default-image.tar'))) files.push(file('usr/share/berth/default-image.tar', join(ROOT, 'dist/default-image.tar'), 0o644));
  if (target.binary) {
    const koffiNode = join(ROOT, 'dist/koffi', target.koffi.dir, 'koffi.node');
    files.push({ path: './usr/lib/berth/berth', mode: 0o755, data: patchedBinary(target) });
    files.push(file(`usr/lib/berth/koffi/${target.koffi.dir}/koffi.node`, koffiNode, 0o644));
    for (const lib of glibcLibraries(target, [join(ROOT, 'dist', target.binary), koffiNode])) {
      files.push(file(`${GLIBC_DIR.slice(1)}/${lib.name}`, lib.source, 0o755));
    }
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
    `Depends: ${berthMakefile().depends.join(', ')}`,
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

/**
 * Writes dist/ipk/<fileName> as ipkg-build does: data.tar.gz (files, with their parent
 * directories), control.tar.gz (the control file first, then the other members).
 */
async function writeIpk(fileName, files, control, controlMembers) {
  const installedSize = files.reduce((n, f) => n + (f.data?.length ?? 0), 0);
  const data = await tarGz(withDirs(files));
  const controlTar = await tarGz([
    { path: './', mode: 0o755, dir: true },
    { path: './control', mode: 0o644, data: Buffer.from(control(installedSize)) },
    ...controlMembers,
  ]);
  const ipk = await tarGz([
    { path: './debian-binary', mode: 0o644, data: Buffer.from('2.0\n') },
    { path: './data.tar.gz', mode: 0o644, data },
    { path: './control.tar.gz', mode: 0o644, data: controlTar },
  ]);
  mkdirSync(OUT_DIR, { recursive: true });
  const out = join(OUT_DIR, fileName);
  writeFileSync(`${out}.tmp`, ipk);
  renameSync(`${out}.tmp`, out);
  return { out, bytes: ipk.length, installedSize };
}

export async function buildIpk(target) {
  const mk = berthMakefile();
  const files = dataFiles(target);
  writeStage(target, files.filter((f) => !f.path.startsWith('./etc/')));
  return writeIpk(`berth_${pkg.version}_${target.openwrtArch}.ipk`, files, (size) => controlText(target, size), [
    { path: './conffiles', mode: 0o644, data: Buffer.from(mk.conffiles) },
    { path: './postinst', mode: 0o755, data: Buffer.from(mk.postinst) },
    { path: './prerm', mode: 0o755, data: Buffer.from(mk.prerm) },
  ]);
}

/** dist/stage/<target>/: the engine's files as they land on the device, for the SDK Makefile. */
function writeStage(target, files) {
  const dir = join(STAGE_DIR, target.name);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const f of files) {
    const out = join(tmp, f.path);
    mkdirSync(dirname(out), { recursive: true });
    if (f.link) symlinkSync(f.link, out);
    else { writeFileSync(out, f.data); chmodSync(out, f.mode); }
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

// --- luci-app-berth ---

const LUCI_APP = join(ROOT, 'openwrt/luci-app-berth');
export const LUCI_NAME = 'luci-app-berth';

/** The LuCI app's title, depends and maintainer scripts, from its SDK Makefile. */
export function luciMakefile() {
  const { variable, define } = readMakefile(join(LUCI_APP, 'Makefile'));
  const title = variable('LUCI_TITLE');
  const depends = variable('LUCI_DEPENDS')?.split(/\s+/).filter((d) => d.startsWith('+')).map((d) => d.slice(1));
  const postinst = define(`Package/${LUCI_NAME}/postinst`);
  const postrm = define(`Package/${LUCI_NAME}/postrm`);
  if (!title || !depends?.length || !postinst || !postrm) throw new Error(`${join(LUCI_APP, 'Makefile')}: LUCI_TITLE, LUCI_DEPENDS, the postinst or the postrm is missing`);
  return { title, description: variable('LUCI_DESCRIPTION') ?? title, depends, postinst, postrm };
}

/** Files below top, sorted, as [path relative to top, absolute path]. */
function walk(top, dir = top) {
  return readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name)).flatMap((e) => {
    const full = join(dir, e.name);
    return e.isDirectory() ? walk(top, full) : [[relative(top, full), full]];
  });
}

export function luciDataFiles() {
  const files = [];
  for (const [from, to] of [['htdocs', 'www/'], ['root', '']]) {
    for (const [rel, full] of walk(join(LUCI_APP, from))) {
      const path = `${to}${rel}`;
      // rpcd runs every file in /usr/libexec/rpcd as a plugin: it must be executable even
      // from a checkout that lost the bit; otherwise the source's own mode, as cp -p keeps it.
      const executable = path.startsWith('usr/libexec/rpcd/') || (statSync(full).mode & 0o111) !== 0;
      files.push(file(path, full, executable ? 0o755 : 0o644));
    }
  }
  return files;
}

export function luciControlText(installedSize) {
  const mk = luciMakefile();
  return [
    `Package: ${LUCI_NAME}`,
    `Version: ${pkg.version}`,
    `Depends: ${mk.depends.join(', ')}`,
    `Source: openwrt/${LUCI_NAME}`,
    `SourceName: ${LUCI_NAME}`,
    `License: ${pkg.license}`,
    `Section: luci`,
    `Maintainer: berth maintainers`,
    `Architecture: all`,
    `Installed-Size: ${installedSize}`,
    `Description: ${mk.description}`,
    '',
  ].join('\n');
}

export async function buildLuciIpk() {
  const mk = luciMakefile();
  return writeIpk(`${LUCI_NAME}_${pkg.version}_all.ipk`, luciDataFiles(), luciControlText, [
    { path: './postinst', mode: 0o755, data: Buffer.from(mk.postinst) },
    { path: './postrm', mode: 0o755, data: Buffer.from(mk.postrm) },
  ]);
}

export async function buildAllIpks(names = []) {
  const results = [];
  // First: it needs nothing from the build, so `node build/ipk.mjs luci-app-berth` works on a fresh checkout.
  if (!names.length || names.includes(LUCI_NAME)) results.push({ target: LUCI_NAME, ...(await buildLuciIpk()) });
  for (const t of loadTargets().filter((t) => !names.length || names.includes(t.name))) results.push({ target: t.name, ...(await buildIpk(t)) });
  return results;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const size = (n) => (n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`);
  for (const r of await buildAllIpks(process.argv.slice(2))) {
    console.log(`ipk ${r.target}: ${r.out} (${size(r.bytes)}, installed ${size(r.installedSize)})`);
  }
}
