#!/usr/bin/env bash
# bench/fleet: berth's fleet agent at scale. One mosquitto on 127.0.0.1; DEVICES real
# berth fleet agents (src/fleet/agent.ts with a simulated in-memory engine) spread over
# WORKERS Node processes; an operator using src/fleet/operator.ts. Runs:
#   1. group command to 1,000 devices, 2. the same with 10,000 (SIZES="1000 10000"),
#   3. a reconnect storm of STORM devices (default 1000) losing their links.
# Writes bench/results/fleet.md and prints it. Needs mosquitto and node_modules; no root
# needed except for raising the open-file limit above the soft limit (up to the hard one).
# Everything (broker config, per-device dedupe logs) lives in one dir on /dev/shm; the
# trap kills the broker and the workers by pid and removes it.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-"1000 10000"}
STORM=${STORM:-1000}
WORKERS=${WORKERS:-4}
command -v mosquitto >/dev/null || { echo "missing mosquitto (apt-get install mosquitto)" >&2; exit 1; }
# 10,000 connections need 10,000+ descriptors in the broker: take the hard limit.
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /dev/shm/berth-bench-fleet.XXXXXX)
bench_pid=""
cleanup() {
  set +e
  [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null && sleep 2
  # Whatever the coordinator left (it kills its children itself; this is for a crash).
  for f in "$work"/*/pids; do [ -f "$f" ] && xargs -r kill -9 <"$f" 2>/dev/null; done
  rm -rf "$work"
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run() { # name, env...
  local name=$1; shift
  mkdir -p "$work/$name"
  echo "== $name: $*" >&2
  env "$@" WORK_DIR="$work/$name" WORKERS="$WORKERS" timeout -k 10 900 node --import tsx bench/fleet/bench.ts >"$work/$name.json" &
  bench_pid=$!
  wait "$bench_pid" || { echo "$name failed" >&2; bench_pid=""; return 1; }
  bench_pid=""
  rm -rf "$work/$name"   # per-device dedupe logs: 10,000 small dirs
}

results=()
for n in $SIZES; do
  if run "group-$n" SCENARIO=group DEVICES="$n"; then results+=("$work/group-$n.json"); fi
done
if [ "$STORM" -gt 0 ] && run "storm-$STORM" SCENARIO=storm DEVICES="$STORM"; then results+=("$work/storm-$STORM.json"); fi
[ ${#results[@]} -gt 0 ] || { echo "no run succeeded" >&2; exit 1; }
node --import tsx bench/fleet/report.ts "${results[@]}" >bench/results/fleet.md
cat bench/results/fleet.md
