#!/usr/bin/env bash
# CPU profile of `moat serve` with everything on, under a fixed request rate.
#
#   bench/profile/run.sh [RATE] [SECONDS]        default 2000 requests/s for 15 s
#
# Starts the demo upstream and `moat serve` (keys, limits, detection, enforcement with
# shadow = false, watermark, audit), drives it with oha (bench/.tools/bin/oha; run
# bench/compare/run.sh once, or `cargo install oha --root bench/.tools`) and records it with
# `perf record -g` (Debian package linux-perf). Writes bench/results/profile-<time>/{perf.data,
# top.txt}: top.txt lists the functions by self time, then by inclusive time.
# CALLGRAPH=dwarf records DWARF call graphs (the release build keeps no frame pointers, so `-g`
# alone stops at the first frame); STRACE=1 counts system calls (`strace -f -c`) instead of
# sampling, into strace.txt. MOAT_SERVER_THREADS=auto profiles the serving-thread mode.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-2000}; SECS=${2:-15}
command -v perf >/dev/null || { echo "needs perf: apt-get install linux-perf" >&2; exit 1; }
OHA=bench/.tools/bin/oha
[ -x "$OHA" ] || cargo install oha --version 1.16.0 --locked --root bench/.tools
cargo build --release -q -p moat
BIN=target/release/moat
WORK=$(mktemp -d /tmp/moat-profile.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
UP=18601; GW=18602
$BIN demo-upstream --listen 127.0.0.1:$UP > "$WORK/up.log" 2>&1 & PIDS+=($!)
. bench/moat_setup.sh
bench_moat_config "$WORK/moat.toml" "$GW" "$UP" "$WORK/moat.db" "$BENCH_ALL_ON"
KEY=$(bench_moat_key "$BIN" "$WORK/moat.toml")
$BIN --config "$WORK/moat.toml" serve > "$WORK/gw.log" 2>&1 & PIDS+=($!)
GW_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW/healthz" >/dev/null && break; sleep 0.1; done
OUT=bench/results/profile-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
BODY=$BENCH_CHAT_BODY
"$OHA" "http://127.0.0.1:$GW/v1/chat/completions" --no-tui -m POST -d "$BODY" \
  -H "authorization: Bearer $KEY" -H "content-type: application/json" \
  -q "$RATE" -z "$((SECS + 4))s" -c 64 > "$WORK/oha.txt" 2>&1 & PIDS+=($!)
sleep 2
if [[ ${STRACE:-0} == 1 ]]; then
  command -v strace >/dev/null || { echo "needs strace: apt-get install strace" >&2; exit 1; }
  timeout "$SECS" strace -f -c -p "$GW_PID" -o "$OUT/strace.txt" || true
  wait "${PIDS[-1]}" || true
  grep -E "Success rate|Requests/sec" "$WORK/oha.txt" | tee -a "$OUT/strace.txt" || true
  echo "system calls in $OUT/strace.txt (over ${SECS}s at $RATE req/s)" >&2
  exit 0
fi
if [[ ${CALLGRAPH:-fp} == dwarf ]]; then
  perf record -F 1999 --call-graph dwarf,16384 -p "$GW_PID" -o "$OUT/perf.data" -- sleep "$SECS" 2> "$WORK/perf.log"
else
  perf record -F 999 -g -p "$GW_PID" -o "$OUT/perf.data" -- sleep "$SECS" 2> "$WORK/perf.log"
fi
wait "${PIDS[-1]}" || true
{
  echo "# moat serve, everything on, $RATE req/s for ${SECS}s ($(date -u '+%F %H:%M UTC'))"
  grep -E "Success rate|Requests/sec" "$WORK/oha.txt" || true
  echo "## self time"
  perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
    grep -E "^ +[0-9.]+%" | sed -E "s/ +- +- *$//; s/ +$//" | head -40
  echo "## inclusive time"
  perf report -i "$OUT/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
    grep -E "^ +[0-9.]+%" | sed -E "s/ +- +- *$//; s/ +$//" | head -60
} > "$OUT/top.txt"
rm -f "$OUT/perf.data.old"
echo "profile in $OUT/top.txt (perf.data beside it)" >&2
