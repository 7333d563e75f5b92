"""Summarise a radioactivity run as a Markdown table.

    python aggregate.py WORK NAME:FRACTION:CONTEXT_WORDS ...
"""
import json
import os
import sys


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    return json.loads(lines[-1]) if lines else None


def fmt_p(s):
    if s is None:
        return "n/a"
    return f"{s['p_value']:.2e} (log10 {s['log10_p']:.2f})" if s["p_value"] > 0 else f"log10 {s['log10_p']:.1f}"


def main():
    work, runs = sys.argv[1], sys.argv[2:]
    corpus = load(f"{work}/corpus.json")
    print(f"Training corpus: {corpus['train_answers']} answers, {corpus['train_words']} words; "
          f"held-out prompts: {corpus['prompts']}\n")
    print("| student | marked fraction | context_words | train tokens | steps | train s | first → final loss "
          "| corpus hit rate | generated: texts / words | scored | hits | hit rate | p-value (bench key) "
          "| null keys: min / median log10 p | served: scored, hit rate, p |")
    print("|" + "---|" * 14)
    for run in runs:
        name, frac, ctx = run.split(":")[:3]
        t = load(f"{work}/train_{name}.log")
        c = load(f"{work}/corpus_{name}.json")
        s = load(f"{work}/score_{name}.json")
        v = load(f"{work}/served_score_{name}.json")
        if not (t and s):
            print(f"| {name} | {frac} | {ctx} | (not run) |" + " |" * 11)
            continue
        served = (f"{v['scored']}, {v['hit_rate']:.3f}, {fmt_p(v)}" if v else "n/a")
        print(f"| {name} | {frac} | {ctx} | {t['tokens']} | {t['steps']} | {t['seconds']:.0f} "
              f"| {t['first_loss']:.2f} → {t['final_loss']:.2f} | {c['hit_rate']:.3f} "
              f"| {s['texts']} / {s['words']} | {s['scored']} | {s['hits']} | {s['hit_rate']:.3f} "
              f"| {fmt_p(s)} | {s['null_min_log10_p']:.2f} / {s['null_median_log10_p']:.2f} | {served} |")


if __name__ == "__main__":
    main()
