"""Small grid over feature kinds / read window / table size / length normalisation on a
subset of the held-out folds (families 0 and 2, languages zh+ja); prints one line per config.

    research/intent/.venv/bin/python research/intent/tune.py
"""
import itertools
import sys

import numpy as np

from common import DEFAULTS, HERE, INTENTS, featurize, load_rows, matrix
from eval import family_fold_specs, lang_fold_specs, run_folds

GRID = [
    # (kinds, log2, norm_pow, (sys, head, tail))
    (0b1111_1110, 17, 0.5, (512, 1024, 512)),   # v2
    (0b1111_1110, 17, 0.25, (512, 1024, 512)),
    (0b1111_1110, 17, 0.0, (512, 1024, 512)),
    (0b1101_1100, 16, 0.5, (256, 768, 256)),    # char 2,3,4 + words? (bits 2,3,4,6,7)
    (0b1001_1100, 16, 0.5, (256, 768, 256)),    # char 2,3,4 + word pairs
    (0b1010_1000, 16, 0.5, (256, 768, 256)),    # char 3,5 + word pairs
    (0b1010_1000, 16, 0.75, (256, 768, 256)),   # 6
    (0b1010_1000, 16, 1.0, (256, 768, 256)),    # 7
    (0b1110_1000, 16, 0.75, (256, 768, 256)),   # 8: char 3,5 + words + word pairs
    (0b1010_1000, 16, 0.75, (256, 512, 256)),   # 9: smaller head window
    (0b1010_1000, 16, 0.5, (256, 768, 256), 1.0),    # 10: shipped config, stronger L2
    (0b1010_1000, 16, 0.5, (256, 768, 256), 16.0),   # 11: weaker L2
    (0b1010_1000, 17, 0.5, (256, 768, 256)),         # 12: 2^17 buckets
]


def main():
    rows = load_rows(HERE / "data" / "dataset.jsonl")
    fam = family_fold_specs(rows)
    lang = lang_fold_specs(rows)
    specs = [fam[0], fam[2], lang[0]]
    grid = GRID if len(sys.argv) < 2 else [GRID[int(i)] for i in sys.argv[1:]]
    for g in grid:
        kinds, log2, p, (sb, hb, tb) = g[:4]
        C = g[4] if len(g) > 4 else DEFAULTS["C"]
        cfg = dict(DEFAULTS, kinds=kinds, log2=log2, norm_pow=p, sys_bytes=sb, head_bytes=hb, tail_bytes=tb, C=C)
        cache = HERE / "data" / f"features_{sb}_{hb}_{tb}.bin"
        feats = featurize(rows, cfg, cache=cache)
        X = matrix(feats, log2, kinds, p)
        nfeat = np.mean([((kinds >> (f >> 24)) & 1).sum() for f in feats])
        res = run_folds(X, rows, specs, cfg)
        line = [f"kinds={kinds:08b} log2={log2} p={p} C={C} win={sb}/{hb}/{tb} feats/row={nfeat:.0f}"]
        for name, r in res:
            line.append(name.split(" (")[0] + ": " + " ".join(
                f"{k[:3]} {r[k]['auc']:.3f}/{r[k]['attack']:.2f}" for k in INTENTS)
                + f" neg {r['_neg_any']['hardneg']:.3f}/{r['_neg_any']['ordinary']:.3f}")
        print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
