// Single binaries dist/berth-linux-{x64,arm64,armv7}: Node's single executable
// applications (SEA) built from npm's node-linux-* base binaries.
// Usage: node build/binaries.mjs [TARGET...]   (default: every target with a Node binary)
//
// Per target:
//  - the base binary comes from `npm pack <node package>@<version>` (cached), is stripped
//    with the target's binutils BEFORE injection (stripping after injection corrupts it);
//  - the SEA blob is made by that same binary (a blob only loads in the exact Node version
//    that made it), under qemu-user for foreign architectures;
//  - postject (its self-contained API file, fetched with `npm pack`) injects the blob;
//  - beside the binary: the helper (dist/berth-helper-<target>) and koffi's native module
//    (dist/koffi/<triplet>/koffi.node), which a SEA cannot carry in its blob: the bundle
//    points koffi at it through process.resourcesPath (src/host/libc.ts).
import { build } from 'esbuild';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir, cachedDir, loadTargets, npmPackage, onPath, ROOT, run } from './cache.mjs';
import { helperPath } from './helpers.mjs';

const POSTJECT_VERSION = '1.0.0-alpha.6';
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const DIST = join(ROOT, 'dist');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

export function nodeVersionOf(target) {
  return target.nodeVersion === 'host' ? process.versions.node : target.nodeVersion;
}

/** argv prefix that runs a binary of this target on the build host. */
export function emulator(target) {
  if (!target.qemu) return [];
  if (!onPath(target.qemu.binary)) throw new Error(`${target.name}: ${target.qemu.binary} is not installed (Debian: qemu-user-static)`);
  return [target.qemu.binary, '-cpu', target.qemu.cpu, ...(target.qemu.ldPrefix ? ['-L', target.qemu.ldPrefix] : [])];
}

/** The stripped base binary for a target, cached per package and version. */
function strippedNode(target) {
  const version = nodeVersionOf(target);
  const dir = cachedDir(join(cacheDir('node'), `${target.node}-${version}`), (tmp) => {
    const node = join(npmPackage(target.node, version), 'bin/node');
    copyFileSync(node, join(tmp, 'node'));
    run(`${target.binutilsPrefix}strip`, ['--strip-all', join(tmp, 'node')]);
    chmodSync(join(tmp, 'node'), 0o755);
  });
  return join(dir, 'node');
}

/**
 * The SEA entry bundle: like dist/berth.cjs but with koffi's JavaScript inlined, since a
 * SEA's require() only reaches Node's built-in modules.
 */
async function seaBundle() {
  const out = join(cacheDir('sea'), 'berth-sea.cjs');
  await build({
    entryPoints: [join(ROOT, 'src/bin/berth.ts')],
    outfile: out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    legalComments: 'none',
    define: { BERTH_VERSION: JSON.stringify(pkg.version) },
    logLevel: 'warning',
    plugins: [{
      // Optional modules that libraries try inside try/catch (koffi's per-platform package,
      // ws's bufferutil and utf-8-validate, debug's supports-color): a SEA's require() can
      // only refuse them, with a warning on every start. A stand-in that throws takes the
      // libraries' fallback at once; koffi's then finds dist/koffi/ (src/host/libc.ts).
      name: 'optional-modules-absent',
      setup(b) {
        b.onResolve({ filter: /^(@koromix\/koffi-.*|bufferutil|utf-8-validate|supports-color)$/ }, (args) => ({ path: args.path, namespace: 'absent' }));
        b.onLoad({ filter: /.*/, namespace: 'absent' }, (args) => ({ contents: `throw new Error(${JSON.stringify(`${args.path} is not part of the single binary`)});`, loader: 'js' }));
      },
    }],
  });
  return out;
}

function postjectInject(file, blob) {
  const require = createRequire(import.meta.url);
  const { inject } = require(join(npmPackage('postject', POSTJECT_VERSION), 'dist/api.js'));
  return inject(file, 'NODE_SEA_BLOB', blob, { sentinelFuse: SEA_FUSE });
}

/** Copies koffi's native module for this target to dist/koffi/<triplet>/koffi.node. */
function placeKoffi(target) {
  const version = JSON.parse(readFileSync(join(ROOT, 'node_modules/koffi/package.json'), 'utf8')).version;
  const installed = join(ROOT, 'node_modules', target.koffi.package, target.koffi.dir, 'koffi.node');
  const source = existsSync(installed) ? installed : join(npmPackage(target.koffi.package, version), target.koffi.dir, 'koffi.node');
  const dest = join(DIST, 'koffi', target.koffi.dir, 'koffi.node');
  mkdirSync(join(DIST, 'koffi', target.koffi.dir), { recursive: true });
  copyFileSync(source, dest);
  return dest;
}

export async function buildBinary(target, bundle) {
  const base = strippedNode(target);
  const work = cacheDir('sea', target.name);
  const blob = join(work, 'berth.blob');
  writeFileSync(join(work, 'sea.json'), JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: false }));
  rmSync(blob, { force: true });
  const [emu, ...emuArgs] = [...emulator(target), base];
  run(emu, [...emuArgs, '--experimental-sea-config', join(work, 'sea.json')], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });

  const out = join(DIST, target.binary);
  const tmp = `${out}.tmp-${process.pid}`;
  copyFileSync(base, tmp);
  chmodSync(tmp, 0o755);
  await postjectInject(tmp, readFileSync(blob));
  renameSync(tmp, out);

  const helper = join(DIST, `berth-helper-${target.name}`);
  if (!existsSync(helperPath(target.name))) throw new Error(`${target.name}: build the helpers first (npm run build:helpers)`);
  copyFileSync(helperPath(target.name), helper);
  chmodSync(helper, 0o755);
  const koffi = placeKoffi(target);
  return { out, bytes: statSync(out).size, node: nodeVersionOf(target), helper, koffi };
}

export async function buildAllBinaries(names = []) {
  const targets = loadTargets().filter((t) => t.node && (!names.length || names.includes(t.name)));
  const bundle = await seaBundle();
  const results = [];
  for (const t of targets) results.push({ target: t.name, ...(await buildBinary(t, bundle)) });
  return results;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const r of await buildAllBinaries(process.argv.slice(2))) {
    console.log(`binary ${r.target}: ${r.out} (node ${r.node}, ${(r.bytes / 1e6).toFixed(1)} MB; helper ${r.helper}; koffi ${r.koffi})`);
  }
}
