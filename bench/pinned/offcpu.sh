#!/usr/bin/env bash
# Where the serving thread's time goes between requests, at a fixed rate: the layout of
# bench/pinned/run.sh (moat alone on CPU 1 with `[server] threads = 1`, everything on; oha and
# the demo upstream on CPU 0), with the scheduler's switch events of both CPUs recorded.
#
#   bench/pinned/offcpu.sh [RATE] [SECONDS]         default 12000 req/s, 5 s recorded
#
# Prints oha's percentiles, each thread's share of each CPU and its longest uninterrupted run,
# and the serving thread's longest off-CPU gaps: how it left the CPU (S = waiting for work in
# epoll, R = preempted), for how long, and which threads ran on each CPU meanwhile. Writes
# bench/results/offcpu-<UTC time>/report.txt.
# WDIR=/dev/shm/x puts the gateway's database on tmpfs (tells disk I/O apart);
# BIN=/path/to/moat runs another build; EXTRA_TOML='[auth]\ncache_ttl = "1s"' appends config.
# Needs perf (linux-perf), taskset, oha (bench/compare/run.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-12000}; SECS=${2:-5}
OHA=bench/.tools/bin/oha
[ -x "$OHA" ] || cargo install oha --version 1.16.0 --locked --root bench/.tools
[ -n "${BIN:-}" ] || cargo build --release -q -p moat --bin moat
BIN=${BIN:-target/release/moat}
W=${WDIR:-$(mktemp -d /tmp/moat-offcpu.XXXXXX)}
mkdir -p "$W"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
UP=18841; GW=18842
taskset -c 0 $BIN demo-upstream --listen 127.0.0.1:$UP > "$W/up.log" 2>&1 & PIDS+=($!)
. bench/moat_setup.sh
SERVER_LINES='threads = 1' bench_moat_config "$W/moat.toml" $GW $UP "$W/moat.db" \
  "$BENCH_ALL_ON"$'\n'"$(printf '%b' "${EXTRA_TOML:-}")"
KEY=$(bench_moat_key $BIN "$W/moat.toml")
taskset -c 1 $BIN --config "$W/moat.toml" serve > "$W/gw.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW/healthz" >/dev/null && break; sleep 0.1; done
BODY=$BENCH_CHAT_BODY
load() { # RATE SECONDS [extra oha args]
  taskset -c 0 "$OHA" "http://127.0.0.1:$GW/v1/chat/completions" --no-tui -m POST -d "$BODY" \
    -H "authorization: Bearer $KEY" -H "content-type: application/json" -q "$1" -z "$2s" -c 64 \
    --latency-correction "${@:3}"
}
load 1000 5 > /dev/null 2>&1   # warm-up
load "$RATE" $((SECS + 8)) --output-format json > "$W/oha.json" 2>/dev/null & PIDS+=($!)
sleep 4
perf record -e sched:sched_switch -a -o "$W/sched.data" \
  -- sleep "$SECS" 2> "$W/perf.log"
wait "${PIDS[-1]}" || true
perf script -i "$W/sched.data" -F cpu,time,event,trace 2>/dev/null > "$W/sched.txt"
OUT=bench/results/offcpu-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
python3 - "$W/sched.txt" "$W/oha.json" "$RATE" > "$OUT/report.txt" <<'PY'
import collections, json, re, sys
text, oha, rate = sys.argv[1], sys.argv[2], sys.argv[3]
p = json.load(open(oha))["latencyPercentiles"]
print(f"{rate} req/s: p50 {p['p50']*1e3:.2f}  p90 {p['p90']*1e3:.2f}  p99 {p['p99']*1e3:.2f} ms")
sw = re.compile(r"\s*\[(\d+)\]\s+([\d.]+): sched:sched_switch: prev_comm=(.+?) prev_pid=(\d+) .*?"
                r"prev_state=(\S+) ==> next_comm=(.+?) next_pid=(\d+)")
run = collections.defaultdict(float)      # (cpu, thread name) -> seconds on that CPU
longest = collections.defaultdict(float)  # thread name -> longest uninterrupted run
since = {}                                # cpu -> (thread name, switched in at)
timeline = []                             # (cpu, start, end, thread name)
gaps = []; left = None; first = last = None
for line in open(text):
    m = sw.match(line)
    if not m:
        continue
    cpu, t, prev, state, nxt = int(m[1]), float(m[2]), m[3], m[5], m[6]
    first = t if first is None else first
    last = t
    if cpu in since:
        name, start = since[cpu]
        run[cpu, name] += t - start
        longest[name] = max(longest[name], t - start)
        timeline.append((cpu, start, t, name))
    since[cpu] = (nxt, t)
    if prev.startswith("moat-serve"):
        left = (t, state)
    elif nxt.startswith("moat-serve") and left:
        gaps.append((t - left[0], left[1], left[0], t))
        left = None
span = (last - first) or 1
short = lambda n: re.sub(r"[-/:]?\d+$", "", n) or n
for cpu in (0, 1):
    print(f"\nCPU {cpu}: thread, share of the CPU, longest run ms")
    by = collections.defaultdict(float)
    for (c, n), r in run.items():
        if c == cpu:
            by[short(n)] += r
    for n, r in sorted(by.items(), key=lambda x: -x[1])[:6]:
        print(f"  {n:18s} {r / span:6.1%} {max(v for k, v in longest.items() if short(k) == n) * 1e3:8.2f}")
print("\nserving thread's longest gaps: how it left (S waiting, R preempted), ms, what each CPU ran")
for d, st, a, b in sorted(gaps, reverse=True)[:10]:
    line = f"  {st} {d * 1e3:6.2f}"
    for cpu in (0, 1):
        who = collections.defaultdict(float)
        for c, s, e, n in timeline:
            if c == cpu and e > a and s < b:
                who[short(n)] += min(e, b) - max(s, a)
        top = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in sorted(who.items(), key=lambda x: -x[1])[:3])
        line += f" | CPU {cpu}: {top}"
    print(line)
PY
cat "$OUT/report.txt"
echo "report in $OUT/report.txt" >&2
