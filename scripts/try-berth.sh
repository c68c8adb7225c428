#!/usr/bin/env bash
# Sets up berth on this machine and shows it working on the embedded default image,
# without any registry: installs what is missing, builds, starts a daemon on a temp
# data root, loads the default image, lists and inspects it, then stops the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

work=$(mktemp -d /tmp/berth-try.XXXXXX)
sock="$work/berth.sock"
cleanup() {
  set +x
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  umount -R "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bin/berth daemon --data-root "$work/data" --exec-root "$work/exec" --host "unix://$sock" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && bin/berth -H "unix://$sock" version >/dev/null 2>&1 && break; sleep 0.1; done

export BERTH_HOST="unix://$sock"
set -x
bin/berth load -i dist/default-image.tar
bin/berth images
bin/berth image inspect localhost/busybox:latest
bin/berth system check
