// Platform names and the choice of one manifest from an index. Architectures use Go's
// names because that is what image indexes carry.

import { readFileSync } from 'node:fs';
import { BerthError } from '../util/errors';
import type { Descriptor, Platform } from '../minimal-graph/types';

const NODE_TO_GO_ARCH: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm64: 'arm64',
  arm: 'arm',
  mips: 'mips',
  mipsel: 'mipsle',
  mips64: 'mips64',
  mips64el: 'mips64le',
  riscv64: 'riscv64',
  ppc64: 'ppc64le',
  s390x: 's390x',
  loong64: 'loong64',
};

/**
 * The platform this process runs on. `arch` and `cpuinfo` default to process.arch and
 * /proc/cpuinfo; tests pass them in.
 */
export function hostPlatform(opts: { arch?: string; cpuinfo?: string } = {}): Platform {
  const nodeArch = opts.arch ?? process.arch;
  const architecture = NODE_TO_GO_ARCH[nodeArch] ?? nodeArch;
  if (architecture !== 'arm') return { os: 'linux', architecture };
  let cpuinfo = opts.cpuinfo;
  if (cpuinfo === undefined) {
    try { cpuinfo = readFileSync('/proc/cpuinfo', 'utf8'); } catch { cpuinfo = ''; }
  }
  return { os: 'linux', architecture: 'arm', variant: armVariantFromCpuinfo(cpuinfo) };
}

// "CPU architecture: 7" on ARMv7 kernels; 8 means a 64-bit core running 32-bit code,
// which still runs v7 images best. Older kernels print e.g. "CPU architecture: 5TEJ".
function armVariantFromCpuinfo(cpuinfo: string): string {
  const m = /^CPU architecture\s*:\s*(\d+)/m.exec(cpuinfo);
  if (!m) return 'v7';
  const level = Number(m[1]);
  if (level >= 7) return 'v7';
  if (level <= 5) return 'v5';
  return 'v6';
}

/** "linux/arm/v7" -> {os, architecture, variant}, normalised. */
export function parsePlatform(spec: string): Platform {
  const parts = spec.trim().split('/');
  if (parts.length < 1 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new BerthError('EINVAL', `invalid platform "${spec}": expected os/arch[/variant]`);
  }
  let platform: Platform;
  if (parts.length === 1) {
    // A lone word is an OS (docker: "linux") or an architecture (docker: "arm64").
    platform = parts[0] === 'linux' || parts[0] === 'windows' || parts[0] === 'darwin'
      ? { ...hostPlatform(), os: parts[0] }
      : { os: 'linux', architecture: parts[0]! };
  } else {
    platform = { os: parts[0]!, architecture: parts[1]! };
    if (parts[2]) platform.variant = parts[2];
  }
  return normalizePlatform(platform);
}

/** Canonical names: aarch64 -> arm64, armhf -> arm/v7, x86_64 -> amd64, bare arm -> v7. */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase();
  switch (architecture) {
    case 'i386': case 'i686': architecture = '386'; variant = undefined; break;
    case 'x86_64': case 'x86-64': case 'amd64':
      architecture = 'amd64';
      if (variant === 'v1') variant = undefined;
      break;
    case 'aarch64': case 'arm64':
      architecture = 'arm64';
      if (variant === '8' || variant === 'v8') variant = undefined;
      break;
    case 'armhf': architecture = 'arm'; variant = 'v7'; break;
    case 'armel': architecture = 'arm'; variant = 'v6'; break;
    case 'arm':
      if (!variant) variant = 'v7';
      else if (/^\d+$/.test(variant)) variant = `v${variant}`;
      break;
    case 'mipsel': architecture = 'mipsle'; break;
    case 'mips64el': architecture = 'mips64le'; break;
    default: break;
  }
  const out: Platform = { os, architecture };
  if (variant) out.variant = variant;
  return out;
}

export function platformString(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** Platforms the wanted one can run, best first (what containerd's matcher allows). */
export function candidatePlatforms(wanted: Platform): Platform[] {
  const p = normalizePlatform(wanted);
  const arm = (from: number): Platform[] => {
    const out: Platform[] = [];
    for (let v = from; v >= 5; v--) out.push({ os: p.os, architecture: 'arm', variant: `v${v}` });
    return out;
  };
  switch (p.architecture) {
    case 'arm': {
      const level = Number((p.variant ?? 'v7').slice(1));
      return Number.isFinite(level) && level >= 5 ? arm(Math.min(level, 8)) : [p];
    }
    case 'arm64':
      return [p, ...arm(8)];
    case 'amd64':
      return [p, { os: p.os, architecture: '386' }];
    default:
      return [p];
  }
}

function samePlatform(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/**
 * Picks the best entry of an index for `wanted`. Attestation manifests (platform
 * unknown/unknown) are never chosen.
 */
export function selectManifest(manifests: Descriptor[], wanted: Platform): Descriptor | undefined {
  const usable = manifests.filter((m) => m.platform && m.platform.os !== 'unknown' && m.platform.architecture !== 'unknown');
  for (const candidate of candidatePlatforms(wanted)) {
    const hit = usable.find((m) => samePlatform(normalizePlatform(m.platform!), candidate));
    if (hit) return hit;
  }
  // An index entry without a variant (e.g. "linux/arm") is normalised to v7 above; an arm64
  // entry that still names v8 is normalised away too, so nothing else needs matching.
  return undefined;
}
