"""Trains the shipped model on the whole dataset and writes crates/moat-intent/model/intent.bin.

    research/intent/.venv/bin/python research/intent/gen_data.py
    research/intent/.venv/bin/python research/intent/train.py
"""
import json

import numpy as np

from common import DEFAULTS, HERE, ROOT, featurize, labels, load_rows, matrix, predict, train_calibrated
from modelfile import write_model


def quantize(model, log2):
    """int8 weights per head with scale = max|w| / 127 (folded into the head's scale)."""
    W = np.zeros((1 << log2, 3), dtype=np.int8)
    heads = []
    for k, m in enumerate(model):
        s = float(np.abs(m["w"]).max() / 127.0) or 1.0
        W[:, k] = np.clip(np.round(m["w"] / s), -127, 127).astype(np.int8)
        heads.append((s, m["b"], m["thr"]))
    return W, heads


def main(cfg=DEFAULTS):
    rows = load_rows(HERE / "data" / "dataset.jsonl")
    feats = featurize(rows, cfg, cache=HERE / "data" / "features.bin")
    X = matrix(feats, cfg["log2"], cfg["kinds"], cfg["norm_pow"])
    y = labels(rows)
    model = train_calibrated(X, y, rows, np.arange(len(rows)), cfg)
    W, heads = quantize(model, cfg["log2"])
    path = ROOT / "crates" / "moat-intent" / "model" / "intent.bin"
    n = write_model(path, log2=cfg["log2"], kinds=cfg["kinds"], sys_bytes=cfg["sys_bytes"],
                    head_bytes=cfg["head_bytes"], tail_bytes=cfg["tail_bytes"], norm_pow=cfg["norm_pow"],
                    heads=heads, weights_i8=W)
    p = predict(X, model)
    print(f"wrote {path} ({n} bytes); thresholds", [round(h[2], 3) for h in heads])
    # golden vectors for the Rust test: quantised scores of a few fixed prompts
    qmodel = [dict(w=W[:, k].astype(np.float64) * heads[k][0], b=heads[k][1]) for k in range(3)]
    pq = predict(X, qmodel)
    gold = []
    for i in np.linspace(0, len(rows) - 1, 12).astype(int):
        gold.append({"s": rows[i]["s"][:300], "u": rows[i]["u"][:900], "p": [round(float(v), 5) for v in pq[i]]})
    print("max |float - int8| prob on training rows:", float(np.abs(p - pq).max()))
    return gold


if __name__ == "__main__":
    main()
