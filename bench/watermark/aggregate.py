"""Aggregate `mark_eval` outputs into the numbers reported in docs/watermark.md.

    python aggregate.py --work /tmp/wm --bin target/release/examples/mark_eval

Expects (written by run_eval.sh):
  gpt_marked.jsonl  mark_eval --mode mark --emit-marked  < gpt.jsonl
  gpt_null.jsonl    mark_eval --mode detect              < gpt.jsonl
  human_null.jsonl  mark_eval --mode detect              < human.jsonl
  *_null_kpt.jsonl  same with --key-per-text (independent key per text)
Writes concat_<L>.jsonl (marked answers concatenated to L words) and runs the detector on
them for the power-vs-length table.
"""
import argparse
import json
import random
import re
import subprocess

import numpy as np
from scipy import stats

GRID = [100, 250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 6000]
ROBUST_GRID = [2000, 4000, 6000, 10000]
ATTACKS = [("none", 0.0), ("delete", 0.1), ("delete", 0.3), ("substitute", 0.1),
           ("substitute", 0.3)]


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f]


def detect(args, texts):
    inp = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    cmd = [args.bin, "--mode", "detect"]
    if args.context_words is not None:
        cmd += ["--context-words", str(args.context_words)]
    out = subprocess.run(cmd, input=inp, capture_output=True,
                         text=True, check=True).stdout
    return [json.loads(l) for l in out.splitlines()]


def first_words(text, n):
    """Prefix of `text` holding its first n whitespace-separated words (layout kept)."""
    count, in_word = 0, False
    for i, c in enumerate(text):
        if c.isspace():
            if in_word:
                count += 1
                if count == n:
                    return text[:i]
            in_word = False
        else:
            in_word = True
    return text


def power(args, marked):
    print("## Power: single answers (marked, detected on prefixes)")
    words = np.array([r["words"] for r in marked])
    wtd = [r["words_to_detect"] for r in marked]
    pv = np.array([r["p_value"] for r in marked])
    print(f"answers {len(marked)}; words median {np.median(words):.0f}, "
          f"p90 {np.percentile(words, 90):.0f}; eligible/1000 words "
          f"{1000 * sum(r['eligible'] for r in marked) / words.sum():.1f}, scored/1000 words "
          f"{1000 * sum(r['scored'] for r in marked) / words.sum():.1f}")
    for t in (1e-2, 1e-3, 1e-6):
        print(f"  whole answer p < {t:g}: {np.mean(pv < t):.3f}")
    print("| L words | answers with >= L words | share detected (p<1e-6) within first L words |")
    print("|---|---|---|")
    for L in GRID:
        sel = [w for r, w in zip(marked, wtd) if r["words"] >= L]
        if len(sel) < 20:
            continue
        ok = np.mean([w is not None and w <= L for w in sel])
        print(f"| {L} | {len(sel)} | {ok:.3f} |")

    print("\n## Power: concatenated answers (same key), truncated to L words")
    rng = random.Random(1)
    texts = [r["marked"] for r in marked if r["words"] >= 20]
    print("| L words | samples | p<1e-3 | p<1e-6 | median log10 p | median scored |")
    print("|---|---|---|---|---|---|")
    res = {}
    for L in GRID:
        samples = [concatenated(rng, texts, L) for _ in range(args.samples)]
        det = detect(args, samples)
        lp = np.array([d["log10_p"] for d in det])
        res[L] = (np.mean(lp <= -6), np.mean(lp <= -3))
        print(f"| {L} | {len(det)} | {res[L][1]:.3f} | {res[L][0]:.3f} | {np.median(lp):.2f} | "
              f"{np.median([d['scored'] for d in det]):.0f} |")
    ok = [L for L in GRID if res[L][0] >= 0.95]
    print(f"\nshortest L in grid with >= 95% at p < 1e-6: {ok[0] if ok else 'not reached'}")
    ok3 = [L for L in GRID if res[L][1] >= 0.95]
    print(f"shortest L in grid with >= 95% at p < 1e-3: {ok3[0] if ok3 else 'not reached'}")
    robustness(args, texts)


def concatenated(rng, texts, L):
    parts, n = [], 0
    while n < L:
        t = rng.choice(texts)
        parts.append(t)
        n += len(t.split())
    return first_words("\n\n".join(parts), L)


def attack(rng, text, kind, rate, vocab):
    """Deletes, or replaces by a random corpus word, each whitespace-separated word with
    probability `rate`; whitespace (line structure, code fences) is kept."""
    out = []
    for tok in re.split(r"(\s+)", text):
        if not tok or tok.isspace() or rng.random() >= rate:
            out.append(tok)
        elif kind == "substitute":
            out.append(rng.choice(vocab))
    return "".join(out)


def robustness(args, texts):
    print("\n## Robustness: concatenated marked answers, then random word edits")
    rng = random.Random(2)
    vocab = [w for t in rng.sample(texts, min(2000, len(texts))) for w in t.split()]
    print("| L words | edit | rate | samples | p<1e-3 | p<1e-6 | median log10 p | median scored "
          "| median hit rate |")
    print("|---|---|---|---|---|---|---|---|---|")
    for L in ROBUST_GRID:
        base = [concatenated(rng, texts, L) for _ in range(max(1, args.samples // 2))]
        for kind, rate in ATTACKS:
            samples = [attack(rng, t, kind, rate, vocab) for t in base]
            det = detect(args, samples)
            lp = np.array([d["log10_p"] for d in det])
            hr = [d["hits"] / d["scored"] for d in det if d["scored"]]
            print(f"| {L} | {kind} | {rate:.0%} | {len(det)} | {np.mean(lp <= -3):.3f} | "
                  f"{np.mean(lp <= -6):.3f} | {np.median(lp):.2f} | "
                  f"{np.median([d['scored'] for d in det]):.0f} | {np.median(hr):.3f} |")


def false_positives(nulls, title):
    print(f"\n## False positives (unmarked texts, {title})")
    print("| set | texts | scored>0 | p<1e-3 | p<1e-6 | min p | KS p_rand vs U(0,1) "
          "| one-sided KS p_value (H1: sub-uniform) | P(p<=0.05) | P(p<=0.01) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rs in nulls:
        pv = np.array([r["p_value"] for r in rs])
        pr = np.array([r["p_rand"] for r in rs])
        sc = np.array([r["scored"] for r in rs])
        ks = stats.kstest(pr, "uniform")
        # alternative="greater": H1 is that the empirical CDF lies above the uniform CDF,
        # i.e. p-values too small (anti-conservative). Not rejecting = super-uniform.
        ks1 = stats.kstest(pv, "uniform", alternative="greater")
        print(f"| {name} | {len(rs)} | {np.mean(sc > 0):.3f} | {np.mean(pv < 1e-3):.5f} | "
              f"{np.mean(pv < 1e-6):.5f} | {pv.min():.2e} | D={ks.statistic:.4f} "
              f"p={ks.pvalue:.3f} | D+={ks1.statistic:.4f} p={ks1.pvalue:.3f} | "
              f"{np.mean(pv <= 0.05):.4f} | {np.mean(pv <= 0.01):.4f} |")
        sel = sc >= 10
        if sel.sum() > 100:
            ks = stats.kstest(pr[sel], "uniform")
            print(f"| {name}, scored>=10 | {sel.sum()} | 1.000 | {np.mean(pv[sel] < 1e-3):.5f} | "
                  f"{np.mean(pv[sel] < 1e-6):.5f} | {pv[sel].min():.2e} | D={ks.statistic:.4f} "
                  f"p={ks.pvalue:.3f} | | {np.mean(pv[sel] <= 0.05):.4f} | "
                  f"{np.mean(pv[sel] <= 0.01):.4f} |")


def protected_tokens(text):
    """Fenced code blocks, inline code, and tokens with digits / URLs / e-mails / capitals
    mid-token, in order."""
    out = re.findall(r"```.*?```", text, flags=re.S)
    rest = re.sub(r"```.*?```", " ", text, flags=re.S)
    out += re.findall(r"`[^`\n]*`", rest)
    for tok in rest.split():
        if re.search(r"[0-9]|://|@|www\.", tok) or re.search(r"[a-z][A-Z]", tok):
            out.append(tok)
    return out


def quality(marked, originals):
    print("\n## Quality")
    bad = 0
    for r in marked:
        if protected_tokens(r["marked"]) != protected_tokens(originals[r["id"]]):
            bad += 1
    print(f"answers whose code blocks / inline code / number, URL, e-mail, camelCase tokens "
          f"differ after marking: {bad} of {len(marked)}")
    wt = sum(r["word_tokens"] for r in marked)
    ch = sum(r["changed"] for r in marked)
    el = sum(r["eligible"] for r in marked)
    per = np.array([r["changed"] / r["word_tokens"] for r in marked if r["word_tokens"] > 0])
    print(f"words changed: {ch}/{wt} = {100 * ch / wt:.2f}% (eligible {100 * el / wt:.2f}%, "
          f"{100 * ch / max(el, 1):.1f}% of eligible rewritten); per answer median "
          f"{100 * np.median(per):.2f}%, p99 {100 * np.percentile(per, 99):.2f}%, "
          f"max {100 * per.max():.2f}%")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/wm")
    ap.add_argument("--bin", default="target/release/examples/mark_eval")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--context-words", type=int, default=None,
                    help="the mark_eval --context-words the marked file was made with")
    args = ap.parse_args()
    marked = load(f"{args.work}/gpt_marked.jsonl")
    power(args, marked)
    for suffix, title in (("_kpt", "independent key per text"), ("", "one fixed key")):
        nulls = [("assistant (gpt)", load(f"{args.work}/gpt_null{suffix}.jsonl")),
                 ("human", load(f"{args.work}/human_null{suffix}.jsonl"))]
        nulls.append(("all", nulls[0][1] + nulls[1][1]))
        false_positives(nulls, title)
    originals = {}
    with open(f"{args.work}/gpt.jsonl") as f:
        for line in f:
            r = json.loads(line)
            originals[r["id"]] = r["text"]
    quality(marked, originals)


if __name__ == "__main__":
    main()
