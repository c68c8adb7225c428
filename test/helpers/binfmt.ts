// binfmt_misc entries that make the host kernel run another architecture's static
// binaries through qemu-user, also from inside a container after pivot_root: flag F
// opens the interpreter when the entry is registered, so it need not be visible in the
// rootfs. Used to exec a target-arch payload from a helper that itself runs under
// qemu-user (qemu-user passes execve through to the kernel).
//
// Entries this process registers are named berth-test-ARCH-PID and removed again on
// release (or at exit); a working entry someone else registered (enabled, flag F, same
// magic and mask) is used as it is and left alone. binfmt_misc is mounted when it is not,
// and unmounted again if this process mounted it and nothing else is registered.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';

/** ELF header magic and mask (hex) per qemu-user name, as Debian's qemu-user-static
 * /usr/share/binfmts/qemu-NAME (and qemu's scripts/qemu-binfmt-conf.sh). */
export const QEMU_ELF_MAGIC: Record<string, { magic: string; mask: string }> = {
  aarch64: {
    magic: '7f454c460201010000000000000000000200b700',
    mask: 'ffffffffffffff00fffffffffffffffffeffffff',
  },
  arm: {
    magic: '7f454c4601010100000000000000000002002800',
    mask: 'ffffffffffffff00fffffffffffffffffeffffff',
  },
  mips: {
    magic: '7f454c46010201000000000000000000000200080000000000000000000000000000000000000000',
    mask: 'ffffffffffffff00fefffffffffffffffffeffff0000000000000000000000000000000000000020',
  },
  mipsel: {
    magic: '7f454c46010101000000000000000000020008000000000000000000000000000000000000',
    mask: 'ffffffffffffff00fefffffffffffffffeffffff0000000000000000000000000000000020',
  },
};

export interface BinfmtEntry {
  name: string;
  interpreter: string;
  /** true when this process registered it (and will remove it). */
  owned: boolean;
}

let mountedHere = false;
const owned: string[] = [];
let exitHook = false;

/** Magic bytes that the mask ignores do not matter for a match. */
function masked(magic: string, mask: string): string {
  const m = Buffer.from(magic, 'hex');
  const k = Buffer.from(mask, 'hex');
  return Buffer.from(m.map((b, i) => b & (k[i] ?? 0xff))).toString('hex');
}

function escaped(hex: string): string {
  return hex.replace(/../g, (b) => `\\x${b}`);
}

function parseEntry(text: string): { enabled: boolean; interpreter: string; flags: string; offset: number; magic: string; mask: string } {
  const field = (key: string) => text.match(new RegExp(`^${key}:? (.*)$`, 'm'))?.[1]?.trim() ?? '';
  return {
    enabled: /^enabled$/m.test(text),
    interpreter: field('interpreter'),
    flags: field('flags'),
    offset: Number(field('offset') || 0),
    magic: field('magic'),
    mask: field('mask'),
  };
}

function entryNames(): string[] {
  return readdirSync(BINFMT_DIR).filter((n) => n !== 'register' && n !== 'status');
}

function ensureMounted(): void {
  if (existsSync(join(BINFMT_DIR, 'register'))) return;
  execFileSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', BINFMT_DIR], { stdio: ['ignore', 'ignore', 'pipe'] });
  mountedHere = true;
}

/**
 * An entry that runs `arch` (a key of QEMU_ELF_MAGIC) binaries with `interpreter`
 * (a static qemu-user binary), fix-binary, usable after pivot_root.
 */
export function ensureBinfmt(arch: string, interpreter: string): BinfmtEntry {
  const elf = QEMU_ELF_MAGIC[arch];
  if (!elf) throw new Error(`binfmt: no ELF magic known for ${arch}`);
  ensureMounted();
  if (readFileSync(join(BINFMT_DIR, 'status'), 'utf8').trim() !== 'enabled') {
    throw new Error(`binfmt_misc is disabled on this host (${BINFMT_DIR}/status); not changing that from a test`);
  }
  const want = { magic: masked(elf.magic, elf.mask), mask: elf.mask };
  for (const name of entryNames()) {
    let entry;
    try {
      entry = parseEntry(readFileSync(join(BINFMT_DIR, name), 'utf8'));
    } catch {
      continue; // removed meanwhile
    }
    if (entry.enabled && entry.flags.includes('F') && entry.offset === 0 && entry.mask === want.mask && masked(entry.magic, entry.mask) === want.magic) {
      return { name, interpreter: entry.interpreter, owned: false };
    }
  }
  // Newer entries are matched first, so this one wins over a same-magic entry without F.
  const name = `berth-test-${arch}-${process.pid}`;
  writeFileSync(join(BINFMT_DIR, 'register'), `:${name}:M:0:${escaped(elf.magic)}:${escaped(elf.mask)}:${interpreter}:F`);
  owned.push(name);
  if (!exitHook) {
    process.on('exit', releaseBinfmt);
    exitHook = true;
  }
  return { name, interpreter, owned: true };
}

/** Removes the entries this process registered, and binfmt_misc if it mounted it. */
export function releaseBinfmt(): void {
  while (owned.length) {
    const name = owned.pop()!;
    try {
      writeFileSync(join(BINFMT_DIR, name), '-1');
    } catch { /* already gone */ }
  }
  if (mountedHere && entryNames().length === 0) {
    execFileSync('umount', [BINFMT_DIR], { stdio: 'ignore' });
    mountedHere = false;
  }
}
