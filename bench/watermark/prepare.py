"""Write ShareGPT turns as JSON Lines for the `mark_eval` example.

    python prepare.py --role gpt   --out /tmp/wm/gpt.jsonl
    python prepare.py --role human --out /tmp/wm/human.jsonl

Each line: {"id": "<conversation id>/<turn>", "role": ..., "text": ...}. Empty turns are
skipped; exact duplicate texts are kept once.
"""
import argparse
import json

import sharegpt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=["gpt", "human"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    roles = {"gpt": {"gpt", "chatgpt", "bard", "bing"}, "human": {"human", "user"}}[a.role]
    seen = set()
    n = 0
    with open(a.out, "w") as f:
        for cid, j, text in sharegpt.turns(roles):
            if not text.strip() or text in seen:
                continue
            seen.add(text)
            f.write(json.dumps({"id": f"{cid}/{j}", "role": a.role, "text": text}) + "\n")
            n += 1
            if a.limit and n >= a.limit:
                break
    print(f"{a.out}: {n} texts")


if __name__ == "__main__":
    main()
