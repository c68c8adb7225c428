// Single binaries dist/berth-linux-{x64,arm64,armv7}: Node's single executable
// applications (SEA) built from npm's node-linux-* base binaries.
// Usage: node build/binaries.mjs [--no-code-cache] [--out DIR] [TARGET...]
//   (default: every target with a Node binary, into dist/; --out and --no-code-cache exist
//   for bench/size, which compares against a binary without the code cache)
//
// Per target:
//  - the base binary comes from `npm pack <node package>@<version>` (cached), is stripped
//    with the target's binutils BEFORE injection (stripping after injection corrupts it);
//  - the SEA blob is made by that same binary (a blob only loads in the exact Node version
//    that made it), under qemu-user for foreign architectures, with a V8 code cache of the
//    bundle (useCodeCache): it spares V8 the parse of the whole ~1 MB script on every start,
//    about a quarter of `berth version`'s CPU time (bench/size). The blob is cached by its
//    inputs; a cache that V8 rejects at run time (Node prints "Code cache data rejected" on
//    every start) is caught here by running the binary once, which is then built without;
//  - postject (its self-contained API file, fetched with `npm pack`) injects the blob;
//  - beside the binary: the helper (dist/berth-helper-<target>) and koffi's native module
//    (dist/koffi/<triplet>/koffi.node), which a SEA cannot carry in its blob: the bundle
//    points koffi at it through process.resourcesPath (src/host/libc.ts).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir, cachedDir, loadTargets, npmPackage, onPath, ROOT, run } from './cache.mjs';
import { helperPath } from './helpers.mjs';

const POSTJECT_VERSION = '1.0.0-alpha.6';
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
// What Node (lib/internal/main/embedding.js, 20.x) warns when V8 refuses the blob's code cache.
const CACHE_REJECTED = 'Code cache data rejected';
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

/** Copies koffi's native module for this target to <dist>/koffi/<triplet>/koffi.node. */
function placeKoffi(target, dist) {
  const version = JSON.parse(readFileSync(join(ROOT, 'node_modules/koffi/package.json'), 'utf8')).version;
  const installed = join(ROOT, 'node_modules', target.koffi.package, target.koffi.dir, 'koffi.node');
  const source = existsSync(installed) ? installed : join(npmPackage(target.koffi.package, version), target.koffi.dir, 'koffi.node');
  const dest = join(dist, 'koffi', target.koffi.dir, 'koffi.node');
  mkdirSync(join(dist, 'koffi', target.koffi.dir), { recursive: true });
  copyFileSync(source, dest);
  return dest;
}

/**
 * The SEA blob of `bundle` for a target, made by the target's own (stripped) Node binary and
 * cached by everything it depends on: V8 writes a code cache with different bytes each
 * time, so the cache is also what keeps rebuilds byte-identical. Older blobs of the same
 * kind are removed.
 */
function seaBlob(target, base, bundle, codeCache) {
  const source = readFileSync(bundle);
  const kind = codeCache ? 'cache' : 'plain';
  const key = createHash('sha256').update(`${target.node}@${nodeVersionOf(target)}\0${kind}\0`).update(source).digest('hex').slice(0, 16);
  const targetDir = cacheDir('sea', target.name);
  const dir = cachedDir(join(targetDir, `${kind}-${key}`), (tmp) => {
    // Relative paths: the blob records the main script's path, and the build machine's
    // directories have no business in a shipped binary (nor in its bytes).
    writeFileSync(join(tmp, 'berth.cjs'), source);
    writeFileSync(join(tmp, 'sea.json'), JSON.stringify({ main: 'berth.cjs', output: 'berth.blob', disableExperimentalSEAWarning: true, useCodeCache: codeCache }));
    const [emu, ...emuArgs] = [...emulator(target), base];
    run(emu, [...emuArgs, '--experimental-sea-config', 'sea.json'], { cwd: tmp, stdio: ['ignore', 'ignore', 'inherit'] });
    rmSync(join(tmp, 'berth.cjs'));
  });
  for (const entry of readdirSync(targetDir)) {
    if (entry.includes('.tmp-') || entry === `${kind}-${key}`) continue; // another build's work in progress, or ours
    if (entry.startsWith(`${kind}-`) || !/^(cache|plain)-/.test(entry)) rmSync(join(targetDir, entry), { recursive: true, force: true });
  }
  return { kind, dir, blob: join(dir, 'berth.blob') };
}

/**
 * Runs the binary once (under qemu-user for foreign targets) and says whether V8 took its
 * code cache. V8 checks a cache against its version, its flags and the source, not the CPU
 * model, so the verdict holds on the device (the same under other qemu -cpu models).
 */
function codeCacheAccepted(target, binary) {
  const [cmd, ...args] = [...emulator(target), binary, '--help'];
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  if (r.status !== 0) throw new Error(`${target.name}: ${binary} --help failed (${r.error?.message || `exit ${r.status}`}):\n${r.stderr}`);
  return !r.stderr.includes(CACHE_REJECTED);
}

async function injectInto(base, blob, out) {
  const tmp = `${out}.tmp-${process.pid}`;
  copyFileSync(base, tmp);
  chmodSync(tmp, 0o755);
  await postjectInject(tmp, readFileSync(blob));
  renameSync(tmp, out);
}

export async function buildBinary(target, bundle, { codeCache = true, dist = DIST } = {}) {
  const base = strippedNode(target);
  mkdirSync(dist, { recursive: true });
  const out = join(dist, target.binary);
  let sea = seaBlob(target, base, bundle, codeCache);
  if (codeCache && existsSync(join(sea.dir, '.rejected'))) codeCache = false;
  else await injectInto(base, sea.blob, out);
  if (codeCache && !existsSync(join(sea.dir, '.accepted'))) {
    codeCache = codeCacheAccepted(target, out);
    writeFileSync(join(sea.dir, codeCache ? '.accepted' : '.rejected'), '');
  }
  if (!codeCache && sea.kind === 'cache') {
    console.warn(`${target.name}: V8 rejects the SEA code cache that node ${nodeVersionOf(target)} made; this binary has none`);
    sea = seaBlob(target, base, bundle, false);
    await injectInto(base, sea.blob, out);
  }

  const helper = join(dist, `berth-helper-${target.name}`);
  if (!existsSync(helperPath(target.name))) throw new Error(`${target.name}: build the helpers first (npm run build:helpers)`);
  copyFileSync(helperPath(target.name), helper);
  chmodSync(helper, 0o755);
  const koffi = placeKoffi(target, dist);
  return { out, bytes: statSync(out).size, node: nodeVersionOf(target), codeCache, helper, koffi };
}

export async function buildAllBinaries(names = [], opts = {}) {
  const targets = loadTargets().filter((t) => t.node && (!names.length || names.includes(t.name)));
  const bundle = await seaBundle();
  const results = [];
  for (const t of targets) results.push({ target: t.name, ...(await buildBinary(t, bundle, opts)) });
  return results;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opts = {};
  const names = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--no-code-cache') opts.codeCache = false;
    else if (args[i] === '--out') opts.dist = resolve(args[++i]);
    else names.push(args[i]);
  }
  for (const r of await buildAllBinaries(names, opts)) {
    console.log(`binary ${r.target}: ${r.out} (node ${r.node}, ${r.codeCache ? 'code cache' : 'no code cache'}, ${(r.bytes / 1e6).toFixed(1)} MB; helper ${r.helper}; koffi ${r.koffi})`);
  }
}
