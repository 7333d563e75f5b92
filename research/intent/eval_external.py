"""External evaluation of the SHIPPED model (int8, through the Rust scorer) on phrasings written
independently by another engineer for the red-team traffic generator
(`research/redteam/wrappers.py`, `benign.py`; read only, never used for training or tuning).

    research/intent/.venv/bin/python research/intent/eval_external.py [--redteam research/redteam]

Each wrapper is filled with real carriers (maths questions in the wrapper's language, ShareGPT
answers). Attacks: reasoning = COT_WRAPPERS, RECONSTRUCT, TRANSLATE_TRACE, ANSWER_IN; grader =
JUDGE_SINGLE / JUDGE_PAIR / JUDGE_LIST (+ JUDGE_SYSTEMS); synth = SYNTH. Benign hard negatives:
LIGHT_STYLES teacher / derive / detailed / expert, the essay-grading system prompt; reported
separately: prompts that are the intent by this model's definition but used by benign products
(MT-bench judge on one's own outputs, QA test-data generation) and the light "transcript" style.
Ordinary: unwrapped carriers.
"""
import argparse
import importlib.util
import json
import random
import re
import string
import sys
from collections import defaultdict

import numpy as np

from common import HERE, INTENTS, ROOT, auc, load_rows
from eval import score_with_rust


def lexicon():
    """The engine's phrase tables (crates/moat-detect/src/signals/{reasoning,grader}.rs, read
    only): reasoning phrases with their weights, grader phrases."""
    src = (ROOT / "crates/moat-detect/src/signals/reasoning.rs").read_text(encoding="utf-8")
    consts = dict(re.findall(r"pub const (STRONG|MEDIUM|WEAK): f32 = ([0-9.]+);", src))
    block = re.search(r"PHRASES: &\[\(&str, f32\)\] = &\[(.*?)\n\];", src, re.S).group(1)
    rphr = [(p.lower(), float(consts[w])) for p, w in re.findall(r'\("((?:[^"\\]|\\.)*)",\s*(STRONG|MEDIUM|WEAK)\)', block)]
    gsrc = (ROOT / "crates/moat-detect/src/signals/grader.rs").read_text(encoding="utf-8")
    gblock = re.search(r"PHRASES: &\[&str\] = &\[(.*?)\n\];", gsrc, re.S).group(1)
    gphr = [p.lower() for p in re.findall(r'"((?:[^"\\]|\\.)*)"', gblock)]
    return rphr, gphr


def lexicon_scores(items):
    """Per item: (max reasoning phrase weight, number of distinct grader phrases), as the engine's
    lexicon scan computes them over system text and last user turn."""
    rphr, gphr = lexicon()
    out = []
    for _, _, s, u in items:
        best, g = 0.0, 0
        for t in (s.lower(), u.lower()):
            for p, w in rphr:
                if p in t:
                    best = max(best, w)
        g = max(sum(p in t for p in gphr) for t in (s.lower(), u.lower()))
        out.append((best, g))
    return np.array(out, dtype=float)


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class Filler(dict):
    def __init__(self, rng, lang, q, ans, pool):
        super().__init__()
        self.rng, self.lang, self.q, self.ans, self.pool = rng, lang, q, ans, pool

    def __missing__(self, key):
        r = self.rng
        if key in ("q", "u", "h"):
            return self.q
        if key in ("ans", "a", "b", "a1", "a2", "x", "y", "passage"):
            return self.ans if key in ("ans",) else r.choice(self.pool)[: r.choice([80, 300, 900])]
        if key == "L":
            return r.choice(["English", "French", "German", "Chinese", "Japanese", "Spanish", "Russian"])
        if key in ("n", "k"):
            return str(r.choice([3, 5, 10, 20, 50]))
        if key == "cands":
            return "\n\n".join(f"Candidate {i + 1}: {r.choice(self.pool)[:300]}" for i in range(3))
        if key.startswith("s") and key[1:].isdigit():
            return r.choice(self.pool)[:120]
        if key == "topic":
            return r.choice(["photosynthesis", "SQL window functions", "the French Revolution", "Rust ownership"])
        if key in ("product",):
            return "AcmeBank"
        if key in ("intents",):
            return "balance inquiry, card blocked, loan rates"
        return self.q


def fill(template, rng, lang, carriers):
    gsm = carriers["gsm"].get(lang) or carriers["gsm"]["en"]
    i = rng.randrange(len(gsm))
    q, ans = gsm[i]
    f = Filler(rng, lang, q, ans, carriers["answers"])
    try:
        return string.Formatter().vformat(template, (), f)
    except (IndexError, ValueError, KeyError):
        return re.sub(r"\{[^{}]*\}", lambda m: f[m.group(0)[1:-1]], template)


def carriers_from_dataset():
    rows = load_rows(HERE / "data" / "dataset.jsonl")
    gsm = defaultdict(list)
    for r in rows:
        if r["family"] == "o_gsm":
            gsm[r["lang"]].append((r["u"], ""))
    answers = [r["u"] for r in rows if r["family"] == "o_sharegpt"][:3000]
    # answers of the gsm questions are not in the dataset rows; use short ShareGPT text instead
    gsm = {l: [(q, random.Random(len(q)).choice(answers)[:200]) for q, _ in v] for l, v in gsm.items()}
    ordinary = [(r["s"], r["u"]) for r in rows if r["kind"] == "ordinary"]
    return dict(gsm=gsm, answers=answers), ordinary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--redteam", default=str(ROOT / "research" / "redteam"))
    ap.add_argument("--per", type=int, default=12, help="fillings per template")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import importlib
    from pathlib import Path

    sys.path.insert(0, str(Path(args.redteam).resolve().parent))
    W = importlib.import_module(Path(args.redteam).name + ".wrappers")
    rng = random.Random(5)
    carriers, ordinary = carriers_from_dataset()
    items = []  # (group, intent, system, user)

    def add(group, intent, templates, lang="en", system=None, n=args.per):
        for t in templates:
            for _ in range(n):
                items.append((group, intent, system or "", fill(t, rng, lang, carriers)))

    for lang, ts in W.COT_WRAPPERS.items():
        add(f"reasoning: COT_WRAPPERS", "reasoning", ts, lang)
    add("reasoning: RECONSTRUCT", "reasoning", W.RECONSTRUCT)
    for lang, ts in W.TRANSLATE_TRACE.items():
        add("reasoning: TRANSLATE_TRACE", "reasoning", ts, lang)
    add("reasoning: ANSWER_IN", "reasoning", W.ANSWER_IN)
    for sysp in W.JUDGE_SYSTEMS:
        add("grader: JUDGE_*", "grader", W.JUDGE_SINGLE + W.JUDGE_PAIR + W.JUDGE_LIST, system=sysp, n=max(1, args.per // 4))
    add("synth: SYNTH", "synth", W.SYNTH)
    for style in ("teacher", "derive", "detailed", "expert"):
        add("benign hard neg.: LIGHT_STYLES " + style, "none", W.LIGHT_STYLES[style])
    add("(reported) LIGHT_STYLES transcript", "report", W.LIGHT_STYLES["transcript"])
    try:
        B = importlib.import_module(Path(args.redteam).name + ".benign")
        for _ in range(args.per * 3):
            essay = rng.choice(carriers["answers"])[:1500]
            items.append(("benign hard neg.: essay grading (teachers)", "none", B.ESSAY_RUBRIC,
                          f"Assignment prompt: {rng.choice(carriers['answers'])[:120]}\n\nStudent essay:\n{essay}\n\nGrade the essay using the rubric."))
            a = rng.choice(carriers["answers"])[:600]
            items.append(("(reported) MT-bench judge on own outputs", "report", B.MT_BENCH_JUDGE,
                          f"[User Question]\n{rng.choice(carriers['answers'])[:200]}\n\n[The Start of Assistant A's Answer]\n{a}\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{a[:300]}\n[The End of Assistant B's Answer]"))
        add("(reported) QA test-data generation", "report", B.QA_TEMPLATES)
    except Exception as e:  # benign.py missing or changed
        print("benign.py not used:", e, file=sys.stderr)
    ords = random.Random(9).sample(ordinary, min(3000, len(ordinary)))
    for s, u in ords:
        items.append(("ordinary carriers", "none", s, u))

    p = score_with_rust([(s, u) for _, _, s, u in items])
    from train_thresholds import thresholds  # noqa: E402  (reads the shipped model header)

    thr = thresholds()
    groups = defaultdict(list)
    for i, (g, it, _, _) in enumerate(items):
        groups[g].append(i)
    lines = ["| group | n | reasoning flagged | grader flagged | synth flagged | any intent reason |", "|---|---:|---:|---:|---:|---:|"]
    fl = p >= thr
    for g, idx in groups.items():
        idx = np.array(idx)
        lines.append(f"| {g} | {len(idx)} | {fl[idx, 0].mean():.1%} | {fl[idx, 1].mean():.1%} | {fl[idx, 2].mean():.1%} | {fl[idx].any(axis=1).mean():.1%} |")
    intent = np.array([it for _, it, _, _ in items])
    neg = intent == "none"
    lines.append("")
    for k, name in enumerate(INTENTS):
        pos = intent == name
        lines.append(f"- {name}: AUC vs benign hard negatives + ordinary = {auc(p[:, k], pos, neg):.3f}; "
                     f"{fl[pos, k].mean():.1%} of {pos.sum()} attacks flagged as {name}, {fl[pos].any(axis=1).mean():.1%} get an intent reason")
    lex = lexicon_scores(items)
    lines.append("")
    lines.append("The engine's phrase lexicon on the same items (reasoning: strongest phrase weight as the score, "
                 "a strong phrase (1.0) as the reason; grader: number of grader phrases, ≥ 2 as the reason):")
    for k, name in [(0, "reasoning"), (1, "grader")]:
        pos = intent == name
        flag = lex[:, 0] >= 1.0 if k == 0 else lex[:, 1] >= 2
        lines.append(f"- lexicon {name}: AUC {auc(lex[:, k], pos, neg):.3f}; {flag[pos].mean():.1%} of attacks get a reason, "
                     f"{flag[neg].mean():.1%} of benign hard negatives + ordinary prompts")
    lines.append("")
    lines.append("Operating points (diagnostic only; the shipped thresholds are not tuned on this set):")
    for k, name in enumerate(INTENTS):
        pos = intent == name
        t90 = float(np.quantile(p[pos, k], 0.10))
        lines.append(f"- {name}: shipped threshold {thr[k]:.3f}; a threshold of {t90:.3f} would flag 90% of these attacks "
                     f"and {(p[neg, k] >= t90).mean():.1%} of the benign hard negatives + ordinary prompts")
    text = "\n".join(lines)
    print(text)
    if args.out:
        (HERE / args.out).write_text(text)


if __name__ == "__main__":
    main()
