// Each cross-built helper that runs under qemu-user (build/targets.json "qemu") starts a
// container on the host kernel: `berth-helper run BUNDLE` emulated on the target's CPU,
// with Docker's mounts, masks, read-only paths and default capabilities and every
// namespace but pid (qemu-user refuses clone with CLONE_NEWPID; the helper unshares the
// others itself). The container's command is a static probe of the same architecture
// (test/fixtures/probe), exec'd by the kernel through a test-owned binfmt_misc entry
// (test/helpers/binfmt.ts). Checked from the outside, as a user sees it: the json-file
// log and the exit file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { delimiter, join } from 'node:path';
import { ensureBinfmt, releaseBinfmt } from '../helpers/binfmt';
import {
  dockerDefaults, makeBundle, readJsonLog, REPO_ROOT, sleep, waitForExit, writeSpec, type HelperSpec,
} from '../helpers/helper-bundle';

interface Target {
  name: string;
  helperCC: string;
  qemu: { binary: string; cpu: string } | null;
}
const targets: Target[] = JSON.parse(readFileSync(join(REPO_ROOT, 'build/targets.json'), 'utf8')).targets;
const emulated = targets.filter((t): t is Target & { qemu: NonNullable<Target['qemu']> } => t.qemu !== null);

/** uname's machine as qemu-user reports it for each target. */
const MACHINE: Record<string, string> = { aarch64: 'aarch64', armv7: 'armv7l', mipsel: 'mips', mips: 'mips' };
const DOCKER_CAPEFF = '00000000a80425fb';

const which = (name: string) => (process.env.PATH ?? '').split(delimiter).map((d) => d && join(d, name)).find((p) => p && existsSync(p));
const missing = [...new Set(emulated.flatMap((t) => [t.helperCC, t.qemu.binary]).filter((tool) => !which(tool)))];
const notRoot = process.getuid?.() !== 0;

/** Runs the emulated `berth-helper run` until the container's exit file is written. */
async function runEmulated(target: Target & { qemu: NonNullable<Target['qemu']> }, bundle: string) {
  const helper = join(REPO_ROOT, 'dist/helpers', `berth-helper-${target.name}`);
  const launcher = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(target.qemu.binary, ['-cpu', target.qemu.cpu, helper, 'run', bundle], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
  assert.is(launcher.code, 0, `berth-helper run: ${launcher.stderr}`);
  const exit = await waitForExit(bundle, 60_000);
  // The helper removes helper.pid as it exits: nothing of the run stays behind.
  for (let i = 0; existsSync(join(bundle, 'helper.pid')); i++) {
    assert.ok(i < 250, 'the helper did not exit after the container');
    await sleep(20);
  }
  return exit;
}

/** A rootfs with only the probe (at /bin/probe) and a marker file. */
function makeRootfs(dir: string, target: string, marker: string): string {
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'dev', 'etc', 'proc', 'sys', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  execFileSync(process.execPath, [join(REPO_ROOT, 'test/fixtures/probe/build.mjs'), target, join(rootfs, 'bin/probe')], { stdio: ['ignore', 'ignore', 'inherit'] });
  chmodSync(join(rootfs, 'bin/probe'), 0o755);
  writeFileSync(join(rootfs, 'probe-marker'), `${marker}\n`);
  return rootfs;
}

function baseSpec(target: Target & { qemu: NonNullable<Target['qemu']> }, rootfs: string, args: string[]): HelperSpec {
  const defaults = dockerDefaults();
  return {
    ...defaults,
    rootfs,
    args,
    // The payload's qemu (started by binfmt_misc, without -cpu) reads the CPU from the
    // environment, which is exactly the spec's.
    env: [...(defaults.env ?? []), `QEMU_CPU=${target.qemu.cpu}`],
    namespaces: ['mnt', 'uts', 'ipc', 'net'],
    hostname: `berth-${target.name}`,
    log: { path: 'container.log', maxBytes: 0, maxFiles: 1 },
  };
}

if (missing.length || notRoot) {
  test('cross-built helpers start containers under qemu-user (skipped)', () => {
    console.log(missing.length
      ? `skipped: ${missing.join(', ')} not on PATH (Debian: musl-tools gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf gcc-mips-linux-gnu gcc-mipsel-linux-gnu qemu-user-static)`
      : 'skipped: needs root (namespaces, mounts, binfmt_misc)');
  });
} else {
  test.before(() => {
    // Cached per source hash: a no-op unless native/helper changed.
    execFileSync(process.execPath, [join(REPO_ROOT, 'build/helpers.mjs'), ...emulated.map((t) => t.name)], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  });
  test.after(() => releaseBinfmt());

  for (const target of emulated) {
    const arch = target.qemu.binary.replace(/^qemu-(.+)-static$/, '$1');

    test(`helper ${target.name} under ${target.qemu.binary} -cpu ${target.qemu.cpu}: execs its architecture's static probe in a container`, async () => {
      const binfmt = ensureBinfmt(arch, which(target.qemu.binary)!);
      const { dir, bundle, cleanup } = makeBundle('berth-xrun-');
      try {
        const marker = randomBytes(8).toString('hex');
        const rootfs = makeRootfs(dir, target.name, marker);
        const hostOnly = join(dir, 'host-only');
        writeFileSync(hostOnly, 'the host\n');
        writeSpec(bundle, baseSpec(target, rootfs, ['probe', '7', hostOnly, '/probe-marker']));

        const exit = await runEmulated(target, bundle);
        const log = readJsonLog(join(bundle, 'container.log'));
        const stdout = log.filter((l) => l.stream === 'stdout').map((l) => l.log).join('');
        const stderr = log.filter((l) => l.stream === 'stderr').map((l) => l.log).join('');
        assert.is(exit.error, undefined, `${exit.error} (binfmt entry ${binfmt.name})`);
        assert.is(exit.code, 7, stdout + stderr);
        assert.is(exit.signal, 0);
        assert.is(stderr, '');

        const facts = new Map(stdout.trimEnd().split('\n').map((l) => {
          const space = l.indexOf(' ');
          return [l.slice(0, space < 0 ? l.length : space), space < 0 ? '' : l.slice(space + 1)] as const;
        }));
        assert.is(facts.get('machine'), MACHINE[target.name], stdout);
        assert.is(facts.get('hostname'), `berth-${target.name}`, stdout);
        // / is the rootfs: its marker is there, the host's file is not.
        assert.is(facts.get('marker'), marker, stdout);
        assert.ok(stdout.includes(`path ${hostOnly} absent\n`), stdout);
        assert.ok(stdout.includes('path /probe-marker present\n'), stdout);
        // A new network namespace: only the loopback, seen through /proc and sysfs.
        assert.is(facts.get('proc-net-dev'), 'lo', stdout);
        assert.is(facts.get('sys-class-net'), 'lo', stdout);
        assert.is(facts.get('capeff'), DOCKER_CAPEFF, stdout);
      } finally {
        cleanup();
      }
    });

    test(`helper ${target.name}: a command missing from the rootfs exits 127 with the reason`, async () => {
      const { dir, bundle, cleanup } = makeBundle('berth-xrun-');
      try {
        const rootfs = join(dir, 'rootfs');
        mkdirSync(rootfs);
        for (const d of ['bin', 'dev', 'etc', 'proc', 'sys', 'tmp']) mkdirSync(join(rootfs, d));
        writeSpec(bundle, baseSpec(target, rootfs, ['nope']));
        const exit = await runEmulated(target, bundle);
        assert.is(exit.code, 127);
        assert.is(exit.error, 'exec: "nope": executable file not found in $PATH');
      } finally {
        cleanup();
      }
    });
  }
}

test.run();
