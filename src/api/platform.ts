// Platform names as Docker reports them (Go's GOARCH), shared by the daemon's /version
// and the CLI's client section. No dependencies: the CLI imports it.
const GO_ARCH: Record<string, string> = {
  x64: 'amd64', arm64: 'arm64', arm: 'arm', mipsel: 'mipsle', mips: 'mips', ia32: '386',
  ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64',
};

export function goArch(nodeArch: string = process.arch): string {
  return GO_ARCH[nodeArch] ?? nodeArch;
}

/** What stands in for docker's "GoVersion": the runtime that runs us. */
export function runtimeVersion(): string {
  return `node ${process.version}`;
}
