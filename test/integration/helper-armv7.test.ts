// The armv7 helper (hard-float) starts a container on a real 32-bit ARM kernel: Debian's
// armhf kernel (armmp flavour: no LPAE needed, so cortex-a9 routers too) under
// qemu-system-arm (-M virt, cortex-a15, TCG); see test/helpers/foreign-helper-vm.ts.
import { test } from 'uvu';
import { helperContainerTest } from '../helpers/foreign-helper-vm';

helperContainerTest('armv7', { machine: 'armv7l', kernelRelease: /-armmp$/ });

test.run();
