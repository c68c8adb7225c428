import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Descriptor, Platform } from '../../../src/minimal-graph/types';
import {
  candidatePlatforms, hostPlatform, normalizePlatform, parsePlatform, platformString, selectManifest,
} from '../../../src/image/platform';

const cpuinfo = (level: string) => `processor\t: 0\nmodel name\t: ARMv7 Processor rev 5 (v7l)\nCPU architecture: ${level}\nCPU variant\t: 0x0\n`;

test('host platform maps node arch names to go names', () => {
  assert.equal(hostPlatform({ arch: 'x64' }), { os: 'linux', architecture: 'amd64' });
  assert.equal(hostPlatform({ arch: 'arm64' }), { os: 'linux', architecture: 'arm64' });
  assert.equal(hostPlatform({ arch: 'ia32' }), { os: 'linux', architecture: '386' });
  assert.equal(hostPlatform({ arch: 'mipsel' }), { os: 'linux', architecture: 'mipsle' });
  assert.equal(hostPlatform({ arch: 'mips' }), { os: 'linux', architecture: 'mips' });
});

test('arm variant comes from /proc/cpuinfo', () => {
  assert.equal(hostPlatform({ arch: 'arm', cpuinfo: cpuinfo('7') }), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(hostPlatform({ arch: 'arm', cpuinfo: cpuinfo('6') }), { os: 'linux', architecture: 'arm', variant: 'v6' });
  assert.equal(hostPlatform({ arch: 'arm', cpuinfo: cpuinfo('5TEJ') }), { os: 'linux', architecture: 'arm', variant: 'v5' });
  assert.equal(hostPlatform({ arch: 'arm', cpuinfo: cpuinfo('8') }), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(hostPlatform({ arch: 'arm', cpuinfo: '' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
});

test('parse and normalise platform strings', () => {
  assert.equal(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(parsePlatform('linux/aarch64'), { os: 'linux', architecture: 'arm64' });
  assert.equal(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' });
  assert.equal(parsePlatform('linux/x86_64'), { os: 'linux', architecture: 'amd64' });
  assert.equal(parsePlatform('linux/armhf'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(parsePlatform('linux/armel'), { os: 'linux', architecture: 'arm', variant: 'v6' });
  assert.equal(parsePlatform('linux/mipsel'), { os: 'linux', architecture: 'mipsle' });
  assert.equal(normalizePlatform({ os: 'Linux', architecture: 'ARM', variant: '6' }), { os: 'linux', architecture: 'arm', variant: 'v6' });
  assert.throws(() => parsePlatform('linux//v7'), /invalid platform/);
  assert.throws(() => parsePlatform('a/b/c/d'), /invalid platform/);
  assert.is(platformString({ os: 'linux', architecture: 'arm', variant: 'v7' }), 'linux/arm/v7');
  assert.is(platformString({ os: 'linux', architecture: 'amd64' }), 'linux/amd64');
});

test('fallback orders', () => {
  const names = (p: Platform) => candidatePlatforms(p).map(platformString);
  assert.equal(names({ os: 'linux', architecture: 'arm', variant: 'v7' }), ['linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']);
  assert.equal(names({ os: 'linux', architecture: 'arm', variant: 'v6' }), ['linux/arm/v6', 'linux/arm/v5']);
  assert.equal(names({ os: 'linux', architecture: 'arm64' }), ['linux/arm64', 'linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']);
  assert.equal(names({ os: 'linux', architecture: 'amd64' }), ['linux/amd64', 'linux/386']);
  assert.equal(names({ os: 'linux', architecture: 'mipsle' }), ['linux/mipsle']);
});

const entry = (n: number, platform?: Platform): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size: 100 + n,
  ...(platform ? { platform } : {}),
});

test('selects the best manifest from an index', () => {
  const index = [
    entry(1, { os: 'linux', architecture: 'amd64' }),
    entry(2, { os: 'linux', architecture: 'arm', variant: 'v6' }),
    entry(3, { os: 'linux', architecture: 'arm', variant: 'v7' }),
    entry(4, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    entry(5, { os: 'linux', architecture: 'mipsle' }),
    entry(6, { os: 'linux', architecture: '386' }),
  ];
  assert.is(selectManifest(index, { os: 'linux', architecture: 'amd64' })?.size, 101);
  assert.is(selectManifest(index, { os: 'linux', architecture: 'arm', variant: 'v7' })?.size, 103);
  assert.is(selectManifest(index, { os: 'linux', architecture: 'arm', variant: 'v6' })?.size, 102);
  assert.is(selectManifest(index, { os: 'linux', architecture: 'arm64' })?.size, 104);
  assert.is(selectManifest(index, { os: 'linux', architecture: 'mipsle' })?.size, 105);
  assert.is(selectManifest(index, { os: 'linux', architecture: 'mips' }), undefined);
  assert.is(selectManifest(index, { os: 'windows', architecture: 'amd64' }), undefined);
});

test('falls back: arm64 host takes arm/v7, amd64 takes 386, v7 takes v5', () => {
  assert.is(selectManifest([entry(1, { os: 'linux', architecture: 'arm', variant: 'v7' })], { os: 'linux', architecture: 'arm64' })?.size, 101);
  assert.is(selectManifest([entry(2, { os: 'linux', architecture: '386' })], { os: 'linux', architecture: 'amd64' })?.size, 102);
  assert.is(selectManifest([entry(3, { os: 'linux', architecture: 'arm', variant: 'v5' })], { os: 'linux', architecture: 'arm', variant: 'v7' })?.size, 103);
  // A v7 image does not run on a v6 core.
  assert.is(selectManifest([entry(4, { os: 'linux', architecture: 'arm', variant: 'v7' })], { os: 'linux', architecture: 'arm', variant: 'v6' }), undefined);
  // An entry without a variant means v7 for arm.
  assert.is(selectManifest([entry(5, { os: 'linux', architecture: 'arm' })], { os: 'linux', architecture: 'arm', variant: 'v7' })?.size, 105);
});

test('skips attestation entries and entries without a platform', () => {
  const index = [
    entry(7, { os: 'unknown', architecture: 'unknown' }),
    entry(8),
    entry(9, { os: 'linux', architecture: 'amd64' }),
  ];
  assert.is(selectManifest(index, { os: 'linux', architecture: 'amd64' })?.size, 109);
  assert.is(selectManifest([entry(7, { os: 'unknown', architecture: 'unknown' })], { os: 'unknown', architecture: 'unknown' }), undefined);
});

test.run();
