#!/usr/bin/env python3
"""Leave-one-strategy-out evaluation of moat's detection.

For every attack strategy S of the generated sets (research/redteam):
  1. fit the engine's weights (fit.py) on the training set's snapshots with every exchange
     of S left out;
  2. replay the *test* set (another seed: other accounts, prompts, addresses) with those
     weights;
  3. report S's figures on the test set (TPR, leakage, exchanges before the first action)
     and every benign kind's (FPR, benign impact) under that fold's weights.
The goals (DESIGN.md) must hold for the worst held-out strategy, not the average.

usage:
  loso.py --train A --test B --moat target/release/moat [--work /tmp/loso] [--only S ...]
          [--json out.json]
A and B are generated sets (traffic.jsonl.zst, accounts.jsonl, labels.jsonl).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESTRICTIVE = {"degrade", "challenge", "block"}
GOALS = {"fpr": 0.001, "tpr": 0.99, "leakage": 0.02, "impact": 0.0005}


def read_labels(d):
    with open(Path(d) / "labels.jsonl") as f:
        return [json.loads(l) for l in f]


def replay(moat, data, out, config=None, snapshots=None):
    # `moat replay` or the development driver `moat-replay --example replay` (same flags)
    example = Path(moat).name == "replay"
    cmd = [moat]
    if config and not example:
        cmd += ["--config", str(config)]
    cmd += [] if example else ["replay"]
    cmd += ["--traffic", str(Path(data) / "traffic.jsonl.zst"),
            "--accounts", str(Path(data) / "accounts.jsonl"), "--out", str(out)]
    if config and example:
        cmd += ["--config", str(config)]
    if snapshots:
        cmd += ["--snapshots", str(snapshots)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"replay failed: {p.stderr[-2000:]}")
    return p


def write_config(weights_json, path):
    w = json.load(open(weights_json))
    with open(path, "w") as f:
        f.write("[detect.weights]\n")
        for k, v in w.items():
            f.write(f"{k} = {v!r}\n")


def evaluate(labels, decisions_path):
    """Per strategy and per benign kind figures of one replay."""
    acts = []
    with open(decisions_path) as f:
        for line in f:
            acts.append(json.loads(line)["action"])
    assert len(acts) == len(labels), (len(acts), len(labels))
    strat = defaultdict(lambda: {"accounts": set(), "ex": 0, "leaked": 0, "per_acct": defaultdict(int),
                                 "first": {}, "actioned": set()})
    kind = defaultdict(lambda: {"accounts": set(), "ex": 0, "hit": 0, "throttled": 0, "actioned": set()})
    attack_accounts = {l["account"] for l in labels if l.get("campaign")}
    for l, a in zip(labels, acts):
        acct = l["account"]
        if l.get("campaign"):
            s = strat[l.get("strategy") or l["campaign"]]
            s["accounts"].add(acct)
            s["ex"] += 1
            s["per_acct"][acct] += 1
            if a in RESTRICTIVE:
                s["actioned"].add(acct)
                s["first"].setdefault(acct, s["per_acct"][acct])
            else:
                s["leaked"] += 1
        else:
            # real end users of a mixed account count as benign exchanges (impact), but
            # the account itself is an attacking one (not in the FPR)
            k = kind[l.get("kind") or "benign"] if acct not in attack_accounts else kind["mixed-account end users"]
            k["accounts"].add(acct)
            k["ex"] += 1
            if a in RESTRICTIVE:
                k["hit"] += 1
                k["actioned"].add(acct)
            elif a == "throttle":
                k["throttled"] += 1
    out_s = {}
    for name, s in strat.items():
        n_acct = len(s["accounts"])
        firsts = sorted(s["first"].values())
        out_s[name] = {
            "accounts": n_acct,
            "exchanges": s["ex"],
            "exchanges_per_account": s["ex"] / max(1, n_acct),
            "tpr": len(s["actioned"]) / max(1, n_acct),
            "leakage": s["leaked"] / max(1, s["ex"]),
            "first_action_median": statistics.median(firsts) if firsts else None,
        }
    out_k = {}
    for name, k in kind.items():
        mixed = name == "mixed-account end users"
        out_k[name] = {
            "accounts": len(k["accounts"]),
            "exchanges": k["ex"],
            "fpr": None if mixed else len(k["actioned"]) / max(1, len(k["accounts"])),
            "actioned_accounts": None if mixed else len(k["actioned"]),
            "impact": k["hit"] / max(1, k["ex"]),
            "throttled": k["throttled"] / max(1, k["ex"]),
        }
    benign_accounts = sum(v["accounts"] for n, v in out_k.items() if v["fpr"] is not None)
    benign_actioned = sum(v["actioned_accounts"] for v in out_k.values() if v["fpr"] is not None)
    benign_ex = sum(v["exchanges"] for v in out_k.values())
    benign_hit = sum(round(v["impact"] * v["exchanges"]) for v in out_k.values())
    overall = {"fpr": benign_actioned / max(1, benign_accounts),
               "impact": benign_hit / max(1, benign_ex),
               "benign_accounts": benign_accounts, "benign_actioned": benign_actioned}
    return out_s, out_k, overall


def fmt_pct(x):
    return "—" if x is None else f"{100 * x:.2f} %"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--moat", required=True)
    ap.add_argument("--work", default="/tmp/moat-loso")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--json")
    ap.add_argument("--write-default", help="also fit on every strategy and write the weights here")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable

    train_labels = read_labels(a.train)
    test_labels = read_labels(a.test)
    strategies = sorted({l.get("strategy") or l["campaign"] for l in train_labels if l.get("campaign")})
    if a.only:
        strategies = [s for s in strategies if s in a.only]

    snaps = work / "train-snapshots.jsonl"
    replay(a.moat, a.train, work / "train-replay", snapshots=snaps)

    rows, kinds_worst, overall_worst = {}, {}, {"fpr": 0.0, "impact": 0.0}
    folds = [(s, [s]) for s in strategies]
    if a.write_default:
        folds.append(("(all strategies)", []))
    for name, excl in folds:
        wpath = work / f"weights-{name.replace(' ', '_').strip('()')}.json"
        fit = subprocess.run([py, str(HERE / "fit.py"), "--snapshots", str(snaps), "--labels",
                              str(Path(a.train) / "labels.jsonl"), "--out", str(wpath),
                              "--exclude", *excl], capture_output=True, text=True)
        if fit.returncode != 0:
            sys.exit(f"fit failed for {name}: {fit.stderr[-2000:]}")
        cfg = work / f"moat-{wpath.stem}.toml"
        write_config(wpath, cfg)
        out = work / f"test-{wpath.stem}"
        replay(a.moat, a.test, out, config=cfg)
        s, k, overall = evaluate(test_labels, out / "decisions.jsonl")
        if excl:
            rows[name] = s.get(name)
            for kn, kv in k.items():
                w = kinds_worst.setdefault(kn, dict(kv))
                for m in ("fpr", "impact", "throttled"):
                    if kv[m] is not None and (w[m] is None or kv[m] > w[m]):
                        w[m] = kv[m]
            for m in ("fpr", "impact"):
                overall_worst[m] = max(overall_worst[m], overall[m])
        else:
            rows[name] = {"all": s, "overall": overall, "kinds": k}
            if a.write_default:
                Path(a.write_default).write_text(wpath.read_text())
        print(f"fold {name}: {fit.stdout.strip()}", file=sys.stderr)

    print("\n### Held-out strategies (each fitted without it, scored on the test set)\n")
    print("| strategy | accounts | exchanges/account | TPR | leakage | median exchanges before first action | goals |")
    print("|---|---|---|---|---|---|---|")
    worst = None
    for name in strategies:
        r = rows.get(name)
        if not r:
            print(f"| {name} | not in the test set | | | | | |")
            continue
        ok = r["tpr"] >= GOALS["tpr"] and r["leakage"] <= GOALS["leakage"]
        active = r["exchanges_per_account"] >= 100
        if active and (worst is None or (r["tpr"], -r["leakage"]) < (worst[1]["tpr"], -worst[1]["leakage"])):
            worst = (name, r)
        print(f"| {name} | {r['accounts']} | {r['exchanges_per_account']:.0f} | {fmt_pct(r['tpr'])} | "
              f"{fmt_pct(r['leakage'])} | {r['first_action_median']} | {'met' if ok else 'missed'}"
              f"{'' if active else ' (< 100 exchanges/account)'} |")
    print("\n### Benign kinds (worst over the folds)\n")
    print("| benign kind | accounts | exchanges | FPR | benign impact | throttled |")
    print("|---|---|---|---|---|---|")
    for kn in sorted(kinds_worst):
        v = kinds_worst[kn]
        print(f"| {kn} | {v['accounts']} | {v['exchanges']} | {fmt_pct(v['fpr'])} | {fmt_pct(v['impact'])} | "
              f"{fmt_pct(v['throttled'])} |")
    print(f"\nWorst fold overall: account FPR {fmt_pct(overall_worst['fpr'])}, benign impact "
          f"{fmt_pct(overall_worst['impact'])}")
    if worst:
        print(f"Worst held-out strategy (>= 100 exchanges/account): {worst[0]}: TPR {fmt_pct(worst[1]['tpr'])}, "
              f"leakage {fmt_pct(worst[1]['leakage'])}")
    if a.json:
        Path(a.json).write_text(json.dumps({"strategies": rows, "kinds": kinds_worst,
                                            "overall_worst": overall_worst}, indent=1, default=list))


if __name__ == "__main__":
    main()
