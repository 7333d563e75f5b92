#!/usr/bin/env bash
# Embedded backend speed vs llama.cpp's server on the same GGUF, in one run (issue 6).
#
#   bench/backend/run.sh [ROUNDS] [MAX_TOKENS]
#
# Serves models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model) two ways, each with THREADS (default 2)
# threads, both up at once, rounds alternating between them (only one generates at a time):
#   (a) llama.cpp's server (`llama-cpp-python[server]` from PyPI, built from source here into
#       bench/backend/.venv; set VENV to reuse another one);
#   (b) `moat serve` with `upstream.base_url = "embedded"` (moat-backend, candle), sampler
#       watermark off so both do the same work; the request goes through the full gateway.
# The same client (tokens_per_sec.py) streams a greedy /v1/completions request with the same
# raw prompt to each and reports time to first token and decode tokens/s; medians of ROUNDS.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}; MAX_TOKENS=${2:-128}; THREADS=${THREADS:-2}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
VENV=${VENV:-bench/backend/.venv}
[ -f "$MODEL" ] || scripts/fetch-model
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import llama_cpp, uvicorn, httpx' 2>/dev/null || \
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$VENV/bin/pip" install --quiet 'llama-cpp-python[server]==0.3.36' httpx
cargo build --release -q -p moat --features embedded
BIN=target/release/moat
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
LL_PORT=18531; GW_PORT=18532

"$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --n_threads $THREADS --n_threads_batch $THREADS \
  --n_ctx 2048 --host 127.0.0.1 --port $LL_PORT > "$WORK/llama.log" 2>&1 & LL_PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$LL_PORT/v1/models" >/dev/null && break; sleep 0.2; done
cat > "$WORK/moat.toml" <<TOML
[server]
listen = "127.0.0.1:$GW_PORT"
[upstream]
base_url = "embedded"
timeout = "600s"
[upstream.embedded]
model = "$PWD/$MODEL"
model_id = "smollm2"
threads = $THREADS
[store]
path = "$WORK/moat.db"
[log]
level = "warn"
TOML
$BIN --config "$WORK/moat.toml" accounts create --id bench >/dev/null
KEY=$($BIN --config "$WORK/moat.toml" keys create --account bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
$BIN --config "$WORK/moat.toml" serve > "$WORK/gw.log" 2>&1 & GW_PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$GW_PORT/healthz" >/dev/null && break; sleep 0.2; done
LL_VERSION=$("$VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')
echo "== llama.cpp server (llama-cpp-python $LL_VERSION) vs moat serve with the embedded backend (candle)"
"$VENV/bin/python" bench/backend/tokens_per_sec.py --model smollm2 --rounds "$ROUNDS" \
  --max-tokens "$MAX_TOKENS" --target "llama.cpp,http://127.0.0.1:$LL_PORT/v1,none" \
  --target "moat,http://127.0.0.1:$GW_PORT/v1,$KEY"
