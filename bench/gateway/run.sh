#!/usr/bin/env bash
# Gateway CPU cost per request, side by side with its baseline in one run.
#
#   bench/gateway/run.sh [REQUESTS] [CONCURRENCY] [ROUNDS]
#
# Starts the demo upstream (its own process) and `moat serve` in front of it with every
# protection that exists today on: key auth (cached hash lookup), per-account limits
# (estimate-then-settle), detection (shadow mode), hash-chained audit log in SQLite, metrics.
# For each round it drives (a) the upstream directly and (b) the gateway with the same
# closed-loop load generator, reading each server's CPU time from /proc. Prints per-round
# figures and the medians; the gateway's own cost is (b)'s gateway CPU per request. A third
# target, (c) `no-mark`, is the same gateway with `[watermark] enabled = false`.
#
# A/B of a build or runtime setting, in the same run: ALT_BIN=path/to/other/moat and/or
# ALT_ENV="TOKIO_WORKER_THREADS=1" add a target (d) `alt`, the everything-on gateway run by that
# binary and/or with that environment (same config, same store).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20000}; C=${2:-32}; ROUNDS=${3:-3}
cargo build --release -q -p moat --bin moat
cargo build --release -q -p moat-gateway --example loadgen
BIN=target/release/moat; LG=target/release/examples/loadgen
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
UP_PORT=18431; GW_PORT=18432; NW_PORT=18433
$BIN demo-upstream --listen 127.0.0.1:$UP_PORT > "$WORK/up.log" 2>&1 & UP_PID=$!
. bench/moat_setup.sh
bench_moat_config "$WORK/moat.toml" "$GW_PORT" "$UP_PORT" "$WORK/moat.db"
KEY=$(bench_moat_key "$BIN" "$WORK/moat.toml")
$BIN --config "$WORK/moat.toml" serve > "$WORK/gw.log" 2>&1 & GW_PID=$!
# The same gateway (same store, same key) with the text watermark off: what marking costs.
sed -e "s/127.0.0.1:$GW_PORT/127.0.0.1:$NW_PORT/" "$WORK/moat.toml" > "$WORK/nowm.toml"
printf '[watermark]\nenabled = false\n' >> "$WORK/nowm.toml"
$BIN --config "$WORK/nowm.toml" serve > "$WORK/nw.log" 2>&1 & NW_PID=$!
TARGETS="direct gateway no-mark"
if [[ -n ${ALT_BIN:-}${ALT_ENV:-} ]]; then
  AL_PORT=18434
  sed -e "s/127.0.0.1:$GW_PORT/127.0.0.1:$AL_PORT/" "$WORK/moat.toml" > "$WORK/alt.toml"
  env ${ALT_ENV:-} "${ALT_BIN:-$BIN}" --config "$WORK/alt.toml" serve > "$WORK/alt.log" 2>&1 & AL_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$AL_PORT/healthz" >/dev/null && break; sleep 0.1; done
  TARGETS="$TARGETS alt"
  echo "alt: ${ALT_BIN:-$BIN} ${ALT_ENV:-}" >&2
fi
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW_PORT/healthz" >/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NW_PORT/healthz" >/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$UP_PORT/healthz" >/dev/null && break; sleep 0.1; done

run() { "$LG" --url "$1" --key "$KEY" --concurrency "$C" --requests "$N" --pid "$2" 2>&1; }
CSV=bench/loadgen_csv.py
python3 $CSV header > "$WORK/results.csv"
for r in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    case $t in
      direct)  out=$(run "http://127.0.0.1:$UP_PORT/v1/chat/completions" $UP_PID) ;;
      gateway) out=$(run "http://127.0.0.1:$GW_PORT/v1/chat/completions" $GW_PID) ;;
      no-mark) out=$(run "http://127.0.0.1:$NW_PORT/v1/chat/completions" $NW_PID) ;;
      alt)     out=$(run "http://127.0.0.1:$AL_PORT/v1/chat/completions" $AL_PID) ;;
    esac
    echo "$out" | sed "s/^/[$t r$r] /" >&2
    echo "$out" | python3 $CSV row "$r" "$t" >> "$WORK/results.csv"
  done
done
ALT_RATIO=()
[[ $TARGETS == *alt ]] && ALT_RATIO=(--ratio "cpu_us_per_req:alt:gateway:alt CPU per request / gateway CPU per request")
python3 $CSV medians "$WORK/results.csv" $TARGETS \
  --ratio "cpu_us_per_req:gateway:direct:gateway CPU per request / upstream CPU per request" \
  "${ALT_RATIO[@]}"
