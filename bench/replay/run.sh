#!/usr/bin/env bash
# `moat replay` throughput and memory: the dev traffic, then a synthetic large run.
#
#   bench/replay/run.sh [RUNS] [ACCOUNTS] [EXCHANGES] [SYNTH_DIR]
#   default: 3 runs each; 20,000 accounts, 5,000,000 exchanges in /tmp/moat-replay-synth
#
# Needs: Rust (cargo), python3 (standard library only), the `zstd` command (Debian package
# `zstd`; without it the synthetic traffic is written uncompressed, ~2.5 GB). The synthetic
# set is generated once (bench/replay/gen_synthetic.py, ~2 minutes) and reused while its
# parameters match; it never goes into git. Prints per-run lines and a JSON summary per set.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}; ACCOUNTS=${2:-20000}; EXCHANGES=${3:-5000000}
SYNTH=${4:-/tmp/moat-replay-synth}
DEV=${MOAT_DEV_TRAFFIC:-../shared/traffic/dev}
cargo build --release -q -p moat
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ -d "$DEV" ]; then
  echo "== dev traffic ($DEV)" >&2
  python3 bench/replay/bench.py --data "$DEV" --runs "$RUNS"
else
  echo "no dev traffic at $DEV (set MOAT_DEV_TRAFFIC); skipping" >&2
fi
STAMP="$ACCOUNTS accounts, $EXCHANGES exchanges, seed 7"
if [ "$(cat "$SYNTH/params" 2>/dev/null)" != "$STAMP" ]; then
  echo "== generating synthetic traffic in $SYNTH ($STAMP)" >&2
  rm -rf "$SYNTH"
  python3 bench/replay/gen_synthetic.py --accounts "$ACCOUNTS" --exchanges "$EXCHANGES" \
    --seed 7 --out "$SYNTH"
  echo "$STAMP" > "$SYNTH/params"
fi
echo "== synthetic traffic ($STAMP)" >&2
python3 bench/replay/bench.py --data "$SYNTH" --runs "$RUNS"
