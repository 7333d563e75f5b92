#!/usr/bin/env python3
"""Turns a bench/compare/run.sh result folder into summary.md and latency.png.

    python3 bench/compare/summarize.py bench/results/compare-<time>

Every figure is a median over rounds; added latency and time-to-first-byte overhead are taken
against the direct baseline of the same round and rate before the median is taken.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ORDER = ["direct", "moat_on", "moat_thr", "moat_off", "nginx", "litellm", "unmimic"]
LABEL = {
    "direct": "direct (baseline)",
    "moat_on": "moat, everything on",
    "moat_thr": "moat, everything on, threads = auto",
    "moat_off": "moat, protections off",
    "nginx": "nginx reverse proxy",
    "litellm": "LiteLLM proxy",
    "unmimic": "unmimic proxy",
}
CPU_RATES = (50, 1000)


def med(v):
    v = [x for x in v if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(v) if v else float("nan")


def fmt(x, nd=2):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{nd}f}"


def main() -> int:
    out = Path(sys.argv[1])
    sys.path.insert(0, str(Path(__file__).parent))
    from drive import P99_BOUND_MS, sustained  # noqa: PLC0415

    pts, rss = [], {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "peak_rss_mib" in r:
            rss[r["system"]] = r["peak_rss_mib"]
        else:
            pts.append(r)
    systems = [s for s in ORDER if any(p["system"] == s for p in pts)]
    rounds = sorted({p["round"] for p in pts})
    by = {(p["system"], p["round"], p["rate"]): p for p in pts}
    rates = sorted({p["rate"] for p in pts})

    # Highest sustained rate of each round.
    sus = {}
    for s in systems:
        per = []
        for r in rounds:
            ok = [p["rate"] for p in pts if p["system"] == s and p["round"] == r and sustained(p)]
            per.append(max(ok) if ok else 0)
        sus[s] = (med(per), per)

    def added(s, rate, k):
        v = []
        for r in rounds:
            a, b = by.get((s, r, rate)), by.get(("direct", r, rate))
            if a and b and sustained(a):
                v.append(a[k] - b[k])
        return med(v)

    lines = [f"# Gateway comparison ({out.name})", ""]
    lines += ["```", (out / "machine.txt").read_text().strip(), "```", ""]
    lines += [
        f"Sustained: < 1 % errors, ≥ 95 % of the offered rate answered and p99 ≤ {P99_BOUND_MS:g} ms "
        f"(coordinated-omission corrected), highest such rate of the ladder {rates}; median of "
        f"{len(rounds)} rounds (per-round values in brackets). CPU: all processes of the system, "
        "per 1,000 answered requests. Peak memory: VmHWM summed over its processes.",
        "",
        "| system | sustained req/s | × direct | CPU ms / 1k req "
        + " | ".join(f"@{r}/s" for r in CPU_RATES)
        + " | peak RSS MiB |",
        "|---|---|---|" + "---|" * len(CPU_RATES) + "---|",
    ]
    for s in systems:
        cpu = [med([by[(s, r, rate)]["cpu_ms_per_1000"] for r in rounds if (s, r, rate) in by
                    and sustained(by[(s, r, rate)])]) for rate in CPU_RATES]
        base = sus["direct"][0] if "direct" in sus else float("nan")
        lines.append(
            f"| {LABEL[s]} | {fmt(sus[s][0], 0)} {sus[s][1]} | {fmt(sus[s][0] / base if base else float('nan'))} "
            "| " + " | ".join(fmt(c, 0) for c in cpu)
            + f" | {fmt(rss.get(s), 1)} |"
        )
    lines += ["", "Added latency over direct (ms, p50 / p90 / p99), same round and rate, median of rounds "
              "(– where the system did not sustain the rate):", ""]
    lines.append("| rate req/s | " + " | ".join(LABEL[s] for s in systems if s != "direct") + " | direct p50 / p90 / p99 |")
    lines.append("|---|" + "---|" * len(systems))
    for rate in rates:
        cells = []
        for s in systems:
            if s == "direct":
                continue
            v = [added(s, rate, k) for k in ("p50_ms", "p90_ms", "p99_ms")]
            cells.append(" / ".join(fmt(x) for x in v) if not math.isnan(v[0]) else "–")
        d = [med([by[("direct", r, rate)][k] for r in rounds if ("direct", r, rate) in by])
             for k in ("p50_ms", "p90_ms", "p99_ms")]
        lines.append(f"| {rate:,} | " + " | ".join(cells) + " | " + " / ".join(fmt(x) for x in d) + " |")

    tpath = out / "ttfb.jsonl"
    if tpath.exists():
        tt = [json.loads(x) for x in tpath.read_text().splitlines()]
        tb = {(t["system"], t["round"], t["shape"], t["stream"]): t for t in tt}
        combos = [("chat", False), ("chat", True), ("messages", False), ("messages", True)]
        name = {("chat", False): "OpenAI", ("chat", True): "OpenAI streamed",
                ("messages", False): "Anthropic", ("messages", True): "Anthropic streamed"}
        lines += ["", "Time to first byte, sequential requests on one connection: median TTFB "
                  "minus direct's in the same round (ms; direct's own median in the last row):", ""]
        lines.append("| system | " + " | ".join(name[c] for c in combos) + " |")
        lines.append("|---|" + "---|" * len(combos))
        for s in [x for x in systems if x != "direct"] + ["direct"]:
            cells = []
            for c in combos:
                if s == "direct":
                    v = [tb[(s, r, *c)]["p50_ms"] for r in rounds if (s, r, *c) in tb]
                else:
                    v = [
                        tb[(s, r, *c)]["p50_ms"] - tb[("direct", r, *c)]["p50_ms"]
                        for r in rounds
                        if (s, r, *c) in tb and ("direct", r, *c) in tb and tb[(s, r, *c)]["n"] > 0
                    ]
                cells.append(fmt(med(v), 3) if v else "n/a")
            label = "direct (absolute)" if s == "direct" else LABEL[s]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    for ax, k, title in ((axes[0], "p50_ms", "p50"), (axes[1], "p99_ms", "p99 (corrected)")):
        for s in systems:
            xs, ys = [], []
            for rate in rates:
                v = [by[(s, r, rate)][k] for r in rounds if (s, r, rate) in by and sustained(by[(s, r, rate)])]
                if len(v) * 2 > len(rounds):  # sustained in most rounds
                    xs.append(rate)
                    ys.append(med(v))
            ax.plot(xs, ys, marker="o", label=LABEL[s])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered rate (requests/s, open loop)")
        ax.set_ylabel(f"{title} latency (ms)")
        ax.set_title(f"{title} latency vs. rate (sustained points only)")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
