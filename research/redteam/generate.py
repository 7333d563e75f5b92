"""Red-team traffic generator: writes a labelled week of API traffic in the DESIGN.md format.

    python3 -m redteam.generate --seed 1 --out DIR [--scale 1.0] [--strategies a,b,...]
                                [--benign a,b,...|none] [--days 7] [--start 2026-05-04]
                                [--set STRATEGY.KNOB=VALUE ...] [--holdout STRATEGY]

Writes DIR/traffic.jsonl.zst, DIR/accounts.jsonl, DIR/labels.jsonl, DIR/manifest.json.
Run from research/ (the corpora are read from research/.venv, see README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from . import benign as B
from . import common as C
from . import corpora
from . import strategies as S


def _parse_value(v):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def default_start(seed):
    # a Monday in 2026, varied by seed (never tied to any other data set's dates)
    base = datetime(2026, 4, 6, tzinfo=timezone.utc)
    return base + timedelta(days=7 * ((seed * 7919) % 30))


def write_zst(path, lines_iter):
    try:
        import zstandard  # noqa: F401
        have = True
    except ImportError:
        have = False
    if have:
        import zstandard
        cctx = zstandard.ZstdCompressor(level=3, threads=-1)
        with open(path, "wb") as f, cctx.stream_writer(f) as w:
            for line in lines_iter:
                w.write(line)
        return
    p = subprocess.Popen(["zstd", "-q", "-3", "-f", "-o", path], stdin=subprocess.PIPE)
    for line in lines_iter:
        p.stdin.write(line)
    p.stdin.close()
    if p.wait() != 0:
        raise SystemExit("zstd failed")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m redteam.generate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the number of accounts (benign and attacking)")
    ap.add_argument("--strategies", default="all", help="comma-separated attack strategies, 'all' or 'none'")
    ap.add_argument("--benign", default="all", help="comma-separated benign kinds, 'all' or 'none'")
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--start", default=None, help="first day (YYYY-MM-DD, UTC); default depends on the seed")
    ap.add_argument("--set", action="append", default=[], metavar="STRATEGY.KNOB=VALUE",
                    help="override a knob (value parsed as JSON when it parses), e.g. --set hydra_shared.accounts=80")
    ap.add_argument("--holdout-split", "--holdout", dest="holdout", action="append", default=[], metavar="STRATEGY[,...]",
                    help="name strategies held out of training in manifest.json's holdout_split (the traffic is "
                         "unchanged; a leave-one-strategy-out evaluation filters labels by 'strategy')")
    ap.add_argument("--list", action="store_true", help="list strategies and benign kinds and exit")
    a = ap.parse_args(argv)

    if a.list:
        for n, (fn, d) in S.STRATEGIES.items():
            print(f"attack  {n:20s} {(fn.__doc__ or '').strip().splitlines()[0]}")
        for n, (fn, d, m) in B.BENIGN.items():
            print(f"benign  {n:20s} mirrors: {m}")
        return 0

    if not a.out:
        ap.error("--out is required")
    t_start = time.time()
    strategies = list(S.STRATEGIES) if a.strategies == "all" else [] if a.strategies == "none" else \
        [x.strip() for x in a.strategies.split(",") if x.strip()]
    kinds = list(B.BENIGN) if a.benign == "all" else [] if a.benign == "none" else \
        [x.strip() for x in a.benign.split(",") if x.strip()]
    for x in strategies:
        if x not in S.STRATEGIES:
            ap.error(f"unknown strategy {x!r}; known: {', '.join(S.STRATEGIES)}")
    for x in kinds:
        if x not in B.BENIGN:
            ap.error(f"unknown benign kind {x!r}; known: {', '.join(B.BENIGN)}")
    overrides: dict[str, dict] = {}
    for s in a.set:
        if "=" not in s or "." not in s.split("=", 1)[0]:
            ap.error(f"--set wants STRATEGY.KNOB=VALUE, got {s!r}")
        k, v = s.split("=", 1)
        name, knob = k.split(".", 1)
        overrides.setdefault(name, {})[knob] = _parse_value(v)

    start = datetime.strptime(a.start, "%Y-%m-%d").replace(tzinfo=timezone.utc) if a.start else default_start(a.seed)
    start_ms = int(start.timestamp() * 1000)

    try:
        corp = corpora.load(a.seed)
    except corpora.CorpusMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t_corpora = time.time() - t_start

    sink = C.Sink(a.seed, start_ms, a.days)
    manifest = {"seed": a.seed, "scale": a.scale, "days": a.days, "start": C.iso(start_ms),
                "end": C.iso(sink.end_ms), "strategies": {}, "benign": {},
                "holdout_split": {"held_out": [x for h in a.holdout for x in h.split(",") if x],
                                  "note": "leave-one-strategy-out: filter labels.jsonl lines by 'strategy'; "
                                          "'folds' maps each strategy to its accounts (mixed accounts of "
                                          "reseller_mixed / leaked_key also carry benign lines, strategy null)"}}
    timings = {}
    for name in strategies:
        t = time.time()
        manifest["strategies"][name] = S.run_strategy(name, sink, corp, overrides.get(name), a.scale)
        timings[name] = round(time.time() - t, 2)
    for name in kinds:
        t = time.time()
        manifest["benign"][name] = B.run_benign(name, sink, corp, overrides.get(name), a.scale)
        timings[name] = round(time.time() - t, 2)
    t_gen = time.time() - t_start - t_corpora

    os.makedirs(a.out, exist_ok=True)
    sink.events.sort(key=lambda e: (e[0], e[1]))
    try:
        import orjson
        _od = orjson.dumps
        dumps = lambda o: _od(o).decode("utf-8")  # noqa: E731
        dumpb = _od
    except ImportError:
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        dumpb = lambda o: dumps(o).encode("utf-8")  # noqa: E731
    t_write = time.time()
    labels_out = []
    per_kind: dict[str, int] = {}
    per_campaign: dict[str, dict] = {}
    cover = 0

    def lines():
        nonlocal cover
        for ts, _, ev, lab in sink.events:
            line = {"ts": C.iso(ts)}
            line.update(ev)
            labels_out.append(dumps(lab))
            per_kind[lab["kind"]] = per_kind.get(lab["kind"], 0) + 1
            if lab["campaign"]:
                d = per_campaign.setdefault(lab["campaign"], {"exchanges": 0, "accounts": set()})
                d["exchanges"] += 1
                d["accounts"].add(lab["account"])
                if lab.get("cover"):
                    cover += 1
            yield dumpb(line) + b"\n"

    write_zst(os.path.join(a.out, "traffic.jsonl.zst"), lines())
    with open(os.path.join(a.out, "labels.jsonl"), "w", encoding="utf-8") as f:
        for l in labels_out:
            f.write(l + "\n")
    used = {}
    for _, _, ev, _ in sink.events:
        used[ev["account"]] = used.get(ev["account"], 0) + 1
    with open(os.path.join(a.out, "accounts.jsonl"), "w", encoding="utf-8") as f:
        for acct, meta in sink.accounts.items():
            if acct in used:
                f.write(dumps(meta) + "\n")
    attack_accounts = sorted({x for d in per_campaign.values() for x in d["accounts"]})
    benign_accounts = [x for x in used if x not in set(attack_accounts)]
    manifest["counts"] = {
        "exchanges": len(sink.events), "accounts": len(used), "attack_accounts": len(attack_accounts),
        "benign_accounts": len(benign_accounts),
        "attack_exchanges": sum(d["exchanges"] for d in per_campaign.values()),
        "attack_cover_exchanges": cover,
        "per_campaign": {k: {"exchanges": v["exchanges"], "accounts": len(v["accounts"])} for k, v in sorted(per_campaign.items())},
        "per_kind": dict(sorted(per_kind.items())),
    }
    manifest["holdout_split"]["folds"] = {k: sorted(v["accounts"]) for k, v in sorted(per_campaign.items())}
    manifest["timing_s"] = {"corpora": round(t_corpora, 2), "generate": round(t_gen, 2),
                            "write": round(time.time() - t_write, 2),
                            "total": round(time.time() - t_start, 2), "per_component": timings}
    with open(os.path.join(a.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False, default=list)
    c = manifest["counts"]
    print(f"wrote {a.out}: {c['exchanges']} exchanges, {c['accounts']} accounts "
          f"({c['attack_accounts']} attacking, {c['attack_exchanges']} attack exchanges) in {manifest['timing_s']['total']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
