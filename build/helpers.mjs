// Cross-builds the native helper for every target in build/targets.json into
// dist/helpers/berth-helper-<target>: static, musl, -Os, stripped (soft-float on MIPS).
// Usage: node build/helpers.mjs [TARGET...]   (default: all five)
// musl sysroots come from Debian packages and are cached (build/musl.mjs), so only the
// first build touches the network.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTargets, onPath, ROOT, run } from './cache.mjs';
import { buildHelper } from './helper.mjs';
import { muslSysroot } from './musl.mjs';

export const HELPERS_DIR = join(ROOT, 'dist/helpers');

export function helperPath(targetName) {
  return join(HELPERS_DIR, `berth-helper-${targetName}`);
}

export function buildCrossHelper(target) {
  if (!onPath(target.helperCC)) {
    throw new Error(`${target.name}: ${target.helperCC} is not installed (Debian: ${target.name === 'x86_64' ? 'musl-tools' : `gcc-${target.helperCC.replace(/-gcc$/, '')}`})`);
  }
  const { specs, version } = muslSysroot(target);
  const flags = [...target.cflags, ...(specs ? ['-specs', specs] : [])];
  const out = helperPath(target.name);
  // Skip the compile when sources, compiler, flags and musl are unchanged since the last build.
  const stamp = `${out}.stamp`;
  const fingerprint = helperFingerprint(target.helperCC, flags, version);
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === fingerprint) {
    return { out, cc: target.helperCC, bytes: statSync(out).size, musl: version, cached: true };
  }
  const result = buildHelper(out, { cc: target.helperCC, flags });
  if (target.softFloat) assertNoFpuInstructions(out, target);
  writeFileSync(stamp, fingerprint);
  return { ...result, musl: version, cached: false };
}

/**
 * MIPS routers mostly lack an FPU, and gcc's soft-float ABI passes doubles in integer
 * registers: one hard-float object (e.g. from a hard-float libgcc) makes the helper die
 * with SIGILL or compute garbage. Any coprocessor-1 register in the code means one got in.
 */
function assertNoFpuInstructions(file, target) {
  const objdump = target.helperCC.replace(/gcc$/, 'objdump');
  const fpu = run(objdump, ['-d', file]).split('\n').filter((line) => /\$f\d+/.test(line));
  if (fpu.length) {
    rmSync(file, { force: true });
    throw new Error(`${target.name}: the soft-float helper contains ${fpu.length} FPU instructions, e.g.\n${fpu.slice(0, 3).join('\n')}`);
  }
}

function helperFingerprint(cc, flags, muslVersion) {
  const hash = createHash('sha256').update(JSON.stringify([cc, flags, muslVersion, process.env.HELPER_CFLAGS || '']));
  const dir = join(ROOT, 'native/helper');
  for (const f of readdirSync(dir).sort()) if (/\.[ch]$/.test(f)) hash.update(f).update(readFileSync(join(dir, f)));
  hash.update(readFileSync(join(ROOT, 'build/helper.mjs')));
  return hash.digest('hex');
}

export function buildAllHelpers(names = []) {
  const targets = loadTargets().filter((t) => !names.length || names.includes(t.name));
  if (names.length && targets.length !== names.length) throw new Error(`unknown target in ${names.join(' ')}`);
  return targets.map((t) => ({ target: t.name, ...buildCrossHelper(t) }));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const r of buildAllHelpers(process.argv.slice(2))) {
    console.log(`helper ${r.target}: ${r.out} (${r.cc}, musl ${r.musl}, ${r.bytes} bytes${r.cached ? ', up to date' : ''})`);
  }
}
