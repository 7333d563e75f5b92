"""Checks that no attack wrapper copies a phrase of the detection engine's lexicon.

    python3 -m redteam.check_lexicon [--repo /work/main]

Reads the phrase tables of ``crates/moat-detect/src/signals/reasoning.rs`` and ``grader.rs``
(read only) and scans every attack template in ``redteam.wrappers``.  Exit status 1 if a
template contains a lexicon phrase (case-insensitive).  Benign products are allowed to use
ordinary tutoring or grading language: that is what makes them hard negatives.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from . import wrappers as W

ATTACK_TABLES = ["COT_WRAPPERS", "RECONSTRUCT", "TRANSLATE_TRACE", "ANSWER_IN", "LIGHT_STYLES", "JUDGE_SINGLE",
                 "JUDGE_PAIR", "JUDGE_LIST", "JUDGE_SYSTEMS", "SYNTH", "RATIONALE_MATH", "RATIONALE_CLS",
                 "ORCA_SYSTEMS", "AGENT_TASKS", "AGENT_PLAN", "AGENT_SYSTEMS_HARVEST", "HYDRA_FAMILY"]


def lexicon_phrases(repo):
    out = []
    for f in ("reasoning.rs", "grader.rs"):
        p = os.path.join(repo, "crates", "moat-detect", "src", "signals", f)
        if not os.path.exists(p):
            continue
        text = open(p, encoding="utf-8").read()
        m = re.search(r"PHRASES\s*:[^=]*=\s*&\[(.*?)\n\];", text, re.S)
        if not m:
            continue
        out.extend(s.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")
                   if "\\u" in s else s for s in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)))
    return [p.lower() for p in out if p]


def templates():
    for name in ATTACK_TABLES:
        v = getattr(W, name)
        stack = [(name, v)]
        while stack:
            path, x = stack.pop()
            if isinstance(x, str):
                yield path, x
            elif isinstance(x, dict):
                stack.extend((f"{path}.{k}", y) for k, y in x.items())
            elif isinstance(x, (list, tuple)):
                stack.extend((f"{path}[{i}]", y) for i, y in enumerate(x))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    a = ap.parse_args(argv)
    phrases = lexicon_phrases(a.repo)
    if not phrases:
        print("no lexicon found under", a.repo, "(nothing to check)")
        return 0
    bad = 0
    n = 0
    for path, t in templates():
        n += 1
        low = t.lower()
        for p in phrases:
            if p in low:
                print(f"{path}: contains lexicon phrase {p!r}")
                bad += 1
    print(f"{n} attack templates checked against {len(phrases)} lexicon phrases: {bad} hits")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
