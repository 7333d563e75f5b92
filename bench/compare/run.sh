#!/usr/bin/env bash
# moat against the gateways users would pick instead, in one run on one machine (issue 7).
#
#   bench/compare/run.sh [ROUNDS] [SECONDS_PER_POINT] [RATES] [SYSTEMS]
#   e.g. bench/compare/run.sh 3 3 "50 100 250 500 1000 2000 4000 8000"   (the default)
#        bench/compare/run.sh 1 3 "500 1000" "direct moat_on nginx"      # quick look
#
# One instant upstream (`moat demo-upstream`: OpenAI and Anthropic shapes, streamed or not,
# templated text, ~20 µs of CPU per answer) and, all pointed at it:
#   direct     the upstream itself (the baseline)
#   moat_on    `moat serve`, everything on: key auth, per-account limits, detection,
#              enforcement (shadow = false), text watermark, hash-chained audit log, metrics
#   moat_thr   moat_on with `[server] threads = "auto"`: one single-threaded runtime per core,
#              each with its own SO_REUSEPORT listener and upstream pool
#   moat_off   `moat serve`, protections off: key auth, limits, audit log and metrics only
#              ([detect] enabled = false, so nothing to enforce; [watermark] enabled = false)
#   nginx      Debian's nginx as a bare reverse proxy (keep-alive upstream pool, no access log)
#   litellm    LiteLLM proxy (PyPI litellm[proxy], pinned below), one worker, no master key
#   unmimic    unmimic's proxy (PyPI unmimic), default output guards (leak_detector,
#              strip_reasoning); its input guard needs the `ml` extras and a 450 MB download
#              from Hugging Face, so it is off here (unmimic says so at start-up)
# Load: oha at fixed request rates (open loop, latency corrected for coordinated omission),
# OpenAI non-streamed chat; then time to first byte, streamed and not, in both API shapes.
# Writes bench/results/compare-<UTC time>/{results.jsonl,ttfb.jsonl,summary.md,latency.png}
# and copies the plot to bench/results/latency-vs-rate.png.
#
# Needs: Debian/Ubuntu with apt (nginx), Rust (cargo), python3 with venv, curl. It installs
# nginx with apt-get if missing, oha into bench/.tools, LiteLLM and unmimic into bench-local
# virtual environments (bench/.venv-litellm, bench/.venv-unmimic; git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ROUNDS=${1:-3}
SECS=${2:-5}
RATES=${3:-"50 100 250 500 1000 2000 4000 8000"}
SYSTEMS=${4:-"direct moat_on moat_off nginx litellm unmimic"}
LITELLM_VERSION=1.77.7   # never 1.107.0 (a compromised release)
UNMIMIC_VERSION=0.1.0
OHA_VERSION=1.16.0

has() { [[ " $SYSTEMS " == *" $1 "* ]]; }

# ---- tools -------------------------------------------------------------------------------
if has nginx && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (apt-get)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) >&2
fi
OHA=$ROOT/bench/.tools/bin/oha
if [ ! -x "$OHA" ]; then
  echo "installing oha $OHA_VERSION into bench/.tools (cargo install, a few minutes)" >&2
  cargo install oha --version "$OHA_VERSION" --locked --root "$ROOT/bench/.tools" >&2
fi
venv() { # venv DIR PACKAGE...
  local d=$1; shift
  if [ ! -x "$d/bin/python" ] || ! "$d/bin/python" -c 'import sys' 2>/dev/null; then
    python3 -m venv "$d"
  fi
  "$d/bin/pip" install -q "$@" >&2
}
pinned() { # VENV DIST VERSION: already installed at that version?
  [ "$("$1/bin/python" -c "import importlib.metadata as m; print(m.version('$2'))" 2>/dev/null)" = "$3" ]
}
PYV=$ROOT/bench/.venv-litellm   # also holds matplotlib for the plot
pinned "$PYV" litellm "$LITELLM_VERSION" && pinned "$PYV" matplotlib "$("$PYV/bin/python" -c "import importlib.metadata as m; print(m.version('matplotlib'))" 2>/dev/null)" ||
  venv "$PYV" "litellm[proxy]==$LITELLM_VERSION" matplotlib
got=$("$PYV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')
if [ "$got" != "$LITELLM_VERSION" ] || [ "$got" = "1.107.0" ]; then
  echo "refusing to run: litellm $got installed, expected $LITELLM_VERSION" >&2; exit 1
fi
if has unmimic && ! pinned "$ROOT/bench/.venv-unmimic" unmimic "$UNMIMIC_VERSION"; then
  venv "$ROOT/bench/.venv-unmimic" "unmimic==$UNMIMIC_VERSION"
fi
cargo build --release -q -p moat
BIN=$ROOT/target/release/moat

# ---- systems -----------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/moat-compare.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
UP=18501; P_ON=18502; P_OFF=18503; P_NGX=18504; P_LLM=18505; P_UNM=18506; P_THR=18507
wait_http() { # URL [tries]
  for _ in $(seq "${2:-300}"); do curl -s -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "no answer from $1" >&2; return 1
}
SPEC=$WORK/systems.tsv   # name, pid, chat URL, messages URL (or -)[, moat key]
: > "$SPEC"

$BIN demo-upstream --listen 127.0.0.1:$UP > "$WORK/upstream.log" 2>&1 & PIDS+=($!)
UP_PID=$!
wait_http "http://127.0.0.1:$UP/healthz"
printf 'direct\t%s\thttp://127.0.0.1:%s/v1/chat/completions\thttp://127.0.0.1:%s/v1/messages\n' \
  "$UP_PID" $UP $UP >> "$SPEC"

. bench/moat_setup.sh
start_moat() { # NAME PORT EXTRA [SERVER_LINES]
  local c=$WORK/$1/moat.toml key
  mkdir -p "$WORK/$1"
  SERVER_LINES="${4:-}" bench_moat_config "$c" "$2" "$UP" "$WORK/$1/moat.db" "$3"
  key=$(bench_moat_key "$BIN" "$c")
  $BIN --config "$c" serve > "$WORK/$1/serve.log" 2>&1 & PIDS+=($!)
  local pid=$!
  wait_http "http://127.0.0.1:$2/healthz"
  printf '%s\t%s\thttp://127.0.0.1:%s/v1/chat/completions\thttp://127.0.0.1:%s/v1/messages\t%s\n' \
    "$1" "$pid" "$2" "$2" "$key" >> "$SPEC"
}
if has moat_on || has moat_off; then
  start_moat moat_on $P_ON "$BENCH_ALL_ON"
fi
if has moat_thr; then
  start_moat moat_thr $P_THR "$BENCH_ALL_ON" 'threads = "auto"'
fi
if has moat_off; then
  start_moat moat_off $P_OFF $'[detect]\nenabled = false\n[watermark]\nenabled = false'
fi

if has nginx; then
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  mkdir -p "$WORK/nginx"
  cat > "$WORK/nginx/nginx.conf" <<NGX
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
  upstream model { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$P_NGX;
    location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGX
  $NGINX -c "$WORK/nginx/nginx.conf" -g 'daemon off;' > "$WORK/nginx/out.log" 2>&1 & PIDS+=($!)
  pid=$!
  wait_http "http://127.0.0.1:$P_NGX/healthz"
  printf 'nginx\t%s\thttp://127.0.0.1:%s/v1/chat/completions\thttp://127.0.0.1:%s/v1/messages\n' \
    "$pid" $P_NGX $P_NGX >> "$SPEC"
fi

if has litellm; then
  mkdir -p "$WORK/litellm"
  cat > "$WORK/litellm/config.yaml" <<YAML
model_list:
  - model_name: demo-echo
    litellm_params:
      model: openai/demo-echo
      api_base: http://127.0.0.1:$UP/v1
      api_key: unused
litellm_settings:
  telemetry: false
  drop_params: true
YAML
  (cd "$WORK/litellm" && LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
    exec "$PYV/bin/litellm" --config config.yaml --host 127.0.0.1 --port $P_LLM \
      --num_workers 1 > out.log 2>&1) & PIDS+=($!)
  pid=$!
  wait_http "http://127.0.0.1:$P_LLM/health/liveliness" 600
  printf 'litellm\t%s\thttp://127.0.0.1:%s/v1/chat/completions\thttp://127.0.0.1:%s/v1/messages\n' \
    "$pid" $P_LLM $P_LLM >> "$SPEC"
fi

if has unmimic; then
  mkdir -p "$WORK/unmimic"
  (cd "$WORK/unmimic" && exec "$ROOT/bench/.venv-unmimic/bin/unmimic" serve \
    --upstream "http://127.0.0.1:$UP/v1" --host 127.0.0.1 --port $P_UNM > out.log 2>&1) & PIDS+=($!)
  pid=$!
  wait_http "http://127.0.0.1:$P_UNM/v1/models" 300
  # unmimic proxies the OpenAI API only.
  printf 'unmimic\t%s\thttp://127.0.0.1:%s/v1/chat/completions\t-\n' "$pid" $P_UNM >> "$SPEC"
  grep -i "guard" "$WORK/unmimic/out.log" >&2 || true
fi

# ---- measure -----------------------------------------------------------------------------
OUT=$ROOT/bench/results/compare-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
  echo "memory: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "moat: $(git -C "$ROOT" rev-parse --short HEAD) (+ working tree)"
  echo "nginx: $($NGINX -v 2>&1 | sed 's/.*\///')" 2>/dev/null || true
  echo "litellm: $got"
  echo "unmimic: $UNMIMIC_VERSION"
  echo "oha: $("$OHA" --version | awk '{print $2}')"
  echo "command: bench/compare/run.sh $ROUNDS $SECS \"$RATES\" \"$SYSTEMS\""
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2
python3 bench/compare/drive.py --systems "$SPEC" --oha "$OHA" --rounds "$ROUNDS" \
  --seconds "$SECS" --rates "$RATES" --out "$OUT"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
"$PYV/bin/python" bench/compare/summarize.py "$OUT"
cp "$OUT/latency.png" bench/results/latency-vs-rate.png
echo "results in $OUT" >&2
