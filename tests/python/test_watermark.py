"""The text watermark end to end: the real gateway marks answers of both APIs (streamed and
not, identical text), leaves code/numbers/quotes/URLs alone, honours the tier opt-out, records
the key id in the audit log; `moat mark detect`, the admin endpoint and `moat verify` find it.

The demo upstream echoes the prompt, so the tests send English prose with many eligible words
(the `long-N` models answer `w0 w1 …`, which has no eligible position).
"""

from __future__ import annotations

import json
import os
import random
import re
import stat
import subprocess

import anthropic
import openai

from conftest import moat_bin

NOUNS = (
    "cache server table model query index buffer report budget garden kitchen river market "
    "network teacher student doctor engine window bridge museum library harbor village "
    "factory planet signal picture camera battery forest island ticket letter contract"
).split()
ADJ = "useful simple careful quiet modern stable ready strong".split()

# Sentences with many eligible positions (big/large, often/frequently, do not/don't, …);
# the random nouns make the (context, set) tuples distinct.
TEMPLATES = [
    "The {a} {b} is often a big problem for the {c}.",
    "We do not think the {a} {b} will choose a larger {c}.",
    "Perhaps the {a} {b} is usually the biggest {c} here.",
    "Someone can't modify the {a} {b} without a {adj} {c}.",
    "It is nearly impossible to select the {a} {b}, but everyone is using the {c}.",
    "They are mainly worried that the {a} {b} does not fit a large {c}.",
]

PROTECTED = '`do not modify` https://big.example.com/large 42 3.5% "often large" user@big.example.com v2.0-large'


def prose(seed: int, sentences: int = 60) -> str:
    rnd = random.Random(seed)
    out = []
    for i in range(sentences):
        t = rnd.choice(TEMPLATES)
        out.append(t.format(a=rnd.choice(NOUNS), b=rnd.choice(NOUNS), c=rnd.choice(NOUNS), adj=rnd.choice(ADJ)))
        if i == sentences // 2:
            out.append(PROTECTED)
    return " ".join(out)


def oa(gw, key):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=30)


def an(gw, key):
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)


def detect(gw, text):
    r = gw.admin("POST", "/admin/v1/watermark/detect", json={"text": text})
    assert r.status_code == 200, r.text
    return r.json()


def chat(client, prompt, stream=False):
    kw = dict(model="demo-echo", messages=[{"role": "user", "content": prompt}])
    if not stream:
        return client.chat.completions.create(**kw).choices[0].message.content
    parts = []
    for ch in client.chat.completions.create(stream=True, **kw):
        for c in ch.choices:
            parts.append(c.delta.content or "")
    return "".join(parts)


def test_openai_answers_are_marked_and_streams_match(gw, key):
    prompt = prose(1)
    c = oa(gw, key)
    whole = chat(c, prompt)
    streamed = chat(c, prompt, stream=True)
    assert streamed == whole
    original = "[moat demo upstream, not a model] You said: " + prompt
    assert whole != original, "the answer was not rewritten"
    # Only eligible words change: same number of words (contractions aside), protected spans intact.
    assert PROTECTED in whole
    d = detect(gw, whole)
    assert d["verdict"]["marked"] is True
    assert d["verdict"]["log10_p"] < -20, d
    key_id = d["verdict"]["key_id"]
    # The unmarked original is not detected.
    assert detect(gw, original)["verdict"]["marked"] is False
    # The audit record names the key that marked the answer.
    rows = gw.wait_audit("json_extract(decision, '$.watermark.key_id') = ?", (key_id,), n=2)
    assert json.loads(rows[-1]["decision"])["watermark"] == {"applied": True, "scheme": "text", "key_id": key_id}


def test_anthropic_answers_are_marked_and_streams_match(gw, key):
    prompt = prose(2)
    c = an(gw, key)
    kw = dict(model="demo-echo", max_tokens=4096, messages=[{"role": "user", "content": prompt}])
    whole = c.messages.create(**kw).content[0].text
    with c.messages.stream(**kw) as s:
        streamed = "".join(s.text_stream)
    assert streamed == whole
    assert PROTECTED in whole
    assert detect(gw, whole)["verdict"]["marked"] is True
    # Same upstream text through the OpenAI API: the same marked text (one key, one scheme).
    assert chat(oa(gw, key), prompt) == whole


def test_reasoning_is_marked_too(gw, key):
    # think-* models send reasoning_content and a <think> span before the answer.
    c = oa(gw, key)
    prompt = prose(3, 30)
    kw = dict(model="think-echo", messages=[{"role": "user", "content": prompt}])
    whole = c.chat.completions.create(**kw).choices[0].message
    parts, reasoning = [], []
    for ch in c.chat.completions.create(stream=True, **kw):
        for x in ch.choices:
            parts.append(x.delta.content or "")
            reasoning.append(getattr(x.delta, "reasoning_content", None) or "")
    assert "".join(parts) == whole.content
    assert "".join(reasoning) == whole.reasoning_content
    assert detect(gw, whole.content)["verdict"]["marked"] is True


def test_tier_opt_out_and_key_file(make_gateway):
    g = make_gateway({"watermark": {"tiers_off": ["enterprise"]}})
    on = g.account_with_key("wm_free", account_flags=("--tier", "free"))
    off = g.account_with_key("wm_ent", account_flags=("--tier", "enterprise"))
    prompt = prose(4)
    original = "[moat demo upstream, not a model] You said: " + prompt
    assert chat(oa(g, off), prompt) == original
    assert chat(oa(g, off), prompt, stream=True) == original
    marked = chat(oa(g, on), prompt)
    assert marked != original
    rows = g.wait_audit("account_id = ?", ("wm_ent",), n=2)
    assert json.loads(rows[0]["decision"])["watermark"] == {"applied": False, "reason": "tier_off"}
    # The key was created next to the database, private, and survives a restart.
    kf = g.db.parent / (g.db.name + ".watermark-keys")
    assert stat.S_IMODE(kf.stat().st_mode) == 0o600
    before = kf.read_text()
    g.stop()
    g.start()
    assert kf.read_text() == before
    assert chat(oa(g, on), prompt) == marked


def test_disabled(make_gateway):
    g = make_gateway({"watermark": {"enabled": False}})
    k = g.account_with_key("wm_any")
    prompt = prose(5, 20)
    assert chat(oa(g, k), prompt) == "[moat demo upstream, not a model] You said: " + prompt


def test_mark_detect_cli(gw, key):
    prompt = prose(6)
    marked = chat(oa(gw, key), prompt)
    p = subprocess.run([moat_bin(), "--config", str(gw.config), "mark", "detect", "-", "--json"],
                       input=marked, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["texts"][0]["verdict"]["marked"] is True
    r = out["texts"][0]["results"][0]
    assert r["scheme"] == "text" and r["scored"] > 20 and r["hits"] == r["scored"] and r["p_value"] < 1e-6
    lines = "\n".join(json.dumps({"text": t}) for t in [prompt, marked]) + "\n"
    p = subprocess.run(
        [moat_bin(), "--config", str(gw.config), "mark", "detect", "-", "--jsonl"],
        input=lines, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "text 1:" in p.stdout and "verdict: not watermarked" in p.stdout
    assert "WATERMARKED by key" in p.stdout


def test_verify_separates_marked_and_unmarked_suspects(gw, key, upstream_url, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": prose(100 + i, 12)}) + "\n" for i in range(12)))
    env = {**os.environ, "SUSPECT_KEY": key}

    def verify(url, out):
        p = subprocess.run(
            [moat_bin(), "--config", str(gw.config), "verify", "--suspect", url, "--model", "demo-echo",
             "--prompts", str(prompts), "--out", str(out), "--api-key-env", "SUSPECT_KEY",
             "--concurrency", "4", "--null-keys", "10"],
            capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout, json.loads((out / "report.json").read_text()), (out / "report.html").read_text()

    line, rep, html = verify(gw.url + "/v1", tmp_path / "marked")
    assert "WATERMARK DETECTED" in line and "null check OK" in line
    assert rep["verdict"]["marked"] is True and rep["answers_used"] == 12 and rep["answers_failed"] == 0
    assert rep["verdict"]["log10_p"] < -10
    nc = rep["null_check"]["random_keys"]
    assert nc["all_not_significant"] is True and nc["keys"] == 10 and nc["min_p"] > 1e-6
    assert "<script" not in html and "Null check" in html

    line, rep, _ = verify(upstream_url, tmp_path / "clean")
    assert "no watermark detected" in line and "null check OK" in line
    assert rep["verdict"]["marked"] is False and rep["positions"] > 100


def test_unigram_profile_marks_every_answer_the_same_way(make_gateway, tmp_path):
    # [watermark] context_words = 0 (the setting for proving distillation): one keyed choice
    # per synonym set, so every answer makes the same choice, and `moat verify` reads the
    # scheme from the config.
    g = make_gateway({"watermark": {"context_words": 0}})
    key = g.account_with_key("wm_uni")
    answers = [chat(oa(g, key), prose(300 + i, 12)) for i in range(16)]
    # (PROTECTED quotes "often large": quoted text is never rewritten.)
    words = re.findall(r"[a-z]+", " ".join(a.replace(PROTECTED, "") for a in answers).lower())
    for pair in (("often", "frequently"), ("usually", "typically"), ("mainly", "primarily")):
        used = {w for w in words if w in pair}
        assert len(used) == 1, (pair, used)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": prose(300 + i, 12)}) + "\n" for i in range(16)))
    out = tmp_path / "report"
    p = subprocess.run(
        [moat_bin(), "--config", str(g.config), "verify", "--suspect", g.url + "/v1", "--model", "demo-echo",
         "--prompts", str(prompts), "--out", str(out), "--api-key-env", "SUSPECT_KEY", "--null-keys", "10"],
        capture_output=True, text=True, env={**os.environ, "SUSPECT_KEY": key}, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["sampling"]["temperature"] == 1.0
    text = next(r for r in rep["results"] if r["scheme"] == "text")
    # At most one scored position per set: the templates use about 16 sets.
    assert 10 <= text["scored"] <= 30 and text["hits"] == text["scored"], text
    assert text["log10_p"] < -3, text
    assert rep["null_check"]["random_keys"]["all_not_significant"] is True
