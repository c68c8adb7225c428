// Bundles src/ into one minified CommonJS file for Node 20. koffi stays external:
// its prebuilt .node files cannot be inlined and ship beside the bundle.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

await build({
  entryPoints: ['src/bin/berth.ts'],
  outfile: 'dist/berth.cjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  external: ['koffi'],
  define: { BERTH_VERSION: JSON.stringify(pkg.version) },
  logLevel: 'warning',
});
