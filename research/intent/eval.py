"""Held-out evaluation: by phrasing family and by language (train on the rest, test on the
held-out part), per intent; plus the shipped (int8) model end to end through the Rust
scorer, and the external anti-distillation prompt set when present.

    research/intent/.venv/bin/python research/intent/eval.py [--quick] [--out results.md]

Per fold and intent: AUC (held-out attacks of the intent vs held-out hard negatives +
ordinary prompts), attack flag rate (own intent at its operating threshold), hard-negative
and ordinary flag rates (own intent), and 'any' = share of held-out attacks of the intent
that get an intent reason (any head flagged). Thresholds come from the training side only.
"""
import argparse
import json
import subprocess
import sys

import numpy as np

from common import (DEFAULTS, HERE, INTENTS, ROOT, auc, cargo_env, family_folds, featurize, labels, load_rows, matrix,
                    predict, train_calibrated)

LANG_GROUPS = [["zh", "ja"], ["ru", "ko"], ["es", "pt", "it"], ["fr", "de"], ["ar", "hi"], ["en"]]


def metrics(p, thr, rows, test):
    y = labels(rows)
    kind = np.array([r["kind"] for r in rows])
    res = {}
    flagged_any = (p >= thr).any(axis=1)
    for k, name in enumerate(INTENTS):
        pos = test & (y == k)
        neg = test & (kind != "attack")
        hn = test & (kind == "hardneg")
        od = test & (kind == "ordinary")
        fl = p[:, k] >= thr[k]
        res[name] = dict(n=int(pos.sum()), auc=auc(p[:, k], pos, neg),
                         attack=float(fl[pos].mean()) if pos.any() else float("nan"),
                         any=float(flagged_any[pos].mean()) if pos.any() else float("nan"),
                         hardneg=float(fl[hn].mean()) if hn.any() else float("nan"),
                         ordinary=float(fl[od].mean()) if od.any() else float("nan"))
    hn = test & (kind == "hardneg")
    od = test & (kind == "ordinary")
    res["_neg_any"] = dict(hardneg=float(flagged_any[hn].mean()) if hn.any() else float("nan"),
                           ordinary=float(flagged_any[od].mean()) if od.any() else float("nan"),
                           n_hardneg=int(hn.sum()), n_ordinary=int(od.sum()))
    return res


def run_folds(X, rows, folds, cfg):
    y = labels(rows)
    out = []
    for name, train_mask, test_mask in folds:
        model = train_calibrated(X, y, rows, np.flatnonzero(train_mask), cfg)
        te = np.flatnonzero(test_mask)
        p = np.zeros((len(rows), 3))
        p[te] = predict(X[te], model)
        thr = np.array([m["thr"] for m in model])
        out.append((name, metrics(p, thr, rows, test_mask)))
        r = out[-1][1]
        print(name, " ".join(f"{k}:auc={r[k]['auc']:.3f},att={r[k]['attack']:.2f}" for k in INTENTS),
              f"neg_any hn={r['_neg_any']['hardneg']:.3f} ord={r['_neg_any']['ordinary']:.3f}", file=sys.stderr)
    return out


def family_fold_specs(rows, k=5):
    ff = family_folds(rows, k=k, seed=0)
    fam = np.array([ff.get(r["family"], -1) for r in rows])
    cf = np.array([r["cfold"] for r in rows])
    kind = np.array([r["kind"] for r in rows])
    specs = []
    for i in range(k):
        wrapped = kind != "ordinary"
        test = (wrapped & (fam == i)) | (~wrapped & (cf == i))
        train = (wrapped & (fam != i) & (cf != i)) | (~wrapped & (cf != i))
        held = sorted({r["family"] for r, t in zip(rows, test) if t and r["kind"] != "ordinary"})
        specs.append((f"families fold {i} ({len(held)} families held out)", train, test))
    return specs


def lang_fold_specs(rows):
    lang = np.array([r["lang"] for r in rows])
    specs = []
    for g in LANG_GROUPS:
        test = np.isin(lang, g)
        specs.append((f"languages {'+'.join(g)}", ~test, test))
    return specs


def fmt_table(results, title):
    lines = [f"#### {title}", "",
             "| fold | intent | n attacks | AUC | attacks flagged | with any intent reason | hard neg. flagged | ordinary flagged |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    agg = {k: [] for k in INTENTS}
    for name, r in results:
        for k in INTENTS:
            m = r[k]
            if m["n"] == 0:
                continue
            agg[k].append(m)
            lines.append(f"| {name} | {k} | {m['n']} | {m['auc']:.3f} | {m['attack']:.1%} | {m['any']:.1%} | "
                         f"{m['hardneg']:.1%} | {m['ordinary']:.1%} |")
    for k in INTENTS:
        ms = agg[k]
        n = sum(m["n"] for m in ms)
        wavg = lambda key: sum(m[key] * m["n"] for m in ms) / n  # noqa: E731
        mean = lambda key: float(np.nanmean([m[key] for m in ms]))  # noqa: E731
        lines.append(f"| **all folds** | **{k}** | {n} | **{wavg('auc'):.3f}** | **{wavg('attack'):.1%}** | "
                     f"**{wavg('any'):.1%}** | {mean('hardneg'):.1%} | {mean('ordinary'):.1%} |")
    hn = np.nanmean([r["_neg_any"]["hardneg"] for _, r in results])
    od = np.nanmean([r["_neg_any"]["ordinary"] for _, r in results])
    lines.append("")
    lines.append(f"Any intent flagged, mean over folds: hard negatives {hn:.2%}, ordinary {od:.2%}.")
    lines.append("")
    return "\n".join(lines)


def score_with_rust(items, model_path=None):
    inp = "".join(json.dumps({"s": s, "u": u}, ensure_ascii=False) + "\n" for s, u in items)
    cmd = ["cargo", "run", "-q", "--release", "-p", "moat-intent", "--example", "score"]
    if model_path:
        cmd += ["--", "--model", str(model_path)]
    out = subprocess.run(cmd, input=inp.encode(), capture_output=True, cwd=ROOT, check=True, env=cargo_env()).stdout.decode()
    return np.array([[float(x) for x in l.split()] for l in out.strip().splitlines()])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", choices=["family", "lang"], default=None)
    args = ap.parse_args()
    cfg = DEFAULTS
    rows = load_rows(HERE / "data" / "dataset.jsonl")
    feats = featurize(rows, cfg, cache=HERE / "data" / "features.bin")
    X = matrix(feats, cfg["log2"], cfg["kinds"], cfg["norm_pow"])
    md = []
    if args.only in (None, "family"):
        md.append(fmt_table(run_folds(X, rows, family_fold_specs(rows), cfg), "Held-out phrasing families (5 folds)"))
    if args.only in (None, "lang"):
        md.append(fmt_table(run_folds(X, rows, lang_fold_specs(rows), cfg), "Held-out languages"))
    text = "\n".join(md)
    print(text)
    if args.out:
        (HERE / args.out).write_text(text)


if __name__ == "__main__":
    main()
