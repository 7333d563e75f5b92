#!/usr/bin/env python3
"""Runs `moat replay` several times on one data set; prints exchanges/s, wall time, peak RSS.

    python3 bench/replay/bench.py --data ../shared/traffic/dev --runs 3 [--moat target/release/moat]

DATA must hold accounts.jsonl and traffic.jsonl(.zst). Each run is a fresh process; its peak
resident set comes from getrusage (ru_maxrss of the waited-for child), its exchanges/s and
engine state bytes per account from the summary that `moat replay` prints. If DATA has
campaign_accounts.txt (bench/replay/gen_synthetic.py), also prints how many of those
accounts the replay flagged. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(moat: str, data: Path, out: Path) -> dict:
    traffic = data / "traffic.jsonl.zst"
    if not traffic.exists():
        traffic = data / "traffic.jsonl"
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child: exec the replay with stdout to a file
        fd = os.open(out / "summary.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.execv(moat, [moat, "replay", "--traffic", str(traffic),
                        "--accounts", str(data / "accounts.jsonl"), "--out", str(out)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"moat replay failed with status {status}")
    s = json.loads((out / "summary.json").read_text())
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_rss_mib": ru.ru_maxrss / 1024, "summary": s}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--moat", default="target/release/moat")
    ap.add_argument("--keep", help="keep the last run's output here")
    a = ap.parse_args()
    data = Path(a.data)
    results = []
    for i in range(a.runs):
        with tempfile.TemporaryDirectory(prefix="moat-replay-") as d:
            out = Path(a.keep) if a.keep else Path(d)
            out.mkdir(parents=True, exist_ok=True)
            r = one(a.moat, data, out)
            s = r["summary"]
            r["load1"] = os.getloadavg()[0]
            results.append(r)
            print(f"run {i + 1}: {s['lines']:,} exchanges, {s['accounts']:,} accounts, "
                  f"{r['wall_s']:.2f} s wall, {s['exchanges_per_second']:,.0f} exchanges/s "
                  f"(replay's own clock), {r['cpu_s']:.1f} s CPU, peak RSS {r['peak_rss_mib']:.1f} MiB, "
                  f"state {s['state_bytes_per_account']:,.0f} B/account "
                  f"(fixed part {s['account_state_bytes']} B), load {r['load1']:.1f}", file=sys.stderr)
            camp = data / "campaign_accounts.txt"
            if i == a.runs - 1 and camp.exists():
                want = set(camp.read_text().split())
                flagged = total_benign = fp = 0
                for line in (out / "accounts.jsonl").read_text().splitlines():
                    x = json.loads(line)
                    bad = x.get("verdict") not in (None, "benign", "normal", "ok")
                    if x["account"] in want:
                        flagged += bad
                    else:
                        total_benign += 1
                        fp += bad
                print(f"campaign accounts flagged: {flagged} of {len(want)}; other accounts "
                      f"flagged: {fp} of {total_benign}; actions: {s['actions']}", file=sys.stderr)
    med = lambda k: statistics.median(k(r) for r in results)  # noqa: E731
    s = results[-1]["summary"]
    print(json.dumps({
        "data": str(data), "runs": a.runs, "exchanges": s["lines"], "accounts": s["accounts"],
        "median_exchanges_per_second": med(lambda r: r["summary"]["exchanges_per_second"]),
        "median_wall_s": med(lambda r: r["wall_s"]),
        "median_exchanges_per_wall_second": med(lambda r: s["lines"] / r["wall_s"]),
        "median_peak_rss_mib": med(lambda r: r["peak_rss_mib"]),
        "state_bytes_per_account": s["state_bytes_per_account"],
        "peak_rss_bytes_per_account": med(lambda r: r["peak_rss_mib"]) * 2**20 / max(1, s["accounts"]),
        "runs_detail": [{k: v for k, v in r.items() if k != "summary"} for r in results],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
