#!/usr/bin/env bash
# The gateway on a core of its own: the brief's bar ("about twice nginx's CPU per request,
# 10,000 requests/s on one core") measured without the load generator and the upstream on the
# gateway's core.
#
#   bench/pinned/run.sh [RATES] [SECONDS] [ROUNDS]      default "2000 4000 8000 10000" 8 3
#
# CPU 0: the load generator (oha, fixed rate, latency corrected) and the demo upstream.
# CPU 1: the system under test, one at a time: moat with everything on (`[server] threads = 1`:
# one serving thread; keys, limits, detection, enforcement with shadow = false, text watermark,
# audit log, metrics) and nginx (one worker, keep-alive upstream pool, no access log).
# "direct" is the upstream itself (on CPU 0). Per point: latency percentiles and the system's
# CPU time per request (/proc/PID/stat, all its threads). Rounds alternate the systems.
# Writes bench/results/pinned-<UTC time>/{points.tsv,summary.md}. Needs taskset (util-linux),
# nginx (apt-get install nginx) and oha (bench/compare/run.sh installs it).
#
# A/B in the same rounds: ALT_TOML='[audit]\nbatch = 16' adds `moat_alt`, the same gateway with
# those lines appended to its config; ALT_SCHED=idle|nice runs moat_alt's background threads
# (the shared runtime's workers and the SQLite connection threads) under SCHED_IDLE or nice 10;
# ALT_BIN=/path/to/moat runs another build as moat_alt (e.g. the one before a change).
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${1:-"2000 4000 8000 10000"}; SECS=${2:-8}; ROUNDS=${3:-3}
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs" >&2; exit 1; }
OHA=bench/.tools/bin/oha
[ -x "$OHA" ] || cargo install oha --version 1.16.0 --locked --root bench/.tools
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "needs nginx (apt-get install nginx)" >&2; exit 1; }
cargo build --release -q -p moat --bin moat
BIN=target/release/moat
W=$(mktemp -d /tmp/moat-pinned.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
UP=18741; GW=18742; NG=18743
taskset -c 0 $BIN demo-upstream --listen 127.0.0.1:$UP > "$W/up.log" 2>&1 & PIDS+=($!)
UP_PID=$!
. bench/moat_setup.sh
SERVER_LINES='threads = 1' bench_moat_config "$W/moat.toml" "$GW" "$UP" "$W/moat.db" \
  "$BENCH_ALL_ON"
KEY=$(bench_moat_key "$BIN" "$W/moat.toml")
taskset -c 1 $BIN --config "$W/moat.toml" serve > "$W/gw.log" 2>&1 & PIDS+=($!)
GW_PID=$!
mkdir -p "$W/nginx"
cat > "$W/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $W/nginx/body; proxy_temp_path $W/nginx/proxy;
  fastcgi_temp_path $W/nginx/fcgi; uwsgi_temp_path $W/nginx/uwsgi; scgi_temp_path $W/nginx/scgi;
  upstream model { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NG;
    location / { proxy_pass http://model; proxy_http_version 1.1;
                 proxy_set_header Connection ""; proxy_buffering off; }
  }
}
NGX
taskset -c 1 "$NGINX" -c "$W/nginx/nginx.conf" -g 'daemon off;' > "$W/nginx/out.log" 2>&1 & PIDS+=($!)
NG_PID=$!
SYSTEMS=("direct $UP $UP_PID" "moat $GW $GW_PID" "nginx $NG $NG_PID")
if [[ -n ${ALT_TOML:-}${ALT_SCHED:-}${ALT_BIN:-} ]]; then
  AL=18744
  sed -e "s/127.0.0.1:$GW/127.0.0.1:$AL/" -e "s|$W/moat.db|$W/alt.db|" "$W/moat.toml" > "$W/alt.toml"
  printf '%b\n' "${ALT_TOML:-}" >> "$W/alt.toml"
  ALT_KEY=$(bench_moat_key "$BIN" "$W/alt.toml")
  taskset -c 1 "${ALT_BIN:-$BIN}" --config "$W/alt.toml" serve > "$W/alt.log" 2>&1 & PIDS+=($!)
  AL_PID=$!
  SYSTEMS+=("moat_alt $AL $AL_PID")
  echo "moat_alt: ${ALT_BIN:-} ${ALT_TOML:-} ${ALT_SCHED:+(background threads: $ALT_SCHED)}" >&2
fi
for u in "$UP/healthz" "$GW/healthz" "$NG/healthz" ${AL:+"$AL/healthz"}; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$u" >/dev/null && break; sleep 0.1; done
done
background() { # PID: its shared-runtime workers and SQLite connection threads
  local t
  for t in /proc/"$1"/task/*; do
    case "$(cat "$t/comm")" in tokio-rt-worker|sqlx-sqlite-wor*) basename "$t" ;; esac
  done
}
case ${ALT_SCHED:-} in
  idle) for t in $(background "$AL_PID"); do chrt -i -p 0 "$t"; done ;;
  nice) for t in $(background "$AL_PID"); do renice -n 10 -p "$t" >/dev/null; done ;;
  "") ;;
  *) echo "ALT_SCHED: idle or nice" >&2; exit 2 ;;
esac
cpu() { # process tree CPU seconds (user + system) of PID and its children
  local t=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    t=$(awk -v t="$t" '{print t + ($14 + $15) / 100}' "/proc/$p/stat")
  done
  echo "$t"
}
BODY=$BENCH_CHAT_BODY
point() { # NAME PORT PID RATE
  local c0 c1 key=$KEY
  [[ $1 != moat_alt ]] || key=$ALT_KEY
  c0=$(cpu "$3")
  taskset -c 0 "$OHA" "http://127.0.0.1:$2/v1/chat/completions" --no-tui -m POST -d "$BODY" \
    -H "authorization: Bearer $key" -H "content-type: application/json" -q "$4" -z "${SECS}s" \
    -c 64 --latency-correction --output-format json > "$W/oha.json" 2>/dev/null
  c1=$(cpu "$3")
  python3 - "$1" "$4" "$c0" "$c1" "$W/oha.json" <<'PY'
import json, sys
name, rate, c0, c1, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
d = json.load(open(path))
p, s = d["latencyPercentiles"], d["summary"]
ok = sum(v for k, v in d["statusCodeDistribution"].items() if k.startswith("2"))
print(f"{name}\t{rate}\t{p['p50']*1e3:.3f}\t{p['p90']*1e3:.3f}\t{p['p99']*1e3:.3f}\t"
      f"{s['successRate']:.4f}\t{ok}\t{1e6 * (c1 - c0) / max(ok, 1):.1f}")
PY
}
OUT=bench/results/pinned-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
printf 'system\trate\tp50_ms\tp90_ms\tp99_ms\tsuccess\tanswered\tcpu_us_per_req\n' > "$OUT/points.tsv"
for s in "${SYSTEMS[@]}"; do
  set -- $s; point "$1" "$2" "$3" 1000 > /dev/null   # warm-up
done
for rate in $RATES; do
  for r in $(seq "$ROUNDS"); do
    for s in "${SYSTEMS[@]}"; do
      set -- $s; point "$1" "$2" "$3" "$rate" | tee -a "$OUT/points.tsv"
    done
  done
done
python3 - "$OUT" "$RATES" "$SECS" "$ROUNDS" "${ALT_TOML:-}" "${ALT_SCHED:-}" "${ALT_BIN:-}" <<'PY'
import csv, statistics as st, sys
out, rates, secs, rounds = sys.argv[1], [int(r) for r in sys.argv[2].split()], sys.argv[3], sys.argv[4]
alt_toml, alt_sched, alt_bin = sys.argv[5], sys.argv[6], sys.argv[7]
rows = list(csv.DictReader(open(f"{out}/points.tsv"), delimiter="\t"))
def med(sysname, rate, col):
    v = [float(r[col]) for r in rows if r["system"] == sysname and int(r["rate"]) == rate]
    return st.median(v) if v else float("nan")
with open(f"{out}/summary.md", "w") as f:
    f.write(f"`bench/pinned/run.sh \"{' '.join(map(str, rates))}\" {secs} {rounds}`: medians of {rounds} rounds; "
            "the system under test alone on CPU 1, load generator and upstream on CPU 0.\n\n")
    f.write("| rate req/s | direct p50 / p99 ms | moat added p50 / p99 ms | nginx added p50 / p99 ms "
            "| moat CPU µs / req | nginx CPU µs / req | moat / nginx CPU | moat success | moat core busy |\n")
    f.write("|---|---|---|---|---|---|---|---|---|\n")
    for r in rates:
        d50, d99 = med("direct", r, "p50_ms"), med("direct", r, "p99_ms")
        mc, nc = med("moat", r, "cpu_us_per_req"), med("nginx", r, "cpu_us_per_req")
        f.write(f"| {r:,} | {d50:.2f} / {d99:.2f} | {med('moat', r, 'p50_ms') - d50:.2f} / "
                f"{med('moat', r, 'p99_ms') - d99:.2f} | {med('nginx', r, 'p50_ms') - d50:.2f} / "
                f"{med('nginx', r, 'p99_ms') - d99:.2f} | {mc:.1f} | {nc:.1f} | {mc / nc:.2f} | "
                f"{med('moat', r, 'success'):.4f} | {mc * r / 1e6:.0%} |\n")
    if any(r["system"] == "moat_alt" for r in rows):
        f.write(f"\nmoat_alt: binary `{alt_bin or 'the same'}`, config lines `{alt_toml}`, "
                f"background threads: {alt_sched or 'as shipped'}\n\n")
        f.write("| rate req/s | moat p50 / p90 / p99 ms | moat_alt p50 / p90 / p99 ms | moat / moat_alt CPU µs / req | ratio |\n")
        f.write("|---|---|---|---|---|\n")
        for r in rates:
            m = " / ".join(f"{med('moat', r, c):.2f}" for c in ("p50_ms", "p90_ms", "p99_ms"))
            a = " / ".join(f"{med('moat_alt', r, c):.2f}" for c in ("p50_ms", "p90_ms", "p99_ms"))
            mc, ac = med('moat', r, 'cpu_us_per_req'), med('moat_alt', r, 'cpu_us_per_req')
            f.write(f"| {r:,} | {m} | {a} | {mc:.1f} / {ac:.1f} | {mc / ac:.2f} |\n")
print(open(f"{out}/summary.md").read())
PY
echo "results in $OUT" >&2
