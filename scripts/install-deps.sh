#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test berth: Debian
# packages (only those missing, so a warm machine pays nothing) and npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  docker-registry skopeo umoci busybox-static   # registry fixtures and the default image
  musl-tools                                    # static native helper
  apache2-utils openssl                         # htpasswd and certificates for auth fixtures
  zstd xz-utils                                 # layer fixtures
  hyperfine time                                # bench/
  qemu-system-x86 qemu-system-arm qemu-system-mips   # microVMs: cgroup-v2-only x86_64 kernel; arm64, armhf, mipsel kernels (test/vm)
  mosquitto                                     # MQTT broker for the fleet tests
  nftables iptables iproute2                    # bridge networking
  gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf  # cross-built helpers (build:helpers)
  gcc-mips-linux-gnu gcc-mipsel-linux-gnu
  qemu-user-static binfmt-support file patch    # run and check other targets' binaries
  patchelf                                      # ipks carry the glibc the Node binaries need
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# Cross builds cache Debian's musl and npm's Node base binaries outside the checkout, so
# a fresh clone on a warm machine rebuilds in seconds.
export BERTH_BUILD_CACHE="${BERTH_BUILD_CACHE:-/var/cache/berth-build}"
npm run build:all
