#!/usr/bin/env bash
# Sets up berth on this machine and runs a real container from the embedded default
# image, without any registry: installs what is missing, builds, starts a daemon on a
# temp data root, loads the default image, runs containers from it, then stops the
# daemon and removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

work=$(mktemp -d /tmp/berth-try.XXXXXX)
sock="$work/berth.sock"
cleanup() {
  set +xe  # best effort: one failed step must not skip the rest
  [ -n "${daemon_pid:-}" ] && bin/berth -H "unix://$sock" rm -f try-web >/dev/null 2>&1
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  for d in /sys/fs/cgroup/*/berth-try-$$ /sys/fs/cgroup/berth-try-$$; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  ip link del "$bridge" 2>/dev/null
  nft delete table inet "berth-$bridge" 2>/dev/null
  nft delete table ip "berth-$bridge-nat" 2>/dev/null
  umount -R "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Its own cgroup parent, bridge and subnet, so a daemon already on this machine is untouched.
bridge="berthtry$((RANDOM % 1000))"
bin/berth daemon --data-root "$work/data" --exec-root "$work/exec" --host "unix://$sock" \
  --cgroup-parent "berth-try-$$" --bridge "$bridge" --bip "10.199.$((RANDOM % 250)).1/24" \
  >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && bin/berth -H "unix://$sock" version >/dev/null 2>&1 && break; sleep 0.1; done

export BERTH_HOST="unix://$sock"
set -x
bin/berth load -i dist/default-image.tar
bin/berth images
bin/berth run --rm localhost/busybox sh -c 'echo "hello from $(hostname), pid $$, in a berth container"; cat /etc/os-release 2>/dev/null || uname -a'
bin/berth run -d --name try-web -p 18089:80 localhost/busybox httpd -f -p 80 -h /etc
sleep 1
bin/berth ps
curl -s -o /dev/null -w 'published port 18089 answers HTTP %{http_code}\n' http://127.0.0.1:18089/hostname
bin/berth exec try-web ps
bin/berth rm -f try-web
bin/berth system check
