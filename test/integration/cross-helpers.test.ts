// The cross-built helpers (npm run build:helpers): each target's binary is static, stripped,
// of the right machine, and answers `berth-helper version` under qemu-user on the CPU
// OpenWrt builds for (24Kc has no FPU, so a hard-float MIPS build would die with SIGILL).
// Starting containers with them under qemu-user is cross-helper-run.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');

interface Target {
  name: string;
  helperCC: string;
  softFloat?: boolean;
  qemu: { binary: string; cpu: string } | null;
}
const targets: Target[] = JSON.parse(readFileSync(join(ROOT, 'build/targets.json'), 'utf8')).targets;

const onPath = (name: string) => (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, name)));
const missing = [...new Set(targets.flatMap((t) => [t.helperCC, ...(t.qemu ? [t.qemu.binary] : [])]).filter((tool) => !onPath(tool)))];

// ELF e_machine values.
const MACHINE: Record<string, number> = { x86_64: 62, aarch64: 183, armv7: 40, mipsel: 8, mips: 8 };

if (missing.length) {
  test('cross-built helpers (skipped: cross toolchain not installed)', () => {
    console.log(`skipped: ${missing.join(', ')} not on PATH (Debian: musl-tools gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf gcc-mips-linux-gnu gcc-mipsel-linux-gnu qemu-user-static)`);
  });
} else {
  test.before(() => {
    // Cached: only the first build on a machine fetches Debian's musl and compiles it.
    execFileSync(process.execPath, [join(ROOT, 'build/helpers.mjs')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  });

  for (const target of targets) {
    test(`helper ${target.name}: static, stripped, runs under ${target.qemu ? `${target.qemu.binary} -cpu ${target.qemu.cpu}` : 'the host kernel'}`, () => {
      const file = join(ROOT, 'dist/helpers', `berth-helper-${target.name}`);
      const elf = readFileSync(file);
      assert.is(elf.subarray(0, 4).toString('latin1'), '\x7fELF');
      const bigEndian = elf[5] === 2;
      const machine = bigEndian ? elf.readUInt16BE(18) : elf.readUInt16LE(18);
      assert.is(machine, MACHINE[target.name], 'e_machine');
      assert.is(bigEndian, target.name === 'mips', 'endianness');

      const info = execFileSync('file', ['-b', file], { encoding: 'utf8' });
      assert.match(info, /statically linked/);
      assert.match(info, /stripped/);
      assert.not.match(info, /not stripped/);
      assert.ok(elf.length < 512 * 1024, `${elf.length} bytes: a musl build stays small`);

      const argv = target.qemu ? [target.qemu.binary, '-cpu', target.qemu.cpu, file, 'version'] : [file, 'version'];
      const out = execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
      assert.match(out, /^berth-helper protocol \d+/);
    });
  }

  test('MIPS helpers are soft-float (the .MIPS.abiflags fp_abi says soft, and no instruction uses the FPU)', () => {
    for (const target of targets.filter((t) => t.softFloat)) {
      const prefix = target.helperCC.replace(/gcc$/, '');
      const out = execFileSync(`${prefix}readelf`, ['-A', join(ROOT, 'dist/helpers', `berth-helper-${target.name}`)], { encoding: 'utf8' });
      assert.match(out, /FP ABI:\s+Soft float/, `${target.name}: ${out}`);
      // The tag alone is not enough: a hard-float libgcc routine (Debian's __adddf3 is one
      // add.d) would still be linked in. No instruction may touch an FPU register.
      const code = execFileSync(`${prefix}objdump`, ['-d', join(ROOT, 'dist/helpers', `berth-helper-${target.name}`)], { encoding: 'utf8', maxBuffer: 64 << 20 });
      const fpu = code.split('\n').filter((line) => /\$f\d+/.test(line));
      assert.equal(fpu.slice(0, 3), [], `${target.name}: ${fpu.length} FPU instructions`);
    }
  });
}

test.run();
