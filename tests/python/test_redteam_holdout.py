"""Regression guard for detection on strategies it was not fitted on.

Generates two labelled weeks with the red-team generator (research/redteam; real public corpora,
seeds never used while developing), fits the engine's weights on the first with each checked
strategy left out (research/fit/fit.py), replays the second with those weights through the real
`moat replay` and scores it per strategy and per benign kind (research/fit/loso.py).

What it asserts is what the committed table (docs/detection.md, "Leave one strategy out")
shows for these strategies; a change that makes a held-out strategy or a benign kind worse
fails here. Needs the research environment: scripts/test creates research/.venv
(research/requirements.txt).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, moat_bin

RESEARCH = REPO / "research"
PY = Path(os.environ.get("MOAT_RESEARCH_PYTHON", RESEARCH / ".venv" / "bin" / "python"))

# held out of the fit in this test, one fold each. Floors: what the leave-one-strategy-out
# table (research/fit/RESULTS.md) shows for them at this scale (seeds 1101/2202, scale 0.4:
# TPR 100 % each, leakage 5.3 %, 25.2 % and 15.6 % with intent model v10), with room for the
# generator's randomness.
# The strategies it misses when held out (param_probe, judge_harvest, low_and_slow, ...) are
# listed in docs/detection.md and not asserted here.
HELD_OUT = {
    "cot_multilingual": {"tpr": 1.0, "leakage": 0.10},
    "synth_data": {"tpr": 1.0, "leakage": 0.40},
    "trace_translation": {"tpr": 1.0, "leakage": 0.30},
}


def generate(seed: int, out: Path) -> None:
    subprocess.run(
        [str(PY), "-m", "redteam.generate", "--seed", str(seed), "--out", str(out), "--scale", "0.4"],
        cwd=RESEARCH, check=True, capture_output=True, text=True, timeout=900,
    )


@pytest.mark.skipif(not PY.exists(), reason="research/.venv missing (scripts/test creates it)")
def test_held_out_strategies_are_caught_without_touching_benign_customers(tmp_path):
    train, test = tmp_path / "train", tmp_path / "test"
    generate(1101, train)
    generate(2202, test)
    res = tmp_path / "loso.json"
    p = subprocess.run(
        [str(PY), str(RESEARCH / "fit" / "loso.py"), "--train", str(train), "--test", str(test),
         "--moat", moat_bin(), "--work", str(tmp_path / "work"), "--json", str(res),
         "--only", *HELD_OUT],
        capture_output=True, text=True, timeout=1800,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    print(p.stdout)
    r = json.loads(res.read_text())
    for name, floor in HELD_OUT.items():
        s = r["strategies"][name]
        assert s is not None, f"{name} missing from the test set"
        assert s["tpr"] >= floor["tpr"], (name, s)
        assert s["leakage"] <= floor["leakage"], (name, s)
    # every benign kind, under every fold's weights: no benign account restricted, and no
    # benign customer's request restricted (the end users of mixed accounts are reported
    # apart: up to 0.8 % of them restricted at this scale, above the 0.05 % goal)
    w = r["overall_worst"]
    assert w["fpr"] <= 0.001, w
    for kind, v in r["kinds"].items():
        if v["fpr"] is None:
            assert v["impact"] <= 0.02, (kind, v)
        else:
            assert v["fpr"] == 0.0 and v["impact"] == 0.0, (kind, v)
