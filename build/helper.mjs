// Compiles the native helper (native/helper/*.c) into dist/berth-helper: a static binary,
// linked against musl when musl-gcc is installed (Debian: musl-tools), else glibc.
// Usage: node build/helper.mjs [OUT]   (CC and HELPER_CFLAGS override the compiler and
// add flags, e.g. for cross builds.)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCES = join(ROOT, 'native/helper');

function onPath(name) {
  return (process.env.PATH || '').split(delimiter).some((dir) => dir && existsSync(join(dir, name)));
}

/** options.cc and options.flags serve the cross builds (build/helpers.mjs). */
export function buildHelper(out = join(ROOT, 'dist/berth-helper'), options = {}) {
  const cc = options.cc || process.env.CC || (onPath('musl-gcc') ? 'musl-gcc' : 'gcc');
  const sources = readdirSync(SOURCES).filter((f) => f.endsWith('.c')).sort().map((f) => join(SOURCES, f));
  const flags = [
    '-static', '-Os', '-s', '-std=c11', '-Wall', '-Wextra', '-Werror',
    // Drop unused code and data: the binary ships to routers with a few MB of flash.
    '-ffunction-sections', '-fdata-sections', '-Wl,--gc-sections',
    ...(options.flags || []),
    ...(process.env.HELPER_CFLAGS || '').split(/\s+/).filter(Boolean),
  ];
  mkdirSync(dirname(out), { recursive: true });
  // Build beside the target and rename, so a failed build never leaves half a binary.
  const tmp = `${out}.tmp-${process.pid}`;
  execFileSync(cc, [...flags, '-o', tmp, ...sources], { stdio: 'inherit' });
  renameSync(tmp, out);
  return { out, cc, bytes: statSync(out).size };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { out, cc, bytes } = buildHelper(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(`helper: ${out} (${cc}, ${bytes} bytes)`);
}
