"""Shared by train.py and eval.py: features (from the Rust extractor itself, so training and
serving see identical features), the linear heads, calibration and thresholds."""
import json
import subprocess
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INTENTS = ["reasoning", "grader", "synth"]
DEFAULTS = dict(log2=16, kinds=0b1010_1000, sys_bytes=256, head_bytes=768, tail_bytes=256, norm_pow=0.5,
                C=4.0, max_fpr=0.01, min_thr=0.5)


def load_rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f]


def featurize(rows, cfg=DEFAULTS, cache=None):
    """Runs `cargo run --release -p moat-intent --example featurize`; returns a list of
    uint32 arrays ((kind << 24) | 24-bit hash) per row."""
    if cache:  # one cache per dataset size and window (a regenerated dataset never reads a stale file)
        cache = Path(str(cache).replace(".bin", f"_{len(rows)}_{cfg['sys_bytes']}_{cfg['head_bytes']}_{cfg['tail_bytes']}.bin"))
    if cache and Path(cache).exists():
        data = np.fromfile(cache, dtype="<u4")
    else:
        inp = "".join(json.dumps({"s": r["s"], "u": r["u"]}, ensure_ascii=False) + "\n" for r in rows)
        cmd = ["cargo", "run", "-q", "--release", "-p", "moat-intent", "--example", "featurize", "--",
               "--kinds", "254", "--sys", str(cfg["sys_bytes"]), "--head", str(cfg["head_bytes"]),
               "--tail", str(cfg["tail_bytes"])]
        out = subprocess.run(cmd, input=inp.encode("utf-8"), capture_output=True, cwd=ROOT, check=True, env=cargo_env()).stdout
        data = np.frombuffer(out, dtype="<u4")
        if cache:
            data.tofile(cache)
    feats, i = [], 0
    while i < len(data):
        n = int(data[i])
        feats.append(data[i + 1:i + 1 + n])
        i += 1 + n
    assert len(feats) == len(rows), (len(feats), len(rows))
    return feats


def matrix(feats, log2, kinds, norm_pow):
    """CSR matrix of feature counts × n^(−norm_pow) (n = features kept), as scored in Rust."""
    indptr, indices, data = [0], [], []
    for f in feats:
        k = f >> 24
        keep = f[((kinds >> k) & 1).astype(bool)]
        cols = (keep & 0xFFFFFF) >> (24 - log2)
        n = len(cols)
        u, c = np.unique(cols, return_counts=True)
        indices.append(u)
        data.append(c * (n ** -norm_pow if n else 0.0))
        indptr.append(indptr[-1] + len(u))
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.array(indptr)),
                         shape=(len(feats), 1 << log2))


def labels(rows):
    y = np.array([INTENTS.index(r["intent"]) if r["intent"] in INTENTS else -1 for r in rows])
    return y


def fit_heads(X, y, rows, C):
    """One logistic head per intent (one-vs-rest). Hard negatives weigh double."""
    w = np.array([2.0 if r["kind"] == "hardneg" else 1.0 for r in rows])
    heads = []
    for k in range(3):
        yk = (y == k).astype(int)
        pos = yk.sum()
        sw = w * np.where(yk == 1, (len(yk) - pos) / max(pos, 1) * 0.5, 1.0)
        # averaged SGD on the logistic loss: one pass over the sparse rows is ~0.2 s, where
        # liblinear/lbfgs take minutes on this data (2^17 columns, ~1.1k non-zeros per row)
        m = SGDClassifier(loss="log_loss", penalty="l2", alpha=1.0 / (C * len(yk)), max_iter=12, tol=None,
                          average=True, random_state=0)
        m.fit(X, yk, sample_weight=sw)
        heads.append((m.coef_[0].astype(np.float64), float(m.intercept_[0])))
    return heads


def logits(X, heads):
    return np.stack([X @ w + b for w, b in heads], axis=1)


def platt(z, yk):
    """Calibration a·z + c fitted on held-out logits."""
    m = LogisticRegression(C=100.0, solver="lbfgs")
    m.fit(z.reshape(-1, 1), yk)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def choose_threshold(p, is_neg, max_fpr, min_thr):
    """Lowest threshold keeping the negatives' flag rate ≤ max_fpr (and ≥ min_thr)."""
    negs = np.sort(p[is_neg])
    if len(negs) == 0:
        return min_thr
    idx = int(np.floor((1 - max_fpr) * len(negs)))
    t = negs[min(idx, len(negs) - 1)] + 1e-6
    return float(max(min_thr, min(t, 0.999)))


def auc(p, pos, neg):
    yy = np.concatenate([np.ones(pos.sum()), np.zeros(neg.sum())])
    ss = np.concatenate([p[pos], p[neg]])
    if yy.min() == yy.max():
        return float("nan")
    return float(roc_auc_score(yy, ss))


def family_folds(rows, k=5, seed=0):
    """Fold id per family: each intent's families (and the hard-negative families) are dealt
    round-robin over k folds after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fold = {}
    groups = {}
    for r in rows:
        if r["kind"] in ("attack", "hardneg"):
            groups.setdefault(r["intent"], set()).add(r["family"])
    for g, fams in sorted(groups.items()):
        fams = sorted(fams)
        rng.shuffle(fams)
        for i, f in enumerate(fams):
            fold[f] = i % k
    return fold


def train_calibrated(X, y, rows, idx, cfg, calib_seed=1):
    """Fits on rows `idx`; calibration and thresholds come from an inner split that holds out
    a quarter of the training families (and carriers), so they reflect unseen phrasing."""
    sub = [rows[i] for i in idx]
    ff = family_folds(sub, k=4, seed=calib_seed)
    inner = np.array([ff.get(r["family"], r["cfold"] % 4) == 0 if r["kind"] != "ordinary" else r["cfold"] % 4 == 0
                      for r in sub])
    idx = np.asarray(idx)
    fit_i, cal_i = idx[~inner], idx[inner]
    h_inner = fit_heads(X[fit_i], y[fit_i], [rows[i] for i in fit_i], cfg["C"])
    z = logits(X[cal_i], h_inner)
    ycal = y[cal_i]
    neg_cal = np.array([rows[i]["kind"] != "attack" for i in cal_i])
    heads = fit_heads(X[idx], y[idx], sub, cfg["C"])
    out = []
    for k in range(3):
        a, c = platt(z[:, k], (ycal == k).astype(int))
        p = sigmoid(a * z[:, k] + c)
        thr = choose_threshold(p, neg_cal, cfg["max_fpr"], cfg["min_thr"])
        w, b = heads[k]
        out.append(dict(w=w * a, b=b * a + c, thr=thr))
    return out


def predict(X, model):
    return np.stack([sigmoid(X @ m["w"] + m["b"]) for m in model], axis=1)


def cargo_env():
    """cargo with this directory's own target dir, so the scripts never wait on the
    workspace's shared build lock."""
    import os

    env = dict(os.environ)
    env["CARGO_TARGET_DIR"] = str(HERE / ".cargo-target")
    return env
