#!/usr/bin/env bash
# bench/size: what berth costs on a router's flash and RAM, next to OpenWrt's docker stack.
#  1. Per target (build/targets.json): the JS bundle (dist/berth.cjs), the helper
#     (dist/helpers/berth-helper-NAME), the Node SEA single binary (dist/BINARY; MIPS has
#     none: no Node.js exists for MIPS), the .ipk (dist/ipk) and its installed size (the ipk
#     control's Installed-Size, bytes). OpenWrt's docker stack: dockerd 14.8 MB + docker
#     11.2 MB + containerd 31.4 MB + runc 3.1 MB installed = 60.5 MB.
#  2. Daemon idle RSS: VmRSS of `berth daemon` 3 s after start, per packaging option
#     (node dist/berth.cjs, dist/berth-linux-x64), with --bridge none, no firewall, its own
#     data/exec roots, socket and cgroup parent; the trap stops it and removes all of that.
#  3. `berth version` (client + one API round trip to that daemon) start time per
#     packaging option, hyperfine (RUNS=N, default 20; 3 warmup runs).
# Needs `npm run build:all` outputs and hyperfine. Writes bench/results/size.md; prints it.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-20}
command -v hyperfine >/dev/null || { echo "missing hyperfine (apt-get install hyperfine)" >&2; exit 1; }
[ -f dist/berth.cjs ] && [ -x dist/berth-linux-x64 ] || { echo "run npm run build:all first" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-bench-size.XXXXXX)
parent=berth-bench-size-$$
daemon_pid=
out=bench/results/size.md

stop_daemon() {
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=
  fi
}
cleanup() {
  stop_daemon
  # Children first: rmdir only removes empty cgroups, deepest first.
  find /sys/fs/cgroup -depth -type d -path "*/$parent*" -exec rmdir {} + 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
size_of() { [ -f "$1" ] && stat -c %s "$1" || echo ""; }
cell() { [ -n "$1" ] && mb "$1" || echo "–"; }

# --- 1. sizes ---
bundle=$(size_of dist/berth.cjs)
size_rows=()
while IFS=$'\t' read -r name openwrt binary; do
  helper=$(size_of "dist/helpers/berth-helper-$name")
  single=$([ "$binary" = null ] && echo "" || size_of "dist/$binary")
  ipk_file=$(ls dist/ipk/berth_*_"$openwrt".ipk 2>/dev/null | head -n1 || true)
  ipk=$(size_of "$ipk_file")
  installed=
  [ -z "$ipk_file" ] || installed=$(tar -xOzf "$ipk_file" ./control.tar.gz | tar -xzO ./control | awk '/^Installed-Size:/ { print $2 }')
  ratio=$([ -n "$installed" ] && awk -v i="$installed" 'BEGIN { printf "%.2f", i / 60.5e6 }' || echo "–")
  size_rows+=("| $name ($openwrt) | $(cell "$bundle") | $(cell "$helper") | $(cell "$single") | $(cell "$ipk") | $(cell "$installed") | $ratio |")
done < <(node -e 'for (const t of require("./build/targets.json").targets) console.log([t.name, t.openwrtArch, t.binary].join("\t"))')

# --- 2. daemon idle RSS, 3. berth version ---
start_daemon() { # label command...
  local label=$1; shift
  local sock="$work/$label.sock"
  "$@" daemon --data-root "$work/$label/data" --exec-root "$work/$label/x" --host "unix://$sock" \
    --cgroup-parent "$parent" --bridge none --firewall-backend none >"$work/$label.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || { cat "$work/$label.log" >&2; echo "daemon ($label) did not start" >&2; exit 1; }
}
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

declare -A rss=()
declare -A cmds=([node]="node dist/berth.cjs" [sea]="dist/berth-linux-x64")
for label in node sea; do
  # shellcheck disable=SC2086
  start_daemon "$label" ${cmds[$label]}
  # 3 s after start (the socket appears within a few hundred ms of it).
  sleep 3
  rss[$label]=$(rss_mb "$daemon_pid")
  export BERTH_HOST="unix://$work/$label.sock"
  hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/version-$label.json" "${cmds[$label]} version" >&2
  stop_daemon
done
version_row() { # label -> "mean ± sd"
  node -e 'const r = require(process.argv[1]).results[0]; console.log(`${(r.mean * 1000).toFixed(1)} ± ${(r.stddev * 1000).toFixed(1)}`)' "$work/version-$1.json"
}

node_version=$(node --version)
{
  echo "# bench/size results"
  echo
  echo "$(uname -m), $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), Node $node_version (host), hyperfine $(hyperfine --version | awk '{print $2}'); $(date -u +%Y-%m-%d)."
  echo
  echo "## Flash (MB, 10^6 bytes)"
  echo
  echo "| target | bundle (berth.cjs) | helper | single binary | ipk | installed | installed / docker stack (60.5 MB) |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${size_rows[@]}"
  echo "| OpenWrt docker stack (dockerd 14.8 + docker 11.2 + containerd 31.4 + runc 3.1) | | | | | 60.50 | 1.00 |"
  echo
  echo "MIPS targets ship no single binary: no Node.js exists for MIPS, so their ipk carries only berth.cjs, the helper and the default image, and the engine does not run there yet."
  echo
  echo "## Memory and start time (x86_64)"
  echo
  echo "| packaging | daemon idle VmRSS 3 s after start (MB) | \`berth version\` mean ± sd (ms), $RUNS runs |"
  echo "|---|---|---|"
  echo "| node dist/berth.cjs | ${rss[node]} | $(version_row node) |"
  echo "| dist/berth-linux-x64 (SEA) | ${rss[sea]} | $(version_row sea) |"
} >"$out"
cat "$out"
