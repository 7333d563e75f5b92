"""Build the radioactivity training corpus and held-out prompts from ShareGPT answers.

    python build_corpus.py --gpt WORK/gpt.jsonl --out WORK --words 1500000 --prompts 2000

Input: bench/watermark/prepare.py output (assistant turns). Keeps English prose answers
(no code fences, >= 97 % ASCII, 30..600 words), splits by conversation id (5 % of
conversations held out), then writes
  WORK/train_plain.jsonl  training answers (seeded shuffle, up to --words words), unmarked
  WORK/prompts.jsonl      {"text": first --prompt-words words of a held-out answer}
Held-out prompts never come from a conversation that contributed training answers.
"""
import argparse
import hashlib
import json
import random


def keep(text):
    if "```" in text:
        return False
    n = len(text.split())
    if n < 30 or n > 600:
        return False
    ascii_chars = sum(1 for c in text if ord(c) < 128)
    return ascii_chars >= 0.97 * len(text)


def held_out(conv_id):
    return hashlib.sha256(conv_id.encode()).digest()[0] < 13  # ~5 %


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--words", type=int, default=1_500_000)
    ap.add_argument("--prompts", type=int, default=2000)
    ap.add_argument("--prompt-words", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    train, test = [], []
    with open(a.gpt) as f:
        for line in f:
            r = json.loads(line)
            if not keep(r["text"]):
                continue
            (test if held_out(r["id"].split("/")[0]) else train).append(r)
    rng = random.Random(a.seed)
    rng.shuffle(train)
    rng.shuffle(test)
    words = 0
    with open(f"{a.out}/train_plain.jsonl", "w") as f:
        n = 0
        for r in train:
            if words >= a.words:
                break
            words += len(r["text"].split())
            f.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
            n += 1
    with open(f"{a.out}/prompts.jsonl", "w") as f:
        for r in test[: a.prompts]:
            p = " ".join(r["text"].split()[: a.prompt_words])
            f.write(json.dumps({"id": r["id"], "text": p}) + "\n")
    print(json.dumps({"train_answers": n, "train_words": words,
                      "eligible_train_pool": len(train), "heldout_pool": len(test),
                      "prompts": min(a.prompts, len(test))}))


if __name__ == "__main__":
    main()
