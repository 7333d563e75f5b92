"""Regression guard for detection quality: `moat replay` on the labelled development traffic
(../shared/traffic/dev, beside the repository as in CI) must meet the DESIGN.md goals, scored by
the shared score.py. The numbers themselves are reported in BENCHMARKS.md."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, moat_bin

DEV = REPO.parent / "shared" / "traffic" / "dev"
SCORE = REPO.parent / "shared" / "traffic" / "score.py"


@pytest.mark.skipif(not (DEV / "traffic.jsonl.zst").exists(), reason="../shared/traffic/dev not present")
def test_replay_on_dev_traffic_meets_the_goals(tmp_path):
    out = tmp_path / "replay"
    p = subprocess.run(
        [moat_bin(), "replay", "--traffic", str(DEV / "traffic.jsonl.zst"),
         "--accounts", str(DEV / "accounts.jsonl"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert p.returncode == 0, p.stderr
    lines = sum(1 for _ in (out / "decisions.jsonl").open())
    assert lines == 172_743
    s = subprocess.run([sys.executable, str(SCORE), "--data", str(DEV), "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=300, check=True)
    m = json.loads(s.stdout.strip().splitlines()[-1])
    assert m["account_fpr"] <= 0.001, m
    assert m["account_tpr"] >= 0.99, m
    assert m["leakage"] <= 0.02, m
    assert m["benign_impact"] <= 0.0005, m
    assert m["auc"] >= 0.995, m
    assert m["auc_active"] >= 0.99, m
