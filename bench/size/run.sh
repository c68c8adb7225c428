#!/usr/bin/env bash
# bench/size: what berth costs on a router's flash and RAM, next to OpenWrt's docker stack.
#  1. Per target (build/targets.json): the JS bundle (dist/berth.cjs), the helper
#     (dist/helpers/berth-helper-NAME), the Node SEA single binary (dist/BINARY; MIPS has
#     none: no Node.js exists for MIPS), the .ipk (dist/ipk) and its installed size (the ipk
#     control's Installed-Size, bytes). OpenWrt's docker stack: dockerd 14.8 MB + docker
#     11.2 MB + containerd 31.4 MB + runc 3.1 MB installed = 60.5 MB.
#  2. Daemon idle RSS: VmRSS of `berth daemon` 3 s after start, per packaging option: node
#     dist/berth.cjs, dist/berth-linux-x64 (the SEA binary as shipped, with a V8 code cache),
#     and the same SEA without the code cache (built into the temp dir with
#     `build/binaries.mjs --no-code-cache --out`, cached blob: a few seconds). Each daemon has
#     --bridge none, no firewall, its own data/exec roots, socket and cgroup parent; all three
#     stay up for step 3; the trap stops them and removes all of that.
#  3. Start time per packaging option: `berth version` (client start + one API round trip to
#     that option's own daemon) and `berth --help` (start only), plus `node -e 0` (Node's own
#     start, the floor). hyperfine through bench/size/rounds.mjs: ROUNDS rounds (default 5) of
#     RUNS runs (default 10) with the command order rotated per round, so load from other
#     processes spreads over all options; mean ± sd of the pooled runs, median, user+sys CPU,
#     and the ratio to node + bundle. The load average before and after goes in the result.
# Needs `npm run build:all` outputs and hyperfine. Writes bench/results/size.md; prints it.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-10}
ROUNDS=${ROUNDS:-5}
command -v hyperfine >/dev/null || { echo "missing hyperfine (apt-get install hyperfine)" >&2; exit 1; }
[ -f dist/berth.cjs ] && [ -x dist/berth-linux-x64 ] || { echo "run npm run build:all first" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-bench-size.XXXXXX)
parent=berth-bench-size-$$
daemon_pids=()
out=bench/results/size.md

stop_daemons() {
  local pid
  for pid in "${daemon_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${daemon_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  daemon_pids=()
}
cleanup() {
  stop_daemons
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

# --- 2. daemon idle RSS, 3. start time ---
node build/binaries.mjs --no-code-cache --out "$work/plain" x86_64 >&2
start_daemon() { # label command...
  local label=$1; shift
  local sock="$work/$label.sock"
  "$@" daemon --data-root "$work/$label/data" --exec-root "$work/$label/x" --host "unix://$sock" \
    --cgroup-parent "$parent-$label" --bridge none --firewall-backend none >"$work/$label.log" 2>&1 &
  daemon_pids+=($!)
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || { cat "$work/$label.log" >&2; echo "daemon ($label) did not start" >&2; exit 1; }
}
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

labels=(node sea plain)
declare -A cmds=([node]="node dist/berth.cjs" [sea]="dist/berth-linux-x64" [plain]="$work/plain/berth-linux-x64")
declare -A names=([node]="node dist/berth.cjs" [sea]="dist/berth-linux-x64 (SEA, code cache: as shipped)" [plain]="SEA without code cache")
declare -A rss=()
for label in "${labels[@]}"; do
  # shellcheck disable=SC2086
  start_daemon "$label" ${cmds[$label]}
  # 3 s after start (the socket appears within a few hundred ms of it).
  sleep 3
  rss[$label]=$(rss_mb "${daemon_pids[-1]}")
done

timed=()
for label in "${labels[@]}"; do timed+=("${cmds[$label]} -H unix://$work/$label.sock version" "${cmds[$label]} --help"); done
timed+=("node -e 0")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
node bench/size/rounds.mjs "$work/start.json" "$ROUNDS" "$RUNS" "${timed[@]}"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
stop_daemons

# cells COMMAND [BASE_COMMAND] -> "mean ± sd (median) | cpu ± sd | ratio of means ± sd"
start_cells() {
  node -e '
    const s = require(process.argv[1]); const r = s[process.argv[2]]; const b = s[process.argv[3]];
    const ratio = b ? r.mean / b.mean : 1;
    const rsd = b ? ratio * Math.hypot(r.sd / r.mean, b.sd / b.mean) : 0;
    console.log(`${r.mean.toFixed(1)} ± ${r.sd.toFixed(1)} (${r.median.toFixed(1)}) | ${r.cpu.toFixed(1)} ± ${r.cpuSd.toFixed(1)} | ${b ? `${ratio.toFixed(2)} ± ${rsd.toFixed(2)}` : "1"}`);
  ' "$work/start.json" "$1" "${2:-}"
}
start_row() { # label
  local c=${cmds[$1]}
  echo "| ${names[$1]} | ${rss[$1]} | $(start_cells "$c -H unix://$work/$1.sock version" "node dist/berth.cjs -H unix://$work/node.sock version") | $(start_cells "$c --help" "node dist/berth.cjs --help") |"
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
  echo "Start times: ms, mean ± sd of $((ROUNDS * RUNS)) runs ($ROUNDS rounds of $RUNS, order rotated; median in brackets), user+sys CPU ms (mean ± sd of the $ROUNDS round means: hyperfine keeps CPU time per command and round only), and the ratio of means to node + bundle. Load average (1, 5, 15 min) $load_before before, $load_after after."
  echo
  echo "| packaging | daemon idle VmRSS 3 s after start (MB) | \`berth version\` | CPU | × node | \`berth --help\` | CPU | × node |"
  echo "|---|---|---|---|---|---|---|---|"
  for label in "${labels[@]}"; do start_row "$label"; done
  echo "| \`node -e 0\` (Node alone, the floor) | | | | | $(start_cells "node -e 0" "node dist/berth.cjs --help") |"
} >"$out"
cat "$out"
