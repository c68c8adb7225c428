#!/usr/bin/env bash
# bench/run: the cost of running a container, berth vs runc, crun and podman, on the
# same image (the embedded default busybox, dist/default-image.tar from `npm run build`).
#  1. Wall time of create + start + wait + remove of `sh -c :` (hyperfine):
#     - berth run --rm (the CLI: Node start-up, API calls, overlay mount, detached helper)
#     - berth through its API with curl (create, start, wait, DELETE: no Node CLI)
#     - runc run / crun run on an OCI bundle made from the image's layer (rootfs
#       directory + `runc spec`; no layer mount, no monitor process; fresh id per run)
#     - podman run --rm --network none, and with its default network (netavark bridge)
#  2. Memory: VmRSS (and PSS) of the berth-helper of each of N detached `sleep 60`
#     containers vs podman's conmon, and the daemon's RSS idle and with N containers.
# Everything lives under one temp dir and one cgroup parent; the trap removes
# containers, podman state, the daemon, mounts, cgroups and netavark's firewall chains.
# Writes bench/results/run.md; prints it. RUNS=N (default 20), N=containers (default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-20}
N=${N:-5}
IMAGE=localhost/busybox:latest
[ -f dist/default-image.tar ] && [ -x dist/berth-helper ] || { echo "run npm run build first" >&2; exit 1; }
for t in runc crun podman conmon hyperfine curl unshare; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install runc crun podman hyperfine)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/berth-bench-run.XXXXXX)
parent=berth-bench-$$
sock="$work/berth.sock"
export BERTH_HOST="unix://$sock"
# podman with every piece of state under $work; runc as its runtime (crun 1.8 refuses
# this host's hybrid cgroups), ulimits as this machine needs.
P=(podman --root "$work/p/root" --runroot "$work/p/run" --tmpdir "$work/p/tmp" --network-config-dir "$work/p/net"
   --cgroup-manager cgroupfs --events-backend file --runtime runc --storage-driver overlay)
PRUN=(--cgroup-parent "/$parent/podman" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

# Host state netavark may change (podman's default network): remember it to undo only what we did.
. bench/lib/podman-host-state.sh   # the cd above put us at the repository root
podman_host_state_record

cleanup() {
  set +e
  if [ -n "${daemon_pid:-}" ]; then
    bin/berth ps -aq 2>/dev/null | xargs -r bin/berth rm -f >/dev/null 2>&1
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  # Helpers left behind (daemon killed first): by their pid files only.
  for f in "$work"/x/c/*/helper.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  if [ -d "$work/p" ]; then
    "${P[@]}" rm -af -t 0 >/dev/null 2>&1
  fi
  for r in runc crun; do
    for id in $($r --root "$work/$r" list -q 2>/dev/null); do $r --root "$work/$r" delete -f "$id" >/dev/null 2>&1; done
  done
  # Cgroups under our parent: kill what is left in them (by pid), remove deepest first.
  for d in /sys/fs/cgroup/*/"$parent"; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
    sleep 0.2
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$work"
  podman_host_state_restore
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_daemon() {
  node ${DAEMON_NODE_FLAGS:-} dist/berth.cjs daemon --data-root "$work/data" --exec-root "$work/x" \
    --host "unix://$sock" --cgroup-parent "$parent" >>"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 100); do bin/berth version >/dev/null 2>&1 && return; sleep 0.1; done
  echo "daemon did not start" >&2; cat "$work/daemon.log" >&2; exit 1
}
stop_daemon() { kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=; }
kb() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status"; }
pss() { awk '$1=="Pss:"{print $2}' "/proc/$1/smaps_rollup"; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the image, three ways ---------------------------------------------------------
start_daemon
bin/berth load -q -i dist/default-image.tar >/dev/null
"${P[@]}" load -q -i dist/default-image.tar >/dev/null
mkdir -p "$work/img" "$work/bundle/rootfs"
tar -xf dist/default-image.tar -C "$work/img" manifest.json
layer=$(node -e 'const m=require(process.argv[1]);if(m[0].Layers.length!==1)throw new Error("expected one layer");console.log(m[0].Layers[0])' "$work/img/manifest.json")
tar -xOf dist/default-image.tar "$layer" | tar -x -C "$work/bundle/rootfs"
(cd "$work/bundle" && runc spec)
node - "$work/bundle/config.json" "/$parent/oci" <<'JS'
const fs = require('fs'); const [f, cg] = process.argv.slice(2);
const c = JSON.parse(fs.readFileSync(f));
c.process.args = ['sh', '-c', ':']; c.process.terminal = false; c.linux.cgroupsPath = cg;
fs.writeFileSync(f, JSON.stringify(c, null, 2));
JS

# berth through the API alone: create, start, wait (not-running: race-free after start), DELETE.
cat >"$work/api.sh" <<SH
#!/bin/bash
set -e
c() { curl -sf --unix-socket "$sock" -H 'Content-Type: application/json' "\$@"; }
id=\$(c -d '{"Image":"$IMAGE","Cmd":["sh","-c",":"]}' http://b/containers/create | sed -E 's/.*"Id":"([0-9a-f]+)".*/\1/')
c -X POST "http://b/containers/\$id/start"
c -X POST "http://b/containers/\$id/wait?condition=not-running" | grep -q '"StatusCode":0'
c -X DELETE "http://b/containers/\$id"
SH
chmod +x "$work/api.sh"
bin/berth run --rm "$IMAGE" sh -c 'exit 0'
"$work/api.sh"

# --- 1. wall time ------------------------------------------------------------------
hf=(hyperfine --style basic --warmup 3 --runs "$RUNS")
"${hf[@]}" --export-json "$work/hf-main.json" \
  -n berth "bin/berth run --rm $IMAGE sh -c :" \
  -n berth-api "$work/api.sh" \
  -n runc "runc --root $work/runc run -b $work/bundle r\$\$ </dev/null" \
  -n podman-none "${P[*]} run --rm --network none ${PRUN[*]} $IMAGE sh -c :" \
  -n podman-bridge "${P[*]} run --rm ${PRUN[*]} $IMAGE sh -c :"
berth_hwm_kb=$(kb "$daemon_pid" VmHWM)
# crun 1.8 refuses hybrid cgroup hosts; in a private mount namespace without the (almost
# empty) cgroup2 mount it sees plain cgroup v1 and works. The host's mounts are untouched.
unshare -m --propagation private bash -c 'umount /sys/fs/cgroup/unified && "$@"' _ \
  "${hf[@]}" --export-json "$work/hf-crun.json" \
  -n crun "crun --root $work/crun run -b $work/bundle c\$\$ </dev/null"
stop_daemon

# --- 2. memory -----------------------------------------------------------------------
start_daemon
sleep 2
idle_kb=$(kb "$daemon_pid" VmRSS)
for i in $(seq "$N"); do bin/berth run -d --name "m$i" "$IMAGE" sleep 60 >/dev/null; done
sleep 1
helpers=()
for f in "$work"/x/c/*/helper.pid; do helpers+=("$(cat "$f")"); done
[ "${#helpers[@]}" = "$N" ] || { echo "expected $N helper.pid files, found ${#helpers[@]}" >&2; exit 1; }
helper_rss=(); helper_pss=()
for p in "${helpers[@]}"; do
  [ "$(cat /proc/$p/comm)" = berth-helper ] || { echo "pid $p is not a berth-helper" >&2; exit 1; }
  helper_rss+=("$(kb "$p" VmRSS)"); helper_pss+=("$(pss "$p")")
done
with_kb=$(kb "$daemon_pid" VmRSS)
bin/berth rm -f $(bin/berth ps -q) >/dev/null
stop_daemon

for i in $(seq "$N"); do "${P[@]}" run -d --network none "${PRUN[@]}" --name "m$i" "$IMAGE" sleep 60 >/dev/null; done
sleep 1
conmon_rss=(); conmon_pss=()
for i in $(seq "$N"); do
  p=$("${P[@]}" inspect -f '{{.State.ConmonPid}}' "m$i")
  [ "$(cat /proc/$p/comm)" = conmon ] || { echo "pid $p is not conmon" >&2; exit 1; }
  conmon_rss+=("$(kb "$p" VmRSS)"); conmon_pss+=("$(pss "$p")")
done
"${P[@]}" rm -f -t 0 $(seq -f 'm%g' "$N") >/dev/null

# --- results -------------------------------------------------------------------------
mkdir -p bench/results
ver() { "$@" 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1; }
versions="node $(node -p 'process.versions.node'), runc $(ver runc --version), crun $(ver crun --version), podman $(ver podman --version), conmon $(ver conmon --version), hyperfine $(ver hyperfine --version)"
node - "$work/hf-main.json" "$work/hf-crun.json" "$RUNS" "$N" "$idle_kb" "$with_kb" "$berth_hwm_kb" \
  "${helper_rss[*]}" "${helper_pss[*]}" "${conmon_rss[*]}" "${conmon_pss[*]}" "$versions" "$load_start / $(cut -d' ' -f1-3 /proc/loadavg)" <<'JS' | tee bench/results/run.md
const [main, crunF, runs, n, idle, withN, hwm, hRss, hPss, cRss, cPss, versions, load] = process.argv.slice(2);
const r = Object.fromEntries([...require(main).results, ...require(crunF).results].map((x) => [x.command, x]));
const ms = (x) => `${(x.mean * 1000).toFixed(1)} ± ${(x.stddev * 1000).toFixed(1)}`;
const b = r.berth, a = r['berth-api'];
const label = {
  berth: '`berth run --rm` (CLI)',
  'berth-api': 'berth API via curl (create, start, wait, DELETE)',
  runc: '`runc run` (bundle, no layer mount)',
  crun: '`crun run` (bundle, no layer mount)',
  'podman-none': '`podman run --rm --network none`',
  'podman-bridge': '`podman run --rm` (netavark bridge)',
};
console.log(`### create + start + wait + remove of \`sh -c :\` (hyperfine, ${runs} runs, 3 warmup)\n`);
console.log(`| tool | wall time, mean ± sd (ms) | berth CLI / tool | berth API / tool |`);
console.log(`|---|---|---|---|`);
for (const k of Object.keys(label)) {
  const x = r[k];
  console.log(`| ${label[k]} | ${ms(x)} | ${(b.mean / x.mean).toFixed(2)} | ${(a.mean / x.mean).toFixed(2)} |`);
}
const nums = (s) => s.split(' ').map(Number);
const mb = (kb) => (kb / 1024).toFixed(1);
const stat = (s) => { const v = nums(s); const mean = v.reduce((p, q) => p + q, 0) / v.length; return { mean, min: Math.min(...v), max: Math.max(...v) }; };
const f = (s) => { const x = stat(s); return `${x.mean.toFixed(0)} (${x.min}–${x.max})`; };
console.log(`\n### memory with ${n} detached \`sleep 60\` containers\n`);
console.log(`| measure | berth | podman | berth / podman |`);
console.log(`|---|---|---|---|`);
console.log(`| per-container monitor VmRSS, kB, mean (min–max): berth-helper vs conmon | ${f(hRss)} | ${f(cRss)} | ${(stat(hRss).mean / stat(cRss).mean).toFixed(2)} |`);
console.log(`| per-container monitor PSS, kB, mean (min–max) | ${f(hPss)} | ${f(cPss)} | ${(stat(hPss).mean / stat(cPss).mean).toFixed(2)} |`);
console.log(`| daemon VmRSS idle (fresh start, image loaded), MB | ${mb(idle)} | no daemon | |`);
console.log(`| daemon VmRSS with ${n} containers, MB | ${mb(withN)} | no daemon | |`);
console.log(`| daemon VmHWM over the timing runs, MB | ${mb(hwm)} | | |`);
console.log(`\n${new Date().toISOString().slice(0, 10)}, ${require('os').cpus().length} cores, load average at start / end ${load}; ${versions}`);
JS
