#!/bin/sh
# PID 1 of the test microVM (busybox sh, packed into the initramfs by prepare.sh).
#
# Contract with the host (see test/helpers/microvm.ts):
# - the 9p share tagged host0 is the control directory, mounted at /mnt;
# - /mnt/mounts (optional) lists further 9p shares, one "TAG PATH OPTIONS" a line.
#   PATH "/" makes that share the new root (read-only host root), and the guest's own
#   proc, sys, dev, cgroup2 and tmpfs (/tmp, /run) are mounted inside it. TAG host0
#   binds the control directory at PATH as well;
# - the command is the kernel command line after "--", else "/bin/sh CTL/run.sh" where
#   CTL is where the control directory is visible to the command;
# - the exit code goes to /mnt/exit-code, then the VM powers off.
# Markers around the command let the host separate its output from boot noise.
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

fail() {
  echo "berth-vm init: $*"
  poweroff -f
}

mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail "cannot mount cgroup2"
for module in $(cat /etc/berth-vm/modules); do
  modprobe "$module" || echo "berth-vm init: modprobe $module failed"
done
ip link set lo up

ninep_opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$ninep_opts" host0 /mnt || fail "cannot mount the host0 9p share"

root=/
control=/mnt
mount_guest_filesystems() { # $1 = new root
  mount -t proc proc "$1/proc"
  mount -t sysfs sysfs "$1/sys"
  mount -t cgroup2 -o nsdelegate cgroup2 "$1/sys/fs/cgroup"
  mount -t devtmpfs devtmpfs "$1/dev"
  mkdir -p "$1/dev/pts" "$1/dev/shm" 2>/dev/null
  mount -t devpts devpts "$1/dev/pts" 2>/dev/null
  mount -t tmpfs tmpfs "$1/dev/shm"
  mount -t tmpfs -o mode=1777 tmpfs "$1/tmp"
  mount -t tmpfs -o mode=0755 tmpfs "$1/run"
}
if [ -f /mnt/mounts ]; then
  while read -r tag path options; do
    [ -n "$tag" ] || continue
    if [ "$path" = / ]; then
      mount -t 9p -o "$ninep_opts,$options" "$tag" /newroot || fail "cannot mount $tag as root"
      root=/newroot
      mount_guest_filesystems /newroot
      continue
    fi
    target="$root$path"
    # Best effort: the parent may be read-only, yet the directory already exists there.
    mkdir -p "$target" 2>/dev/null
    if [ "$tag" = host0 ]; then
      mount -o bind /mnt "$target" || fail "cannot bind the control share at $path"
      control=$path
    else
      mount -t 9p -o "$ninep_opts,$options" "$tag" "$target" || fail "cannot mount $tag at $path"
    fi
  done < /mnt/mounts
fi

echo "@@berth-vm-begin@@"
if [ $# -gt 0 ]; then
  chroot "$root" "$@"
else
  chroot "$root" /bin/sh "$control/run.sh"
fi
code=$?
echo "@@berth-vm-end $code@@"
echo "$code" > /mnt/exit-code
sync
poweroff -f
