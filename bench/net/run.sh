#!/usr/bin/env bash
# bench/net: what berth's bridge networking costs.
#  1. Throughput (iperf3, TCP, one stream) on berth's paths vs the same paths built by hand
#     without berth, as ratios:
#     - container to container on berth's default bridge, vs two netns joined by one veth
#       pair, and vs two netns on a plain bridge (no berth rules);
#     - host to a published port (127.0.0.1:PORT -> DNAT -> container), vs a netns behind a
#       plain bridge with one nft DNAT rule in output and a masquerade, made here.
#     busybox has no iperf3 and Debian's is dynamic, so iperf3 runs from the host in the
#     container's network namespace (`ip netns exec`, the netns berth made under /run/netns
#     and reports as SandboxKey): the packets take the container's veth, bridge and firewall
#     path; only the process's mount/pid namespaces differ, which do not touch the data path.
#  2. Time networking adds to `berth run --rm localhost/busybox true` (hyperfine): default
#     bridge vs --network none, and the bridge with a published port (-p 80).
# The daemon gets its own --bridge, --bip, --cgroup-parent, data and exec roots; the trap
# removes containers, the daemon, iperf3 servers, berth's and the baseline's bridges,
# veths, netns, nft tables and iptables chains, cgroups, mounts and the temp dir.
# Writes bench/results/net.md and prints it. Knobs: FIREWALL=nftables|iptables (default
# nftables), SECONDS_PER_RUN=iperf3 -t (default 5), REPEAT=iperf3 runs per path (default 3,
# interleaved), RUNS=hyperfine runs (default 20), OUT=results file (default
# bench/results/net.md). About 2 min with the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
FIREWALL=${FIREWALL:-nftables}
T=${SECONDS_PER_RUN:-5}
REPEAT=${REPEAT:-3}
RUNS=${RUNS:-20}
OUT=${OUT:-bench/results/net.md}
IMAGE=localhost/busybox:latest
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -f dist/default-image.tar ] && [ -f dist/berth.cjs ] || { echo "run npm run build first" >&2; exit 1; }
for t in iperf3 hyperfine ip nft node; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install iperf3 hyperfine)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/berth-bench-net.XXXXXX)
id=$$
x=$((id % 200 + 20))
parent=berth-bench-net-$id
bridge=bbn$id                # berth's default bridge for this daemon
owner=berth-$bridge          # what berth names its tables, chains and netns after
bip=10.243.$x.1/24
sock="$work/berth.sock"
export BERTH_HOST="unix://$sock"
# The baseline, made by hand: names and subnets of its own.
nsa=bbn-a-$id; nsb=bbn-b-$id; nsc=bbn-c-$id; nsd=bbn-d-$id; nsp=bbn-p-$id
brplain=bbnpl$id; brpub=bbnpu$id
basetable=bbn-base-$id
PUB=$((25000 + id % 5000))   # berth's published port
BASEPUB=$((PUB + 1))         # the baseline's DNAT port
ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)
for s in 10.243.$x 10.244.$x 10.245.$x 10.246.$x; do
  if ip -4 route | grep -q "^$s\."; then echo "subnet $s.0/24 is in use here; rerun (another pid picks another)" >&2; exit 1; fi
done

cleanup() {
  set +e
  if [ -n "${daemon_pid:-}" ]; then
    bin/berth ps -aq 2>/dev/null | xargs -r bin/berth rm -f >/dev/null 2>&1
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  for f in "$work"/iperf-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  for f in "$work"/x/c/*/helper.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  # berth's objects: netns named <owner>-<id>, veths on its bridge, the bridge, its firewall.
  for n in $(ls /run/netns 2>/dev/null); do case "$n" in "$owner"-*) ip netns del "$n" ;; esac; done
  for p in $(ls "/sys/class/net/$bridge/brif" 2>/dev/null); do ip link del "$p"; done
  ip link del "$bridge" 2>/dev/null
  nft delete table inet "$owner" 2>/dev/null
  nft delete table ip "$owner-nat" 2>/dev/null
  base=$(echo "$owner" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9\n' '-' | cut -c1-20)
  for pair in filter:FORWARD:FWD nat:PREROUTING:PRE nat:OUTPUT:OUT nat:POSTROUTING:POST; do
    IFS=: read -r tb bi ch <<<"$pair"
    while iptables -w -t "$tb" -D "$bi" -j "$base-$ch" 2>/dev/null; do :; done
  done
  for pair in filter:FWD nat:PRE nat:OUT nat:DNAT nat:POST; do
    IFS=: read -r tb ch <<<"$pair"
    iptables -w -t "$tb" -F "$base-$ch" 2>/dev/null; iptables -w -t "$tb" -X "$base-$ch" 2>/dev/null
  done
  # The baseline's objects.
  for n in "$nsa" "$nsb" "$nsc" "$nsd" "$nsp"; do ip netns del "$n" 2>/dev/null; done
  ip link del "$brplain" 2>/dev/null; ip link del "$brpub" 2>/dev/null
  nft delete table ip "$basetable" 2>/dev/null
  for d in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
    sleep 0.2
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$work"
  echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- berth ---------------------------------------------------------------------------
node dist/berth.cjs daemon --data-root "$work/data" --exec-root "$work/x" --host "unix://$sock" \
  --cgroup-parent "$parent" --bridge "$bridge" --bip "$bip" --firewall-backend "$FIREWALL" >>"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 150); do bin/berth version >/dev/null 2>&1 && break; sleep 0.1; done
bin/berth version >/dev/null 2>&1 || { echo "daemon did not start" >&2; cat "$work/daemon.log" >&2; exit 1; }
bin/berth load -q -i dist/default-image.tar >/dev/null
bin/berth run -d --name srv -p "$PUB:5201" "$IMAGE" sleep 3600 >/dev/null
bin/berth run -d --name cli "$IMAGE" sleep 3600 >/dev/null
netns_of() { basename "$(bin/berth inspect -f '{{.NetworkSettings.SandboxKey}}' "$1")"; }
ns_srv=$(netns_of srv); ns_cli=$(netns_of cli)
srv_ip=$(bin/berth inspect -f '{{.NetworkSettings.IPAddress}}' srv)
[ -e "/run/netns/$ns_srv" ] && [ -e "/run/netns/$ns_cli" ] || { echo "container netns not found under /run/netns" >&2; exit 1; }

# --- the baseline ----------------------------------------------------------------------
# (a) two netns joined by one veth pair
ip netns add "$nsa"; ip netns add "$nsb"
ip link add bbnva$id netns "$nsa" type veth peer name bbnvb$id netns "$nsb"
ip -n "$nsa" addr add 10.244.$x.1/24 dev bbnva$id; ip -n "$nsb" addr add 10.244.$x.2/24 dev bbnvb$id
for n in "$nsa" "$nsb"; do ip -n "$n" link set lo up; done
ip -n "$nsa" link set bbnva$id up; ip -n "$nsb" link set bbnvb$id up
# (b) two netns on a plain bridge, no rules of ours
ip link add "$brplain" type bridge; ip link set "$brplain" up
for pair in "$nsc:2" "$nsd:3"; do
  n=${pair%%:*}; last=${pair##*:}
  ip netns add "$n"; ip -n "$n" link set lo up
  ip link add bbnh$last$id type veth peer name eth0 netns "$n"
  ip link set bbnh$last$id master "$brplain" up
  ip -n "$n" addr add 10.245.$x.$last/24 dev eth0; ip -n "$n" link set eth0 up
done
# (c) a netns behind a bridge with a DNAT rule for 127.0.0.1:BASEPUB, as berth builds it:
#     output DNAT, route_localnet on the bridge, masquerade of 127.0.0.0/8 out of it.
ip link add "$brpub" type bridge; ip addr add 10.246.$x.1/24 dev "$brpub"; ip link set "$brpub" up
echo 1 >"/proc/sys/net/ipv4/conf/$brpub/route_localnet"
ip netns add "$nsp"; ip -n "$nsp" link set lo up
ip link add bbnhp$id type veth peer name eth0 netns "$nsp"
ip link set bbnhp$id master "$brpub" up
ip -n "$nsp" addr add 10.246.$x.2/24 dev eth0; ip -n "$nsp" link set eth0 up
ip -n "$nsp" route add default via 10.246.$x.1
nft -f - <<NFT
table ip $basetable {
  chain output { type nat hook output priority -100; policy accept; ip daddr 127.0.0.1 tcp dport $BASEPUB dnat to 10.246.$x.2:5201; }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; oifname "$brpub" ip saddr 127.0.0.0/8 masquerade; }
}
NFT

# --- iperf3 servers, one per path --------------------------------------------------------
serve() { ip netns exec "$1" iperf3 -s -D -p 5201 --pidfile "$work/iperf-$1.pid"; }
for n in "$ns_srv" "$nsa" "$nsc" "$nsp"; do serve "$n"; done
sleep 0.5
# client NETNS|- HOST PORT: bits/s received, from iperf3's JSON.
client() {
  local pre=(); [ "$1" != - ] && pre=(ip netns exec "$1")
  "${pre[@]}" iperf3 -c "$2" -p "$3" -t "$T" -O 1 -J >"$work/iperf.json"
  node -e 'const j=require(process.argv[1]); if (j.error) throw new Error(j.error); console.log(j.end.sum_received.bits_per_second)' "$work/iperf.json"
}
declare -A bps
for r in $(seq "$REPEAT"); do
  bps[berth_c2c]+="$(client "$ns_cli" "$srv_ip" 5201) "
  bps[veth_c2c]+="$(client "$nsb" 10.244.$x.1 5201) "
  bps[bridge_c2c]+="$(client "$nsd" 10.245.$x.2 5201) "
  bps[berth_pub]+="$(client - 127.0.0.1 "$PUB") "
  bps[base_pub]+="$(client - 127.0.0.1 "$BASEPUB") "
done

# --- time networking adds to run --rm ---------------------------------------------------
bin/berth run --rm "$IMAGE" true
hyperfine --style basic --warmup 3 --runs "$RUNS" --export-json "$work/hf.json" \
  -n none "bin/berth run --rm --network none $IMAGE true" \
  -n bridge "bin/berth run --rm $IMAGE true" \
  -n bridge-p "bin/berth run --rm -p 80 $IMAGE true"

# --- results -----------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
ver() { "$@" 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1; }
versions="kernel $(uname -r), node $(node -p 'process.versions.node'), iperf3 $(ver iperf3 --version), hyperfine $(ver hyperfine --version), nft $(ver nft --version), bridge-nf-call-iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo absent)"
node - "$work/hf.json" "$FIREWALL" "$T" "$REPEAT" "$RUNS" "${bps[berth_c2c]}" "${bps[veth_c2c]}" "${bps[bridge_c2c]}" "${bps[berth_pub]}" "${bps[base_pub]}" \
  "$versions" "$load_start / $(cut -d' ' -f1-3 /proc/loadavg)" <<'JS' | tee "$OUT"
const [hf, fw, t, repeat, runs, bc, vc, brc, bp, basep, versions, load] = process.argv.slice(2);
const nums = (s) => s.trim().split(/\s+/).map(Number);
const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
const g = (v) => `${(mean(v) / 1e9).toFixed(2)} (${(Math.min(...v) / 1e9).toFixed(2)}–${(Math.max(...v) / 1e9).toFixed(2)})`;
const [BC, VC, BRC, BP, BASEP] = [bc, vc, brc, bp, basep].map(nums);
console.log(`### Throughput: iperf3 TCP, one stream, ${t} s per run (first second omitted), ${repeat} interleaved runs per path; berth firewall backend ${fw}\n`);
console.log('| path | Gbit/s, mean (min–max) | berth / this |');
console.log('|---|---|---|');
console.log(`| berth: container to container on the default bridge | ${g(BC)} | 1.00 |`);
console.log(`| plain: two netns joined by one veth pair | ${g(VC)} | ${(mean(BC) / mean(VC)).toFixed(2)} |`);
console.log(`| plain: two netns on a bridge, no rules of ours | ${g(BRC)} | ${(mean(BC) / mean(BRC)).toFixed(2)} |`);
console.log(`| berth: host to a published port (127.0.0.1:PORT, DNAT) | ${g(BP)} | 1.00 |`);
console.log(`| plain: netns behind a bridge, one nft DNAT rule + masquerade | ${g(BASEP)} | ${(mean(BP) / mean(BASEP)).toFixed(2)} |`);
const r = Object.fromEntries(require(hf).results.map((x) => [x.command, x]));
const ms = (x) => `${(x.mean * 1000).toFixed(1)} ± ${(x.stddev * 1000).toFixed(1)}`;
console.log(`\n### \`berth run --rm localhost/busybox true\` (hyperfine, ${runs} runs, 3 warmup)\n`);
console.log('| network | wall time, mean ± sd (ms) | added vs none (ms) | / none |');
console.log('|---|---|---|---|');
for (const [k, label] of [['none', '`--network none` (loopback only)'], ['bridge', 'default bridge'], ['bridge-p', 'default bridge, `-p 80`']]) {
  const x = r[k];
  console.log(`| ${label} | ${ms(x)} | ${((x.mean - r.none.mean) * 1000).toFixed(1)} | ${(x.mean / r.none.mean).toFixed(2)} |`);
}
console.log(`\n${new Date().toISOString().slice(0, 10)}, ${require('os').cpus().length} cores, load average at start / end ${load}; ${versions}`);
JS
