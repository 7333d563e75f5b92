#!/usr/bin/env bash
# Scale-out benchmarks (issue 9), each with its baseline in the same run:
#
#   bench/scale-out/run.sh [REQUESTS] [CONCURRENCY] [ROUNDS]
#
# Per round, with the same closed-loop load generator and the demo upstream as its own process:
#   embedded   one `moat serve`, SQLite store, in-process limiter            (the baseline)
#   redis      the same gateway with [limits] backend = "redis"              (added limiter latency)
#   scaled-1   one replica, full scale-out: PostgreSQL store, Redis limiter, NATS event bus
#   scaled-2   two such replicas, the load spread over both
# Prints req/s, p50/p99 and the gateways' summed CPU per request; medians over rounds.
# Needs PostgreSQL (127.0.0.1:5432, trust), Redis (127.0.0.1:6379) and NATS JetStream
# (127.0.0.1:4222), as the tests do.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20000}; C=${2:-32}; ROUNDS=${3:-3}
cargo build --release -q -p moat --bin moat
cargo build --release -q -p moat-gateway --example loadgen
BIN=$PWD/target/release/moat; LG=$PWD/target/release/examples/loadgen
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
DB=moat_bench_scale; PG_URL=${PG_ADMIN%/*}/$DB
psql "$PG_ADMIN" -q -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
UP=18531
export MOAT_ADMIN_TOKEN=bench-admin-token-0123456789abcdef
$BIN demo-upstream --listen 127.0.0.1:$UP > "$WORK/up.log" 2>&1 &
STREAM=MOAT_BENCH_$$

conf() { # name port admin-port kind(embedded|redis|scaled)
  local f="$WORK/$1.toml"
  cat > "$f" <<TOML
[server]
listen = "127.0.0.1:$2"
admin_listen = "127.0.0.1:$3"
[upstream]
base_url = "http://127.0.0.1:$UP/v1"
[log]
level = "warn"
[watermark]
key_file = "$WORK/watermark-keys"
TOML
  case $4 in
    embedded|redis) printf '[store]\npath = "%s"\n' "$WORK/$1.db" >> "$f" ;;
    scaled) printf '[store]\nbackend = "postgres"\nurl = "%s"\n[audit]\nspool_dir = "%s"\n[bus]\nurl = "nats://127.0.0.1:4222"\nreplica = "%s"\nstream = "%s"\nsubject_prefix = "bench%s"\n' \
      "$PG_URL" "$WORK/$1-spool" "$1" "$STREAM" "$$" >> "$f" ;;
  esac
  cat >> "$f" <<TOML
[limits]
requests_per_minute = 100000000
tokens_per_minute = 100000000000
tokens_per_day = 100000000000
TOML
  [ "$4" = embedded ] || printf 'backend = "redis"\nredis_url = "redis://127.0.0.1:6379/"\n' >> "$f"
}
conf embedded 18532 19532 embedded
conf redis    18533 19533 redis
conf gw-a     18534 19534 scaled
conf gw-b     18535 19535 scaled

key_for() { # config -> secret (account "bench" in that config's store)
  $BIN --config "$1" accounts show bench >/dev/null 2>&1 || $BIN --config "$1" accounts create --id bench >/dev/null
  $BIN --config "$1" keys create --account bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'
}
K_EMB=$(key_for "$WORK/embedded.toml"); K_RED=$(key_for "$WORK/redis.toml"); K_SCA=$(key_for "$WORK/gw-a.toml")
declare -A PID
for g in embedded redis gw-a gw-b; do
  $BIN --config "$WORK/$g.toml" serve > "$WORK/$g.log" 2>&1 & PID[$g]=$!
done
wait_up() { for _ in $(seq 200); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return; sleep 0.1; done; echo "port $1 did not come up" >&2; exit 1; }
for p in $UP 18532 18533 18534 18535; do wait_up $p; done

chat=/v1/chat/completions
run() { "$LG" --url "$1" --key "$2" --concurrency "$C" --requests "$N" --pid "$3" 2>&1; }
CSV=bench/loadgen_csv.py
python3 $CSV header > "$WORK/results.csv"
for r in $(seq "$ROUNDS"); do
  for t in embedded redis scaled-1 scaled-2; do
    case $t in
      embedded) out=$(run "http://127.0.0.1:18532$chat" "$K_EMB" "${PID[embedded]}") ;;
      redis)    out=$(run "http://127.0.0.1:18533$chat" "$K_RED" "${PID[redis]}") ;;
      scaled-1) out=$(run "http://127.0.0.1:18534$chat" "$K_SCA" "${PID[gw-a]}") ;;
      scaled-2) out=$(run "http://127.0.0.1:18534$chat,http://127.0.0.1:18535$chat" "$K_SCA" "${PID[gw-a]},${PID[gw-b]}") ;;
    esac
    echo "$out" | sed "s/^/[$t r$r] /" >&2
    echo "$out" | python3 $CSV row "$r" "$t" >> "$WORK/results.csv"
  done
done
curl -s "http://127.0.0.1:18534/healthz" > "$WORK/healthz-a.json" || true
echo "gw-a /healthz after the run: $(cat "$WORK/healthz-a.json")" >&2
python3 $CSV medians "$WORK/results.csv" embedded redis scaled-1 scaled-2 \
  --diff "p50_ms:redis:embedded:redis limiter added p50 (ms)" \
  --diff "cpu_us_per_req:redis:embedded:redis limiter added CPU (µs/req)" \
  --ratio "req_per_s:scaled-2:scaled-1:two replicas / one replica throughput"
