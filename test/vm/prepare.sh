#!/usr/bin/env bash
# Builds (once per kernel version) the kernel and initramfs of the test microVM:
#   test/vm/prepare.sh CACHE_DIR
# Prints the directory holding vmlinuz and initrd.gz as the last line of stdout.
# The only network use is apt-get (update, download) for Debian packages.
#
# Extra kernel modules for the initramfs: BERTH_VM_EXTRA_MODULES="tun nf_tables ...".
# BERTH_VM_ARCH picks the Debian architecture of the guest: amd64 (default), arm64 and
# armhf (for qemu-system-aarch64/-arm -M virt) or mipsel (qemu-system-mipsel -M malta).
# Foreign ones come from a private apt root under CACHE_DIR (APT::Architecture=ARCH, the
# host's sources and keys).
set -euo pipefail

cache_dir=${1:?usage: prepare.sh CACHE_DIR}
script_dir=$(cd "$(dirname "$0")" && pwd)
init_script="$script_dir/init.sh"

# Cgroup v2 and namespaces are built into Debian's kernel; these are modular there.
# Order matters: the 9p transport needs the virtio PCI bus first.
modules=(virtio_pci 9pnet_virtio 9p overlay veth bridge ${BERTH_VM_EXTRA_MODULES:-})

log() { echo "prepare.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "the microVM harness supports x86_64 hosts only"
command -v apt-cache >/dev/null || die "apt-cache not found: the kernel comes from Debian packages"

arch=${BERTH_VM_ARCH:-amd64}
# Debian's kernel flavour per architecture: the metapackage is linux-image-FLAVOUR.
# armmp, not armmp-lpae: it also runs ARMv7 cores without LPAE (cortex-a9 routers).
case $arch in
  amd64 | arm64) flavour=$arch ;;
  armhf) flavour=armmp ;;
  mipsel) flavour=4kc-malta ;;
  *) die "BERTH_VM_ARCH=$arch: only amd64, arm64, armhf and mipsel are supported" ;;
esac
apt_opts=()
case $arch in
  amd64) ;;
  *)
    # Like build/cache.mjs aptRoot(): the host's Debian sources and keyring, our own state.
    apt_root="$cache_dir/apt-$arch"
    mkdir -p "$apt_root"/etc/apt/{sources.list.d,preferences.d,apt.conf.d} \
      "$apt_root"/var/lib/apt/lists/partial "$apt_root"/var/cache/apt/archives/partial "$apt_root"/var/lib/dpkg
    touch "$apt_root/var/lib/dpkg/status"
    cp /etc/apt/sources.list.d/*.sources "$apt_root/etc/apt/sources.list.d/" 2>/dev/null || true
    [ ! -f /etc/apt/sources.list ] || cp /etc/apt/sources.list "$apt_root/etc/apt/sources.list"
    apt_opts=(-o "Dir=$apt_root" -o "Dir::State::status=$apt_root/var/lib/dpkg/status"
      -o Dir::Etc::TrustedParts=/etc/apt/trusted.gpg.d -o Dir::Etc::Trusted=/etc/apt/trusted.gpg
      -o "APT::Architecture=$arch" -o "APT::Architectures=$arch" -o APT::Sandbox::User=root
      -o Acquire::Languages=none)
    ;;
esac

# The versioned package behind the linux-image-FLAVOUR metapackage (full flavour: the
# -cloud- one lacks 9p).
resolve_kernel_package() {
  apt-cache "${apt_opts[@]}" depends "linux-image-$flavour" 2>/dev/null |
    awk -v flavour="$flavour" '$1 == "Depends:" && $2 ~ ("^linux-image-[0-9].*-" flavour "$") { print $2; exit }'
}
kernel_package=$(resolve_kernel_package || true)
if [ -z "$kernel_package" ]; then
  log "apt lists lack linux-image-$flavour; running apt-get update"
  apt-get "${apt_opts[@]}" -o DPkg::Lock::Timeout=600 update -q >&2 || die "apt-get update failed (needs root and network)"
  kernel_package=$(resolve_kernel_package || true)
  [ -n "$kernel_package" ] || die "apt knows no linux-image-$flavour package; is this Debian with 'main' in sources.list?"
fi
kernel_version=${kernel_package#linux-image-}

# The key covers everything that shapes the output, so an edit to this script, the
# init or the module list rebuilds instead of reusing a stale initramfs.
key=$(cat "$0" "$init_script" <(echo "$arch ${modules[*]}") | sha256sum | cut -c1-12)
out_dir="$cache_dir/$kernel_version-$key"
if [ -f "$out_dir/initrd.gz" ] && [ -f "$out_dir/vmlinuz" ]; then
  echo "$out_dir"
  exit 0
fi

mkdir -p "$cache_dir"
work=$(mktemp -d "$cache_dir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Downloaded .debs are kept (by exact file name) so a rebuild for a script change
# does not fetch them again.
deb_dir="$cache_dir/debs"
mkdir -p "$deb_dir"
download() { # package -> path of its .deb
  local package=$1 existing
  existing=$(ls "$deb_dir"/"${package}"_*_"$arch".deb 2>/dev/null | head -n1 || true)
  if [ -z "$existing" ]; then
    log "downloading $package"
    # apt-get download writes into the cwd; a private dir keeps a concurrent run from
    # seeing a half-written file.
    local fetch_dir
    fetch_dir=$(mktemp -d "$work/fetch.XXXXXX")
    (cd "$fetch_dir" && apt-get "${apt_opts[@]}" download -q "$package" >&2) || die "apt-get download $package failed"
    mv "$fetch_dir"/*.deb "$deb_dir/"
    existing=$(ls "$deb_dir"/"${package}"_*_"$arch".deb | head -n1)
  fi
  echo "$existing"
}

kernel_root="$work/kernel"
dpkg-deb -x "$(download "$kernel_package")" "$kernel_root"
vmlinuz=$(ls "$kernel_root"/boot/vmlinuz-* | head -n1)
[ -f "$vmlinuz" ] || die "no vmlinuz in $kernel_package"

# A static busybox runs /init before any shared library exists in the guest.
busybox_bin=/bin/busybox
if [ "$arch" != amd64 ] || ! [ -x "$busybox_bin" ] || ldd "$busybox_bin" >/dev/null 2>&1; then
  dpkg-deb -x "$(download busybox-static)" "$work/busybox"
  busybox_bin="$work/busybox/bin/busybox"
fi
# Runs on the host (depmod, cpio, applet list): the guest's busybox when it is native.
tool_busybox=$busybox_bin
if [ "$arch" != amd64 ]; then
  tool_busybox=$(command -v busybox) || die "a host busybox is needed for depmod and cpio (Debian: busybox-static)"
fi

# The .deb ships no modules.dep: compute it for the whole tree once, take the closure
# of the wanted modules, then index the small copy again for modprobe in the guest.
modules_root="$kernel_root/lib/modules/$kernel_version"
[ -d "$modules_root" ] || modules_root="$kernel_root/usr/lib/modules/$kernel_version"
[ -d "$modules_root" ] || die "no modules directory for $kernel_version in $kernel_package"
modules_base=${modules_root%/lib/modules/*}
"$tool_busybox" depmod -b "$modules_base" "$kernel_version"

initramfs="$work/initramfs"
mkdir -p "$initramfs"/{bin,dev,proc,sys,mnt,tmp,newroot,etc/berth-vm,lib/modules/"$kernel_version"}

declare -A wanted=()  # module files (relative to modules_root) to copy
declare -A seen=()
load_order=()         # what the guest modprobes, soft dependencies first
modules_dep="$modules_root/modules.dep"

# Soft dependencies (e.g. libcrc32c needs a crc32c provider) are invisible to depmod
# and to busybox modprobe, so they are resolved here and loaded explicitly.
soft_dependencies() { # module file -> names from its "softdep=pre: ..." entries
  local file=$1
  case $file in
    *.xz) xz -dc "$modules_root/$file" ;;
    *.zst) zstd -qdc "$modules_root/$file" ;;
    *.gz) gzip -dc "$modules_root/$file" ;;
    *) cat "$modules_root/$file" ;;
  esac | tr '\0' '\n' | sed -n 's/^softdep=//p' | sed 's/post:.*//; s/pre://g'
}

add_module() { # name required
  local name=${1//-/_} required=$2 line file soft provider providers
  [ -z "${seen[$name]:-}" ] || return 0
  seen[$name]=1
  # File names may spell _ as -.
  line=$(grep -m1 -E "(^|/)${name//_/[-_]}\.ko(\.[a-z]+)?:" "$modules_dep" || true)
  if [ -z "$line" ]; then
    grep -qE "/${name//_/[-_]}\.ko" "$modules_root/modules.builtin" 2>/dev/null && return 0
    providers=$(awk -v alias="$name" '$1 == "alias" && $2 == alias { print $3 }' "$modules_root/modules.alias")
    if [ -n "$providers" ]; then
      for provider in $providers; do add_module "$provider" "$required"; done
      return 0
    fi
    [ "$required" = required ] && die "kernel module $name not found in $kernel_package"
    return 0
  fi
  for file in ${line/:/ }; do
    for soft in $(soft_dependencies "$file"); do add_module "$soft" optional; done
    wanted[$file]=1
  done
  load_order+=("$name")
}
for module in "${modules[@]}"; do add_module "$module" required; done
for file in "${!wanted[@]}"; do
  target="$initramfs/lib/modules/$kernel_version/$file"
  mkdir -p "$(dirname "$target")"
  # busybox modprobe may lack decompression; store plain .ko files.
  case $file in
    *.ko.xz)  xz -dc "$modules_root/$file" > "${target%.xz}" ;;
    *.ko.zst) zstd -qdc "$modules_root/$file" > "${target%.zst}" ;;
    *.ko.gz)  gzip -dc "$modules_root/$file" > "${target%.gz}" ;;
    *)        cp "$modules_root/$file" "$target" ;;
  esac
done
cp "$modules_root"/modules.builtin* "$initramfs/lib/modules/$kernel_version/" 2>/dev/null || true
"$tool_busybox" depmod -b "$initramfs" "$kernel_version"
printf '%s\n' "${load_order[@]}" > "$initramfs/etc/berth-vm/modules"

cp "$busybox_bin" "$initramfs/bin/busybox"
# Debian's busybox-static has the same applets on every architecture.
for applet in $("$tool_busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$initramfs/bin/$applet"
done
install -m 0755 "$init_script" "$initramfs/init"

mkdir -p "$work/out"
(cd "$initramfs" && find . | LC_ALL=C sort | "$tool_busybox" cpio -o -H newc 2>/dev/null) | gzip -1 > "$work/out/initrd.gz"
cp "$vmlinuz" "$work/out/vmlinuz"

# Under TCG the bzImage's own decompressor costs ~3 s a boot; an uncompressed ELF
# booted through its PVH entry skips it. Without PVH the harness uses vmlinuz.
extract_vmlinux() { # bzImage target: writes the ELF vmlinux to target, or fails
  local image=$1 target=$2 magic decompress offset
  for pair in $'\xfd7zXZ:xz -dc' $'\x28\xb5\x2f\xfd:zstd -qdc' $'\x1f\x8b\x08:gzip -dc'; do
    magic=${pair%%:*}
    decompress=${pair#*:}
    command -v "${decompress%% *}" >/dev/null || continue
    for offset in $(LC_ALL=C grep -aboF "$magic" "$image" | cut -d: -f1); do
      # The payload is followed by other data, so the decompressor's status means nothing.
      tail -c +$((offset + 1)) "$image" | $decompress 2>/dev/null > "$target" || true
      [ "$(head -c 4 "$target" | od -An -c | tr -d ' ')" = '177ELF' ] && return 0
    done
  done
  return 1
}
if [ "$arch" != amd64 ]; then
  : # qemu loads these (arm64 Image.gz, arm zImage, mips ELF) itself
elif ! grep -q '^CONFIG_PVH=y' "$kernel_root/boot/config-$kernel_version" 2>/dev/null ||
   ! extract_vmlinux "$vmlinuz" "$work/out/vmlinux"; then
  rm -f "$work/out/vmlinux"
  log "no PVH-bootable vmlinux; booting the compressed kernel (slower)"
fi
echo "$kernel_version" > "$work/out/kernel-version"

# Publish atomically; a concurrent run that finished first wins and ours is dropped.
if ! mv -T "$work/out" "$out_dir" 2>/dev/null; then
  [ -f "$out_dir/initrd.gz" ] || die "could not publish $out_dir"
fi
log "built $out_dir"
echo "$out_dir"
