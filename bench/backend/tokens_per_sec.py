"""Streams a greedy /v1/completions request and reports time to first token and decode rate.

Used by bench/backend/run.sh for both servers, so both are measured the same way: decode
tokens/s = (completion tokens - 1) / (time of last token - time of first token).
"""

import argparse
import json
import statistics
import time

import httpx

PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWrite a long essay about the history of the printing press.<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def one(client: httpx.Client, url: str, model: str, max_tokens: int) -> tuple[float, float, int]:
    body = {"model": model, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = last = None
    pieces = 0
    usage = None
    with client.stream("POST", url + "/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("usage"):
                usage = ev["usage"]
            if ev.get("choices") and ev["choices"][0].get("text"):
                now = time.perf_counter()
                first = first or now
                last = now
                pieces += 1
    tokens = usage["completion_tokens"] if usage else pieces
    decode = (tokens - 1) / (last - first) if last and first and last > first else float("nan")
    return (first - t0) * 1000, decode, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", required=True,
                    help="LABEL,URL,KEY (repeatable); rounds alternate between targets")
    ap.add_argument("--model", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    a = ap.parse_args()
    targets = []
    for t in a.target:
        label, url, key = t.split(",", 2)
        client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=600)
        one(client, url, a.model, 8)  # warm-up
        targets.append((label, url, client, [], []))
    # Alternate the targets round by round, so background noise on this shared machine hits
    # both alike; only one server generates at a time.
    for i in range(a.rounds):
        for label, url, client, ttfts, rates in targets:
            ttft, rate, n = one(client, url, a.model, a.max_tokens)
            print(f"[{label} {i + 1}] {n} tokens, ttft {ttft:.0f} ms, decode {rate:.1f} tok/s", flush=True)
            ttfts.append(ttft)
            rates.append(rate)
    med = {}
    for label, _, _, ttfts, rates in targets:
        med[label] = statistics.median(rates)
        print(f"{label}: median decode {med[label]:.2f} tok/s; median ttft {statistics.median(ttfts):.0f} ms")
    if len(targets) == 2:
        (l0, r0), (l1, r1) = med.items()
        print(f"ratio decode {l1}/{l0} = {r1 / r0:.3f}")


if __name__ == "__main__":
    main()
