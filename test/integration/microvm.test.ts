// The microVM harness itself: one boot checks that the guest has a usable cgroup v2
// hierarchy (what the harness exists for) and that output and the exit code come back.
// Needs qemu-system-x86 (CI installs it); without it the test reports a skip and passes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findQemu, inMicroVm, runInMicroVm } from '../helpers/microvm';

const CGROUP2_SUPER_MAGIC = 0x63677270;

// Plain JavaScript so the guest skips tsx's start-up (several seconds under TCG).
// Prints one JSON line of facts; the host side asserts on them.
const GUEST_CHECKS = `
const fs = require('node:fs');
const root = '/sys/fs/cgroup';
const facts = { fsType: fs.statfsSync(root).type };
facts.controllers = fs.readFileSync(root + '/cgroup.controllers', 'utf8').trim().split(' ');
try {
  const child = root + '/berth-harness-check';
  fs.mkdirSync(child);
  fs.writeFileSync(root + '/cgroup.subtree_control', '+memory +pids');
  facts.childControllers = fs.readFileSync(child + '/cgroup.controllers', 'utf8').trim().split(' ');
  fs.writeFileSync(child + '/memory.max', String(64 * 1024 * 1024));
  facts.memoryMax = fs.readFileSync(child + '/memory.max', 'utf8').trim();
} catch (err) {
  facts.error = String(err);
}
console.log('guest-facts ' + JSON.stringify(facts));
`;

interface GuestFacts {
  fsType: number;
  controllers: string[];
  childControllers?: string[];
  memoryMax?: string;
  error?: string;
}

const qemu = findQemu();

if (inMicroVm()) {
  // Picked up by a guest-side uvu run of this folder: nothing to do, and no nested VM.
} else if (!qemu) {
  test('microVM harness (skipped: qemu-system-x86_64 not installed)', () => {
    console.log('skipped: qemu-system-x86_64 not installed (Debian package qemu-system-x86)');
  });
} else {
  test('guest runs on cgroup v2 with memory and pids, and its exit code comes back', async () => {
    const result = await runInMicroVm({
      // The trailing `exit 3` proves the code is the guest command's, not init's or qemu's.
      command: ['sh', '-c', 'node -e "$1" || echo "guest node failed: $?"; exit 3', 'sh', GUEST_CHECKS],
      timeoutMs: 90_000,
    });
    console.log(`  microVM: boot ${result.bootMs} ms, guest command ${result.commandMs} ms`);

    assert.is(result.code, 3, `guest exit code; output:\n${result.output}`);
    const line = result.output.split('\n').find((l) => l.startsWith('guest-facts '));
    assert.ok(line, `guest printed no facts; output:\n${result.output}`);
    const facts = JSON.parse(line.slice('guest-facts '.length)) as GuestFacts;
    assert.is(facts.fsType, CGROUP2_SUPER_MAGIC, '/sys/fs/cgroup is cgroup2');
    assert.ok(facts.controllers.includes('memory'), `memory controller in ${facts.controllers.join(' ')}`);
    assert.ok(facts.controllers.includes('pids'), `pids controller in ${facts.controllers.join(' ')}`);
    assert.is(facts.error, undefined, 'child cgroup setup');
    assert.ok(facts.childControllers?.includes('memory'), 'memory delegated to the child');
    assert.is(facts.memoryMax, String(64 * 1024 * 1024), 'memory.max read back');
  });
}

test.run();
