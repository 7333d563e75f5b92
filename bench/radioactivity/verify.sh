#!/usr/bin/env bash
# `moat verify` against each trained student served on a local port (after run.sh).
#   bash bench/radioactivity/verify.sh NAME...
# Environment: MOAT (moat binary, default target/release/moat), N (prompts, default 300),
# MAX_TOKENS, TEMP (asked by moat verify; 1.0 samples what the student learned), CTX (the
# context_words the students' corpora were marked with, default 0: the unigram mark). Reports: bench/radioactivity/work/verify_NAME/report.{json,html}.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=bench/radioactivity/work
MOAT=${MOAT:-target/release/moat}
N=${N:-300}
MAX_TOKENS=${MAX_TOKENS:-200}
TEMP=${TEMP:-1.0}
CTX=${CTX:-0}
# The bench key of examples/radio.rs, as a moat key file.
echo "bench 7261646f61637469766974792062656e6368206b6579202d206e6f7420736563" > "$WORK/bench.keys"
head -n "$N" "$WORK/prompts.jsonl" | python3 -c '
import json, sys
for l in sys.stdin:
    print(json.dumps({"prompt": json.loads(l)["text"]}))' > "$WORK/prompts_verify.jsonl"
for name in "$@"; do
  PORT=$((18900 + RANDOM % 90))
  target/release/moat-student serve --model "$WORK/model_$name" --port "$PORT" \
    --name "student-$name" --top-k 0 --max-tokens "$MAX_TOKENS" \
    > "$WORK/verify_serve_$name.log" 2>&1 &
  SPID=$!
  for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/v1/models" > /dev/null && break; sleep 0.5; done
  "$MOAT" verify --suspect "http://127.0.0.1:$PORT/v1" --model "student-$name" \
    --prompts "$WORK/prompts_verify.jsonl" --key-file "$WORK/bench.keys" --context-words "$CTX" \
    --max-tokens "$MAX_TOKENS" --temperature "$TEMP" --concurrency 2 --null-keys 20 --out "$WORK/verify_$name" \
    | tee "$WORK/verify_$name.txt" || true
  kill "$SPID"
done
