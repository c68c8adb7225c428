// The mipsel helper (soft-float) starts a container on a real little-endian MIPS kernel:
// Debian's 4kc-malta kernel under qemu-system-mipsel (-M malta, a 24Kc without FPU as on
// mipsel_24kc routers, TCG); see test/helpers/foreign-helper-vm.ts. Big-endian mips has
// no Debian kernel in bookworm, so it keeps only its self-test under qemu-user.
import { test } from 'uvu';
import { helperContainerTest } from '../helpers/foreign-helper-vm';

helperContainerTest('mipsel', { machine: 'mips', kernelRelease: /-4kc-malta$/ });

test.run();
