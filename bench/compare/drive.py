#!/usr/bin/env python3
"""Drives the systems started by bench/compare/run.sh (standard library only).

For each round, each system and each rate of the ladder: oha sends OpenAI chat requests at
that fixed rate for a few seconds (open loop, latency corrected for coordinated omission)
while the system's CPU time (all its processes, from /proc/PID/stat) is read before and
after. A system's ladder stops after two rates in a row it does not sustain (see ``sustained``).
Then time to first byte: sequential requests over one keep-alive connection (curl), streamed
and not, OpenAI and Anthropic shapes. Every measurement is one JSON line in
OUT/results.jsonl or OUT/ttfb.jsonl; summarize.py turns them into the table and the plot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Summarise the plot of a short story about a lighthouse keeper."
# Latency bound for "sustained": p99 (corrected) at or under this many milliseconds.
P99_BOUND_MS = 50.0
TICK = os.sysconf("SC_CLK_TCK")


def body(stream: bool) -> str:
    """One request body valid for both API shapes (Anthropic needs max_tokens)."""
    return json.dumps(
        {
            "model": "demo-echo",
            "max_tokens": 32,
            "stream": stream,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    )


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(root: int) -> float:
    """User + system CPU time of the process tree, in seconds."""
    total = 0
    for p in tree(root):
        try:
            f = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        rest = f[f.rfind(")") + 2 :].split()
        total += int(rest[11]) + int(rest[12])
    return total / TICK


def peak_rss_mib(root: int) -> float:
    """Sum of VmHWM (peak resident set) over the process tree, MiB."""
    kib = 0
    for p in tree(root):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    kib += int(line.split()[1])
        except OSError:
            continue
    return kib / 1024


def headers(key: str) -> list[str]:
    h = ["-H", "content-type: application/json"]
    if key:
        h += ["-H", f"authorization: Bearer {key}", "-H", f"x-api-key: {key}"]
    return h


def oha(exe: str, url: str, key: str, rate: int, secs: float) -> dict:
    cmd = [
        exe, url, "--no-tui", "--output-format", "json", "-m", "POST", "-d", body(False),
        "-q", str(rate), "-z", f"{secs}s", "-c", "128", "--latency-correction",
        "--wait-ongoing-requests-after-deadline", *headers(key),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=secs * 4 + 60)
    if p.returncode != 0:
        raise RuntimeError(f"oha failed: {p.stderr[-2000:]}")
    return json.loads(p.stdout)


def point(exe: str, sysrow: dict, rate: int, secs: float) -> dict:
    pid = sysrow["pid"]
    c0, t0 = cpu_seconds(pid), time.monotonic()
    r = oha(exe, sysrow["chat"], sysrow["key"], rate, secs)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    codes = {int(k): v for k, v in (r.get("statusCodeDistribution") or {}).items()}
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    errors = sum(v for k, v in codes.items() if not 200 <= k < 300)
    errors += sum((r.get("errorDistribution") or {}).values())
    total = ok + errors
    pct = r.get("latencyPercentiles") or {}
    ms = lambda k: (pct.get(k) or float("nan")) * 1000  # noqa: E731
    return {
        "rate": rate,
        "seconds": secs,
        "ok": ok,
        "errors": errors,
        "error_pct": 100.0 * errors / total if total else 100.0,
        "achieved_rps": ok / (r["summary"]["total"] or secs),
        "p50_ms": ms("p50"),
        "p90_ms": ms("p90"),
        "p99_ms": ms("p99"),
        "cpu_s": c1 - c0,
        "cpu_ms_per_1000": 1e6 * (c1 - c0) / ok if ok else float("nan"),
        "cpu_cores": (c1 - c0) / (t1 - t0),
        "error_kinds": r.get("errorDistribution") or {},
    }


def sustained(p: dict) -> bool:
    """< 1 % errors, ≥ 95 % of the offered rate answered, corrected p99 within the bound."""
    return (
        p["error_pct"] < 1.0
        and p["achieved_rps"] >= 0.95 * p["rate"]
        and p["p99_ms"] <= P99_BOUND_MS
    )


def ttfb(url: str, key: str, stream: bool, n: int) -> list[float]:
    """Seconds to the first response byte of `n` sequential requests on one connection."""
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as f:
        for _ in range(n):
            f.write(f'url = "{url}"\noutput = "/dev/null"\n')
        cfg = f.name
    try:
        p = subprocess.run(
            ["curl", "-s", "-K", cfg, "-X", "POST", "--data-binary", body(stream),
             *headers(key), "-w", "%{http_code} %{time_starttransfer}\\n"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        os.unlink(cfg)
    out = []
    for line in p.stdout.split("\n"):
        parts = line.split()
        if len(parts) == 2 and parts[0] == "200":
            out.append(float(parts[1]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--systems", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rates", default="50 100 250 500 1000 2000 4000 8000")
    ap.add_argument("--ttfb-requests", type=int, default=200)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    systems = []
    for line in Path(a.systems).read_text().splitlines():
        f = line.split("\t")
        systems.append(
            {"name": f[0], "pid": int(f[1]), "chat": f[2], "messages": f[3],
             "key": f[4] if len(f) > 4 else ""}
        )
    rates = [int(x) for x in a.rates.split()]
    out = Path(a.out)
    res = (out / "results.jsonl").open("a")
    # Warm every system up (connection pools, JIT-less Python imports, caches).
    for s in systems:
        try:
            oha(a.oha, s["chat"], s["key"], 100, 2)
        except Exception as e:  # noqa: BLE001
            print(f"warm-up of {s['name']} failed: {e}", file=sys.stderr)
    for rnd in range(1, a.rounds + 1):
        for s in systems:
            fails = 0
            for rate in rates:
                p = point(a.oha, s, rate, a.seconds)
                p.update(system=s["name"], round=rnd, load1=os.getloadavg()[0])
                res.write(json.dumps(p) + "\n")
                res.flush()
                print(
                    f"[r{rnd}] {s['name']:9} {rate:6}/s -> {p['achieved_rps']:8.0f}/s "
                    f"err {p['error_pct']:5.2f}% p50 {p['p50_ms']:7.2f} p90 {p['p90_ms']:7.2f} "
                    f"p99 {p['p99_ms']:8.2f} ms  cpu {p['cpu_ms_per_1000']:7.1f} ms/1k",
                    file=sys.stderr,
                )
                # One miss can be noise on a shared machine; two in a row end the ladder.
                fails = 0 if sustained(p) else fails + 1
                if fails == 2:
                    break
                time.sleep(0.5)
    tt = (out / "ttfb.jsonl").open("a")
    for rnd in range(1, a.rounds + 1):
        for s in systems:
            for shape in ("chat", "messages"):
                if s[shape] == "-":
                    continue
                for stream in (False, True):
                    v = ttfb(s[shape], s["key"], stream, a.ttfb_requests)
                    v.sort()
                    rec = {"system": s["name"], "round": rnd, "shape": shape,
                           "stream": stream, "n": len(v),
                           "p50_ms": 1000 * v[len(v) // 2] if v else None,
                           "p90_ms": 1000 * v[int(len(v) * 0.9)] if v else None}
                    tt.write(json.dumps(rec) + "\n")
                    tt.flush()
    for s in systems:
        res.write(json.dumps({"system": s["name"], "peak_rss_mib": peak_rss_mib(s["pid"])}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
