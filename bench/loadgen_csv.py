#!/usr/bin/env python3
"""Shared by the bench scripts that drive `loadgen` (bench/gateway, bench/scale-out).

  loadgen_csv.py header                       the CSV header
  loadgen_csv.py row ROUND TARGET < output    one CSV row from loadgen's output
  loadgen_csv.py medians CSV TARGET... [--ratio COL:A:B:LABEL] [--diff COL:A:B:LABEL]
      the median of every column per target over rounds, then A/B ratios and A-B
      differences of a column's medians
"""
import csv
import re
import statistics
import sys

COLUMNS = ["round", "target", "req_per_s", "p50_ms", "p99_ms", "cpu_us_per_req", "errors"]
PATTERNS = {
    "req_per_s": r"rps=([\d.]+)",
    "p50_ms": r"p50_ms=([\d.]+)",
    "p99_ms": r"p99_ms=([\d.]+)",
    "cpu_us_per_req": r"cpu_per_request_us=([\d.]+)",
    "errors": r"errors=(\d+)",
}


def row(rnd, target, text):
    def find(p):
        m = re.search(p, text)
        return m.group(1) if m else "nan"
    return ",".join([rnd, target] + [find(PATTERNS[c]) for c in COLUMNS[2:]])


def medians(path, targets, ratios, diffs):
    rows = list(csv.DictReader(open(path)))

    def med(t, k):
        v = [float(r[k]) for r in rows if r["target"] == t and r[k] != "nan"]
        return statistics.median(v) if v else float("nan")

    print("\nmedians over rounds")
    print(f"{'target':9} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'server CPU µs/req':>18} {'errors':>6}")
    for t in targets:
        print(f"{t:9} {med(t, 'req_per_s'):9.0f} {med(t, 'p50_ms'):7.2f} {med(t, 'p99_ms'):7.2f} "
              f"{med(t, 'cpu_us_per_req'):18.1f} {med(t, 'errors'):6.0f}")
    for spec in ratios:
        col, a, b, label = spec.split(":", 3)
        print(f"{label}: {med(a, col) / med(b, col):.2f}x")
    for spec in diffs:
        col, a, b, label = spec.split(":", 3)
        print(f"{label}: {med(a, col) - med(b, col):+.2f}")


def main(argv):
    if argv[:1] == ["header"]:
        print(",".join(COLUMNS))
    elif argv[:1] == ["row"]:
        print(row(argv[1], argv[2], sys.stdin.read()))
    elif argv[:1] == ["medians"]:
        rest, targets, ratios, diffs = argv[2:], [], [], []
        while rest:
            a = rest.pop(0)
            if a == "--ratio":
                ratios.append(rest.pop(0))
            elif a == "--diff":
                diffs.append(rest.pop(0))
            else:
                targets.append(a)
        medians(argv[1], targets, ratios, diffs)
    else:
        sys.exit(__doc__)


main(sys.argv[1:])
