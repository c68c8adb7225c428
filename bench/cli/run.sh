#!/usr/bin/env bash
# bench/cli: what a user typing commands waits for. On the same image (the embedded
# default busybox, dist/default-image.tar from `npm run build`):
#  1. `run --rm IMAGE sh -c :` (hyperfine), each with --network none and the default network:
#     - berth run --rm (the Node CLI)
#     - docker run --rm: the real docker CLI with DOCKER_HOST at berth's socket
#     - podman run --rm (runtime runc; the ulimits this machine needs; netavark bridge by default)
#  2. `ps` latency with 0 and 20 running containers: berth ps and docker ps against berth,
#     and podman ps (with 20 podman containers of its own) as the reference.
# The daemon gets its own data root, cgroup parent, bridge and subnet; podman keeps its
# state under the same temp dir. The trap removes containers, the daemon, mounts, cgroups,
# berth's bridge, netns and firewall tables, and what netavark added (only if it was not
# there before). Writes bench/results/cli.md; prints it. RUNS=N (default 20), N=containers
# for the ps rows (default 20).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-20}
N=${N:-20}
IMAGE=localhost/busybox:latest
[ -f dist/default-image.tar ] && [ -x dist/berth-helper ] && [ -f dist/berth.cjs ] || { echo "run npm run build first" >&2; exit 1; }
for t in docker podman conmon runc hyperfine ip nft; do
  command -v "$t" >/dev/null || { echo "missing $t (docker CLI; apt-get install podman runc hyperfine nftables)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/berth-bench-cli.XXXXXX)
parent=berth-bench-cli-$$
sock="$work/berth.sock"
# A bridge and /24 of our own (never berth0 or a test daemon's): owner tag as net-bridge's ownerOf.
bridge=bbc$(printf '%05d' $(($$ % 100000)))
bip="10.250.$(($$ % 250)).1/24"
owner="berth-$bridge"
export BERTH_HOST="unix://$sock"
export DOCKER_HOST="unix://$sock" DOCKER_CONFIG="$work/docker-config"
unset DOCKER_CONTEXT
mkdir -p "$DOCKER_CONFIG" && echo "{}" >"$DOCKER_CONFIG/config.json"  # podman reads it too
P=(podman --root "$work/p/root" --runroot "$work/p/run" --tmpdir "$work/p/tmp" --network-config-dir "$work/p/net"
   --cgroup-manager cgroupfs --events-backend file --runtime runc --storage-driver overlay)
PRUN=(--cgroup-parent "/$parent/podman" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

# Host state netavark may change (podman's default network): remember it to undo only what we did.
. bench/lib/podman-host-state.sh   # the cd above put us at the repository root
podman_host_state_record
ip link show "$bridge" >/dev/null 2>&1 && { echo "bridge $bridge already exists" >&2; exit 1; }

remove_berth_networking() {
  for ns in $(ls /run/netns 2>/dev/null); do case $ns in "$owner"-*) ip netns del "$ns" 2>/dev/null;; esac; done
  if [ -d "/sys/class/net/$bridge/brif" ]; then
    for p in $(ls "/sys/class/net/$bridge/brif"); do ip link del "$p" 2>/dev/null; done
  fi
  ip link del "$bridge" 2>/dev/null
  nft delete table inet "$owner" 2>/dev/null
  nft delete table ip "$owner-nat" 2>/dev/null
  local base; base=$(echo "$owner" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9\n' '-' | cut -c1-20)
  for bin in iptables iptables-legacy; do
    command -v "$bin" >/dev/null || continue
    for spec in filter:FORWARD:FWD nat:PREROUTING:PRE nat:OUTPUT:OUT nat:POSTROUTING:POST; do
      IFS=: read -r t b c <<<"$spec"
      for _ in 1 2 3 4 5; do "$bin" -w -t "$t" -D "$b" -j "$base-$c" 2>/dev/null || break; done
    done
    for spec in filter:FWD nat:PRE nat:OUT nat:DNAT nat:POST; do
      IFS=: read -r t c <<<"$spec"
      "$bin" -w -t "$t" -F "$base-$c" 2>/dev/null; "$bin" -w -t "$t" -X "$base-$c" 2>/dev/null
    done
  done
}

cleanup() {
  set +e
  if [ -n "${daemon_pid:-}" ]; then
    bin/berth ps -aq 2>/dev/null | xargs -r bin/berth rm -f >/dev/null 2>&1
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  for f in "$work"/x/c/*/helper.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  [ -d "$work/p" ] && "${P[@]}" rm -af -t 0 >/dev/null 2>&1
  for d in /sys/fs/cgroup/*/"$parent"; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
    sleep 0.2
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  remove_berth_networking
  rm -rf "$work"
  podman_host_state_restore
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

node dist/berth.cjs daemon --data-root "$work/data" --exec-root "$work/x" --host "unix://$sock" \
  --cgroup-parent "$parent" --bridge "$bridge" --bip "$bip" >>"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do bin/berth version >/dev/null 2>&1 && break; sleep 0.1; done
bin/berth version >/dev/null 2>&1 || { echo "daemon did not start" >&2; cat "$work/daemon.log" >&2; exit 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
bin/berth load -q -i dist/default-image.tar >/dev/null
"${P[@]}" load -q -i dist/default-image.tar >/dev/null
# Every contender works before anything is timed.
for net in none bridge; do
  [ "$(bin/berth run --rm --network $net "$IMAGE" echo ok)" = ok ]
  [ "$(docker run --rm --network $net "$IMAGE" echo ok)" = ok ]
done
[ "$("${P[@]}" run --rm --network none "${PRUN[@]}" "$IMAGE" echo ok)" = ok ]
[ "$("${P[@]}" run --rm "${PRUN[@]}" "$IMAGE" echo ok)" = ok ]

hf=(hyperfine --style basic --warmup 3 --runs "$RUNS")
# The single binary (SEA with its V8 code cache) is what a router runs; node + bundle is
# what bin/berth runs here. Both CLIs talk to the same daemon.
SEA=dist/berth-linux-x64
[ -x "$SEA" ] || { echo "no $SEA: run npm run build:binaries" >&2; exit 1; }
[ "$("$SEA" run --rm --network none "$IMAGE" echo ok)" = ok ]
# --- 1. run --rm sh -c : -------------------------------------------------------------
"${hf[@]}" --export-json "$work/hf-run.json" \
  -n berth-none "bin/berth run --rm --network none $IMAGE sh -c :" \
  -n sea-none "$SEA run --rm --network none $IMAGE sh -c :" \
  -n docker-none "docker run --rm --network none $IMAGE sh -c :" \
  -n podman-none "${P[*]} run --rm --network none ${PRUN[*]} $IMAGE sh -c :" \
  -n berth-bridge "bin/berth run --rm $IMAGE sh -c :" \
  -n sea-bridge "$SEA run --rm $IMAGE sh -c :" \
  -n docker-bridge "docker run --rm $IMAGE sh -c :" \
  -n podman-bridge "${P[*]} run --rm ${PRUN[*]} $IMAGE sh -c :"
[ -z "$(bin/berth ps -aq)" ] || { echo "containers left behind by run --rm" >&2; exit 1; }

# --- 2. ps -----------------------------------------------------------------------------
ps_cmds() {
  "${hf[@]}" --export-json "$work/hf-ps-$1.json" \
    -n "berth-ps-$1" "bin/berth ps" \
    -n "sea-ps-$1" "$SEA ps" \
    -n "docker-ps-$1" "docker ps" \
    -n "podman-ps-$1" "${P[*]} ps"
}
ps_cmds 0
for i in $(seq "$N"); do
  bin/berth run -d --name "c$i" "$IMAGE" sleep 600 >/dev/null
  "${P[@]}" run -d "${PRUN[@]}" --name "c$i" "$IMAGE" sleep 600 >/dev/null
done
[ "$(bin/berth ps -q | wc -l)" = "$N" ] && [ "$(docker ps -q | wc -l)" = "$N" ] && [ "$("${P[@]}" ps -q | wc -l)" = "$N" ] \
  || { echo "expected $N running containers everywhere" >&2; exit 1; }
ps_cmds "$N"
daemon_hwm_kb=$(awk '$1=="VmHWM:"{print $2}' "/proc/$daemon_pid/status")

# --- results -----------------------------------------------------------------------------
mkdir -p bench/results
ver() { "$@" 2>/dev/null | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1; }
versions="node $(node -p 'process.versions.node'), docker CLI $(docker version -f '{{.Client.Version}}' 2>/dev/null), podman $(ver podman --version), runc $(ver runc --version), conmon $(ver conmon --version), hyperfine $(ver hyperfine --version)"
node - "$work" "$RUNS" "$N" "$daemon_hwm_kb" "$versions" "$load_start / $(cut -d' ' -f1-3 /proc/loadavg)" <<'JS' | tee bench/results/cli.md
const [work, runs, n, hwm, versions, load] = process.argv.slice(2);
const r = {};
for (const f of ['run', 'ps-0', `ps-${n}`]) for (const x of require(`${work}/hf-${f}.json`).results) r[x.command] = x;
const ms = (x) => `${(x.mean * 1000).toFixed(1)} ± ${(x.stddev * 1000).toFixed(1)}`;
const ratio = (a, b) => (r[a].mean / r[b].mean).toFixed(2);
console.log(`### \`run --rm IMAGE sh -c :\` (hyperfine, ${runs} runs, 3 warmup), wall time mean ± sd (ms)\n`);
console.log('| network | berth CLI (node + bundle) | berth single binary | docker CLI → berth | podman | berth / podman | single binary / podman | docker→berth / podman |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [net, label] of [['none', '`--network none`'], ['bridge', 'default (berth: its bridge; podman: netavark)']]) {
  console.log(`| ${label} | ${ms(r[`berth-${net}`])} | ${ms(r[`sea-${net}`])} | ${ms(r[`docker-${net}`])} | ${ms(r[`podman-${net}`])} | ${ratio(`berth-${net}`, `podman-${net}`)} | ${ratio(`sea-${net}`, `podman-${net}`)} | ${ratio(`docker-${net}`, `podman-${net}`)} |`);
}
console.log(`\n### \`ps\` (hyperfine, ${runs} runs, 3 warmup), wall time mean ± sd (ms)\n`);
console.log('| running containers | `berth ps` (node + bundle) | single binary `ps` | `docker ps` → berth | `podman ps` | berth / podman | single binary / podman | docker→berth / podman |');
console.log('|---|---|---|---|---|---|---|---|');
for (const k of ['0', n]) {
  console.log(`| ${k} | ${ms(r[`berth-ps-${k}`])} | ${ms(r[`sea-ps-${k}`])} | ${ms(r[`docker-ps-${k}`])} | ${ms(r[`podman-ps-${k}`])} | ${ratio(`berth-ps-${k}`, `podman-ps-${k}`)} | ${ratio(`sea-ps-${k}`, `podman-ps-${k}`)} | ${ratio(`docker-ps-${k}`, `podman-ps-${k}`)} |`);
}
console.log(`\nberth daemon VmHWM over the whole run: ${(hwm / 1024).toFixed(1)} MB`);
console.log(`\n${new Date().toISOString().slice(0, 10)}, ${require('os').cpus().length} cores, load average at start / end ${load}; ${versions}`);
JS
