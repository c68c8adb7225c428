// The aarch64 helper starts a container on a real arm64 kernel: Debian's arm64 kernel
// under qemu-system-aarch64 (-M virt, cortex-a57, TCG); see test/helpers/foreign-helper-vm.ts.
import { test } from 'uvu';
import { helperContainerTest } from '../helpers/foreign-helper-vm';

helperContainerTest('aarch64', { machine: 'aarch64', kernelRelease: /-arm64$/ });

test.run();
