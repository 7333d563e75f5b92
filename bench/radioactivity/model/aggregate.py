"""Table of the real-model radioactivity run (bench/radioactivity/model/run.sh).

    python3 aggregate.py WORK NAME:FRACTION ...
"""
import json
import os
import re
import sys


def last_loss(path):
    try:
        s = open(path).read()
    except OSError:
        return None
    m = re.findall(r'"final_loss":\s*([0-9.]+)', s)
    return float(m[-1]) if m else None


def main():
    w, specs = sys.argv[1], sys.argv[2:]
    print("| student | marked fraction | final loss | answers | words | tuples scored | green | "
          "green rate (γ = 0.25) | z | p (bench key) | null keys: min p | plain teacher answers "
          "(null texts): p | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in specs:
        name, f = spec.split(":")
        p = os.path.join(w, f"verify_{name}", "report.json")
        if not os.path.exists(p):
            print(f"| {name} | {f} | (no report) |")
            continue
        r = json.load(open(p))
        s = next((x for x in r["results"] if x["scheme"] == "sampler"), None)
        nt = (r["null_check"].get("null_texts") or {}).get("results") or []
        nts = next((x for x in nt if x["scheme"] == "sampler"), None)
        rate = s["hits"] / s["scored"] if s and s["scored"] else float("nan")
        print(f"| {name} | {f} | {last_loss(os.path.join(w, f'train_{name}.log'))} | "
              f"{r['answers_used']} | {r['words']} | {s['scored']} | {s['hits']} | {rate:.3f} | "
              f"{s['z']:.2f} | {s['p_value']:.3g} (log10 {s['log10_p']:.1f}) | "
              f"{r['null_check']['random_keys']['min_p']:.3f} | "
              f"{nts['p_value']:.3f} | {'DETECTED' if r['verdict']['marked'] else 'not detected'} |")


if __name__ == "__main__":
    main()
