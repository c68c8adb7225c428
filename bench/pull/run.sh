#!/usr/bin/env bash
# bench/pull: berth pull vs `skopeo copy docker://... dir:` of the same multi-layer
# image (about 60 MB in 4 layers) from a local Debian docker-registry on 127.0.0.1.
# skopeo only downloads and verifies; berth also unpacks every layer onto disk (and
# fsyncs it), so a third peer does the same whole job: skopeo into an OCI layout,
# then `umoci raw unpack` of the root filesystem.
# Wall time with hyperfine (each run starts from an empty store), peak RSS with
# /usr/bin/time -v for skopeo and /proc/<pid>/status VmHWM for berth's daemon (the
# daemon does the pulling; the CLI only prints progress, its RSS is reported too).
# Writes bench/results/pull.md; prints the ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
port=$((20000 + RANDOM % 20000))
reg=127.0.0.1:$port
cleanup() {
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  [ -n "${reg_pid:-}" ] && kill "$reg_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/reg.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/reg}, delete: {enabled: true}}
http: {addr: $reg}
YML
docker-registry serve "$work/reg.yml" >"$work/reg.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.1; done

# The image: busybox plus three 20 MB layers of incompressible data.
umoci init --layout "$work/oci" >/dev/null
umoci new --image "$work/oci:big" >/dev/null
umoci unpack --image "$work/oci:big" "$work/b" >/dev/null
mkdir -p "$work/b/rootfs/bin" && cp /bin/busybox "$work/b/rootfs/bin/"
umoci repack --image "$work/oci:big" "$work/b" >/dev/null
for i in 1 2 3; do
  head -c 20000000 /dev/urandom >"$work/b/rootfs/data$i.bin"
  umoci repack --image "$work/oci:big" "$work/b" >/dev/null
done
umoci config --image "$work/oci:big" --config.cmd /bin/busybox --architecture amd64 --os linux >/dev/null
skopeo copy -q "oci:$work/oci:big" "docker://$reg/bench:big" --dest-tls-verify=false
size=$(du -sb "$work/reg" | cut -f1)

sock="$work/berth.sock"
start_daemon() {
  rm -rf "$work/data"
  node ${DAEMON_NODE_FLAGS:-} dist/berth.cjs daemon --data-root "$work/data" --exec-root "$work/exec" --host "unix://$sock" --bridge none "$@" >"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 100); do bin/berth -H "unix://$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
}
stop_daemon() { kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=; }

start_daemon
export BERTH_HOST="unix://$sock"
hyperfine --runs "$RUNS" --warmup 1 --export-json "$work/hf.json" \
  --prepare "bin/berth rmi -f $reg/bench:big >/dev/null 2>&1 || true; rm -rf $work/skopeo-dir $work/sk-oci $work/sk-rootfs" \
  -n berth "bin/berth pull -q $reg/bench:big" \
  -n skopeo "skopeo copy -q --src-tls-verify=false docker://$reg/bench:big dir:$work/skopeo-dir" \
  -n skopeo+umoci "skopeo copy -q --src-tls-verify=false docker://$reg/bench:big oci:$work/sk-oci:big && umoci raw unpack --image $work/sk-oci:big $work/sk-rootfs"
stop_daemon

# Peak memory: one pull each from a fresh start.
start_daemon
/usr/bin/time -v bin/berth pull -q "$reg/bench:big" 2>"$work/cli.time" >/dev/null
berth_daemon_kb=$(awk '/VmHWM/{print $2}' /proc/$daemon_pid/status)
berth_cli_kb=$(awk -F: '/Maximum resident/{gsub(/ /,"",$2); print $2}' "$work/cli.time")
stop_daemon
# Flash used by the pulled image: berth's store (unpacked layers + tar-split records), the
# same with the compressed blobs kept, and what skopeo + umoci leave (blobs + rootfs).
berth_store=$(du -sb "$work/data/image" | cut -f1)
start_daemon --keep-layer-blobs
bin/berth pull -q "$reg/bench:big" >/dev/null
berth_keep_store=$(du -sb "$work/data/image" | cut -f1)
stop_daemon
rm -rf "$work/sk-oci" "$work/sk-rootfs"
skopeo copy -q --src-tls-verify=false "docker://$reg/bench:big" "oci:$work/sk-oci:big"
umoci raw unpack --image "$work/sk-oci:big" "$work/sk-rootfs"
skopeo_umoci_store=$(du -sbc "$work/sk-oci" "$work/sk-rootfs" | tail -1 | cut -f1)
rm -rf "$work/skopeo-dir"
/usr/bin/time -v skopeo copy -q --src-tls-verify=false "docker://$reg/bench:big" "dir:$work/skopeo-dir" 2>"$work/skopeo.time"
skopeo_kb=$(awk -F: '/Maximum resident/{gsub(/ /,"",$2); print $2}' "$work/skopeo.time")

mkdir -p bench/results
node - "$work/hf.json" "$berth_daemon_kb" "$berth_cli_kb" "$skopeo_kb" "$size" "$RUNS" "$berth_store" "$berth_keep_store" "$skopeo_umoci_store" <<'JS' | tee bench/results/pull.md
const [file, daemonKb, cliKb, skopeoKb, size, runs, store, keepStore, skStore] = process.argv.slice(2);
const r = Object.fromEntries(require(file).results.map((x) => [x.command, x]));
const b = r.berth, s = r.skopeo, u = r['skopeo+umoci'];
const f = (x) => x.toFixed(3);
console.log(`| measure | berth | skopeo | berth / skopeo |`);
console.log(`|---|---|---|---|`);
console.log(`| wall time, mean ± sd (s), ${runs} runs | ${f(b.mean)} ± ${f(b.stddev)} | ${f(s.mean)} ± ${f(s.stddev)} | ${(b.mean / s.mean).toFixed(2)} |`);
console.log(`| wall time vs download + unpack (skopeo + umoci raw unpack), s | ${f(b.mean)} ± ${f(b.stddev)} | ${f(u.mean)} ± ${f(u.stddev)} | ${(b.mean / u.mean).toFixed(2)} |`);
console.log(`| peak RSS (MB): berth daemon vs skopeo | ${(daemonKb / 1024).toFixed(1)} | ${(skopeoKb / 1024).toFixed(1)} | ${(daemonKb / skopeoKb).toFixed(2)} |`);
console.log(`| peak RSS (MB): berth CLI | ${(cliKb / 1024).toFixed(1)} | | |`);
const mb = (n) => (n / 1e6).toFixed(1);
console.log(`| image on disk (MB): berth store vs skopeo oci: + umoci rootfs | ${mb(store)} | ${mb(skStore)} | ${(store / skStore).toFixed(2)} |`);
console.log(`| image on disk (MB): berth --keep-layer-blobs (the old layout) | ${mb(keepStore)} | | ${(keepStore / skStore).toFixed(2)} |`);
console.log(`\nimage: 4 layers, ${(size / 1e6).toFixed(1)} MB in the registry; ${new Date().toISOString().slice(0, 10)}, ${require('os').cpus().length} cores`);
JS
