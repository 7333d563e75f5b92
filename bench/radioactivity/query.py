"""Send prompts to an OpenAI-compatible /v1/chat/completions endpoint; write answers as JSONL.

    python query.py --url http://127.0.0.1:PORT --model NAME --prompts prompts.jsonl \
        --limit 100 --out answers.jsonl

Waits up to 60 s for the server to come up. Standard library only.
"""
import argparse
import json
import time
import urllib.request


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    for _ in range(120):
        try:
            urllib.request.urlopen(a.url + "/v1/models", timeout=2).read()
            break
        except OSError:
            time.sleep(0.5)
    prompts = [json.loads(l)["text"] for l in open(a.prompts)][: a.limit]
    t0 = time.time()
    with open(a.out, "w") as f:
        for p in prompts:
            r = post(a.url + "/v1/chat/completions",
                     {"model": a.model, "messages": [{"role": "user", "content": p}]})
            f.write(json.dumps({"prompt": p, "text": r["choices"][0]["message"]["content"]}) + "\n")
    print(json.dumps({"answers": len(prompts), "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
