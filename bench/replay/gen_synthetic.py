#!/usr/bin/env python3
"""Synthetic traffic for the `moat replay` benchmark, in DESIGN.md's format.

    python3 bench/replay/gen_synthetic.py --accounts 20000 --exchanges 5000000 --out /tmp/moat-synth

Writes OUT/accounts.jsonl, OUT/traffic.jsonl.zst (through the `zstd` command; plain
OUT/traffic.jsonl if it is missing) and OUT/campaign_accounts.txt. Standard library only;
deterministic for a given --seed.

The mix, so the engine does real work on every line:
* benign accounts (97 %): old accounts of every tier, chat apps with system prompts, coding
  agents with tools, multi-turn conversations, streaming, short to medium answers, each from
  its own address, volumes spread over a heavy-tailed distribution;
* campaign accounts (3 %, in groups of 40): new, unverified, free/build tier, disposable email
  domains, addresses from a few shared /24 subnets, one scripted client, single-turn
  templated "explain step by step" prompts over a task catalogue, reasoning requested, long
  answers near max_tokens. Each group's accounts switch on at staggered times.

It is a load and state benchmark, not a detection benchmark: the prompts are generated from
word lists, not real corpora.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

WORDS = (
    "apple river budget garden python rust kernel cache invoice travel recipe tomato guitar "
    "planet orbit contract lawyer tenant landlord vaccine pollen bicycle marathon sleep coffee "
    "spreadsheet formula pivot chart email meeting agenda summary novel poem chapter villain "
    "sql index join query latency network router firewall docker container deploy rollback "
    "mortgage interest loan savings tax receipt refund warranty battery charger laptop screen "
    "history empire treaty war peace climate carbon solar wind turbine bridge concrete steel"
).split()
APPS = [
    "You are Lumen, a friendly assistant inside the Lumen app. Answer clearly and concisely.",
    "You are a customer support agent for Acme Bank. Never give financial advice.",
    "You are CedarCode, an autonomous coding agent. Keep changes minimal.",
    "You are a helpful tutor for high-school students. Explain simply.",
    "",
]
ASKS = [
    "How do I {a} my {b} without breaking the {c}?",
    "Write a short email to my {a} about the {b} and the {c}.",
    "What is the difference between a {a} and a {b}?",
    "Summarise this: the {a} met the {b} near the {c}, and they argued about the {d}.",
    "Fix this code: def {a}_{b}(x): return x.{c}() + {d}",
    "Give me three ideas for a {a} themed {b} party with a {c}.",
    "Translate 'the {a} is next to the {b}' into French and German.",
]
TASKS = [
    "Solve step by step and show every intermediate result: {a} problem {n}.",
    "Think carefully and reason out loud before answering: why does the {a} {b} (case {n})?",
    "Explain your full chain of thought for this {a} question #{n}: {b} versus {c}.",
]
TOOLS = (
    '[{"type":"function","function":{"name":"read_file","parameters":{"type":"object",'
    '"properties":{"path":{"type":"string"}}}}}]'
)
UAS = ["OpenAI/Python 1.51.0", "OpenAI/NodeJS 4.67.1", "Anthropic/Python 0.39.0", "curl/8.5.0"]
DOMAINS = ["gmail.com", "outlook.com", "icloud.com", "acme.io", "uni.edu", "corp.example"]
BURNER = ["mailinator.com", "tempmail.dev", "guerrillamail.com"]
TIERS = ["free", "build", "scale", "enterprise"]
COUNTRIES = ["US", "DE", "GB", "FR", "IN", "BR", "JP", "CA"]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=20000)
    ap.add_argument("--exchanges", type=int, default=5_000_000)
    ap.add_argument("--campaign-share", type=float, default=0.25,
                    help="share of exchanges sent by campaign accounts")
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)
    span_ms = a.days * 86_400_000

    n_camp = max(40, int(a.accounts * 0.03)) // 40 * 40
    accounts = []  # (id, key, ip, ua, campaign index or -1, active-from ms, weight)
    with (out / "accounts.jsonl").open("w") as f:
        for i in range(a.accounts):
            acct = f"acct_{i:06x}"
            camp = i // 40 if i < n_camp else -1
            if camp >= 0:
                created = start + timedelta(days=rng.uniform(-10, a.days * 0.5))
                meta = {"account": acct, "created": iso(created), "tier": rng.choice(TIERS[:2]),
                        "email_domain": rng.choice(BURNER), "country": rng.choice(COUNTRIES),
                        "verified": False}
                ip = f"203.0.{113 + camp % 7}.{rng.randrange(2, 250)}"
                ua = "python-requests/2.31.0"
                active = max(0.0, (created - start).total_seconds() * 1000)
                weight = 1.0
            else:
                created = start - timedelta(days=rng.uniform(20, 900))
                meta = {"account": acct, "created": iso(created), "tier": rng.choice(TIERS),
                        "email_domain": rng.choice(DOMAINS), "country": rng.choice(COUNTRIES),
                        "verified": rng.random() < 0.7}
                ip = f"{rng.randrange(11, 200)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                ua = rng.choice(UAS)
                active = 0.0
                weight = rng.paretovariate(1.3)
            f.write(json.dumps(meta) + "\n")
            accounts.append((acct, f"key_{i:06x}", ip, ua, camp, active, weight))
    (out / "campaign_accounts.txt").write_text(
        "".join(f"{x[0]}\n" for x in accounts if x[4] >= 0))
    benign = [x for x in accounts if x[4] < 0]
    camp = [x for x in accounts if x[4] >= 0]
    bw = [x[6] for x in benign]

    zstd = shutil.which("zstd")
    if zstd:
        path = out / "traffic.jsonl.zst"
        proc = subprocess.Popen([zstd, "-q", "-f", "-3", "-T2", "-o", str(path)],
                                stdin=subprocess.PIPE)
        sink = proc.stdin
    else:
        path = out / "traffic.jsonl"
        proc, sink = None, path.open("wb")
    step = span_ms / a.exchanges
    batch = 50_000
    task_n = 0
    for b0 in range(0, a.exchanges, batch):
        n = min(batch, a.exchanges - b0)
        picks_b = rng.choices(benign, weights=bw, k=n)
        lines = []
        for j in range(n):
            i = b0 + j
            t_ms = i * step + rng.random() * step
            ts = iso(start + timedelta(milliseconds=t_ms))
            c = None
            if rng.random() < a.campaign_share:
                c = camp[rng.randrange(len(camp))]
                if c[5] > t_ms:
                    c = None
            if c is not None:
                task_n += 1
                w = rng.sample(WORDS, 3)
                prompt = rng.choice(TASKS).format(a=w[0], b=w[1], c=w[2], n=task_n)
                mt = rng.choice([2048, 4096])
                out_tok = int(mt * rng.uniform(0.8, 1.0))
                fin = "length" if out_tok == mt else "stop"
                req = ('{"model":"m-large","messages":[{"role":"user","content":%s}],'
                       '"max_tokens":%d,"reasoning_effort":"high"}' % (json.dumps(prompt), mt))
                lines.append(
                    '{"ts":"%s","account":"%s","key":"%s","ip":"%s","user_agent":"%s",'
                    '"api":"openai.chat","request":%s,"response":{"status":200,'
                    '"finish_reason":"%s","usage":{"input_tokens":%d,"output_tokens":%d}}}\n'
                    % (ts, c[0], c[1], c[2], c[3], req, fin, len(prompt) // 4 + 8, out_tok))
                continue
            acct = picks_b[j]
            w = rng.sample(WORDS, 4)
            ask = rng.choice(ASKS).format(a=w[0], b=w[1], c=w[2], d=w[3])
            system = rng.choice(APPS)
            msgs = []
            if system:
                msgs.append({"role": "system", "content": system})
            if rng.random() < 0.35:
                msgs.append({"role": "user", "content": rng.choice(ASKS).format(
                    a=w[3], b=w[2], c=w[1], d=w[0])})
                msgs.append({"role": "assistant", "content": "Sure: " + " ".join(rng.sample(WORDS, 12))})
            msgs.append({"role": "user", "content": ask})
            stream = rng.random() < 0.4
            tools = ',"tools":' + TOOLS if "CedarCode" in system else ""
            req = '{"model":"%s","messages":%s,"stream":%s%s}' % (
                rng.choice(["m-large", "m-small"]), json.dumps(msgs, separators=(",", ":")),
                "true" if stream else "false", tools)
            out_tok = int(rng.lognormvariate(5.0, 0.8)) + 1
            lines.append(
                '{"ts":"%s","account":"%s","key":"%s","ip":"%s","user_agent":"%s",'
                '"api":"openai.chat","request":%s,"response":{"status":200,'
                '"finish_reason":"stop","usage":{"input_tokens":%d,"output_tokens":%d}}}\n'
                % (ts, acct[0], acct[1], acct[2], acct[3], req, len(req) // 4, out_tok))
        sink.write("".join(lines).encode())
        print(f"\r{b0 + n:,} / {a.exchanges:,} exchanges", end="", file=sys.stderr, flush=True)
    sink.close()
    if proc and proc.wait() != 0:
        print("zstd failed", file=sys.stderr)
        return 1
    print(f"\nwrote {path} ({path.stat().st_size / 1e6:.0f} MB), {out / 'accounts.jsonl'} "
          f"({a.accounts:,} accounts, {len(camp):,} in campaigns)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
