"""The embedded model backend (`upstream.base_url = "embedded"`, moat-backend) through the
gateway with the official SDKs: a real SmolLM2-135M-Instruct, greedy, short answers.

Skipped when models/SmolLM2-135M-Instruct.Q4_1.gguf is absent (scripts/fetch-model) or when the
moat binary was built without the `embedded` feature.
"""

import json
import re
import sqlite3
import subprocess
import time

import anthropic
import openai
import pytest

from conftest import REPO, Gateway, free_port, moat_bin, stop, wait_http

MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SECRET = "embedded-test-watermark-secret-0123"


@pytest.fixture(scope="module")
def egw(tmp_path_factory):
    if not MODEL.exists():
        pytest.skip(f"{MODEL} is absent (run scripts/fetch-model)")
    g = Gateway(
        tmp_path_factory.mktemp("embedded"),
        "embedded",
        {
            "upstream": {"timeout": "120s"},
            "upstream.embedded": {"model": str(MODEL), "model_id": "smollm2-135m", "threads": 2},
            "upstream.embedded.watermark": {"key_id": "test-k1"},
        },
        env={"MOAT_SAMPLER_WATERMARK_SECRET": SECRET},
    )
    try:
        g.start()
    except RuntimeError as e:
        if "embedded` feature" in str(e):
            pytest.skip("moat was built without the `embedded` feature")
        raise
    yield g
    g.stop()


@pytest.fixture(scope="module")
def ekey(egw):
    return egw.account_with_key("embedded_acct", "--allow-logprobs")


def oai(g, key):
    return openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0, timeout=120)


def ant(g, key):
    return anthropic.Anthropic(base_url=g.url, api_key=key, max_retries=0, timeout=120)


Q = [{"role": "user", "content": "What is 2+2?"}]


def test_models_lists_the_embedded_model(egw, ekey):
    ids = [m.id for m in oai(egw, ekey).models.list().data]
    assert ids == ["smollm2-135m"]


def test_openai_chat_greedy_is_deterministic(egw, ekey):
    c = oai(egw, ekey)
    r1 = c.chat.completions.create(model="smollm2-135m", messages=Q, max_tokens=16, temperature=0)
    r2 = c.chat.completions.create(model="smollm2-135m", messages=Q, max_tokens=16, temperature=0)
    # The sampler watermark (configured above) biases even greedy decoding, so the answer is
    # not asserted, only its determinism.
    assert r1.choices[0].message.content
    assert r1.choices[0].message.content == r2.choices[0].message.content
    assert r1.choices[0].finish_reason in ("stop", "length")
    assert r1.usage.prompt_tokens > 10 and 0 < r1.usage.completion_tokens <= 16
    row = egw.wait_audit("key_id IS NOT NULL AND api = 'openai.chat'")[0]
    assert row["status"] == 200 and row["output_tokens"] == r1.usage.completion_tokens


def test_openai_chat_stream_and_max_tokens(egw, ekey):
    chunks = list(
        oai(egw, ekey).chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "Write a poem about the sea."}],
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text and finish == ["length"]
    assert chunks[-1].usage.completion_tokens == 8


def test_openai_stop_sequence_and_logprobs(egw, ekey):
    c = oai(egw, ekey)
    base = c.chat.completions.create(model="smollm2-135m", messages=Q, max_tokens=16, temperature=0)
    text = base.choices[0].message.content
    stop = text[len(text) // 2 :][:3]
    r = c.chat.completions.create(
        model="smollm2-135m", messages=Q, max_tokens=16, temperature=0, stop=[stop],
        logprobs=True, top_logprobs=2,
    )
    assert r.choices[0].message.content == text[: text.index(stop)]
    assert r.choices[0].finish_reason == "stop"
    lp = r.choices[0].logprobs.content
    assert lp and all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in lp)


def test_openai_completions(egw, ekey):
    r = oai(egw, ekey).completions.create(
        model="smollm2-135m", prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert r.choices[0].text and r.usage.completion_tokens <= 6


def test_anthropic_messages(egw, ekey):
    m = ant(egw, ekey).messages.create(
        model="smollm2-135m", max_tokens=16, messages=Q, extra_body={"temperature": 0},
        system="You are a terse assistant.",
    )
    assert m.content[0].type == "text" and m.content[0].text
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert m.usage.input_tokens > 10 and 0 < m.usage.output_tokens <= 16


def test_anthropic_stream(egw, ekey):
    with ant(egw, ekey).messages.stream(
        model="smollm2-135m", max_tokens=12, extra_body={"temperature": 0},
        messages=[{"role": "user", "content": "Write a poem about the sea."}],
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 12
    assert final.usage.input_tokens > 10


def test_quickstart_demo_answers_with_the_real_model(tmp_path):
    """README's quickstart: `moat demo` picks the embedded model when models/ has it; the
    printed key works with the official SDK, the answer comes from SmolLM2 (the sampler
    watermark is off here, so the gateway's text watermark applies), and the exchange is in
    the demo's audit log."""
    if not MODEL.exists():
        pytest.skip(f"{MODEL} is absent (run scripts/fetch-model)")
    port = free_port()
    log = tmp_path / "demo.log"
    db = tmp_path / "demo.db"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [moat_bin(), "demo", "--listen", f"127.0.0.1:{port}", "--demo-db", str(db),
             "--model", str(MODEL)],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=60)
        deadline = time.monotonic() + 30
        while "API key (shown once)" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = log.read_text()
        if "built without the `embedded` feature" in text or "DEMO UPSTREAM" in text:
            pytest.skip("moat was built without the `embedded` feature")
        assert "REAL MODEL" in text
        key = re.search(r"API key \(shown once\): (\S+)", text).group(1)
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=120)
        r = c.chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=12, temperature=0,
        )
        assert "Paris" in r.choices[0].message.content
        assert r.usage.prompt_tokens > 10 and 0 < r.usage.completion_tokens <= 12
        rows = sqlite3.connect(db).execute(
            "SELECT status, output_tokens FROM audit_log WHERE account_id = 'demo'").fetchall()
        deadline = time.monotonic() + 10
        while not rows and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = sqlite3.connect(db).execute(
                "SELECT status, output_tokens FROM audit_log WHERE account_id = 'demo'").fetchall()
        assert rows == [(200, r.usage.completion_tokens)]
    finally:
        stop(proc)


def test_mark_detect_finds_the_sampler_watermark_by_key_id(egw, ekey, tmp_path):
    """An answer of the embedded backend carries the sampler watermark (key `test-k1`):
    `moat mark detect` runs the token-level detector with the model's tokenizer and names
    that key; the same command on human text is not significant."""
    r = oai(egw, ekey).chat.completions.create(
        model="smollm2-135m", max_tokens=160, temperature=0.7, seed=7,
        messages=[{"role": "user", "content": "Write a story about a lighthouse keeper."}],
    )
    text = r.choices[0].message.content
    assert r.usage.completion_tokens > 100, r.usage
    marked = tmp_path / "answer.txt"
    marked.write_text(text)
    human = tmp_path / "human.txt"
    human.write_text(
        "The lighthouse stood at the end of the pier for a hundred years. Every evening the keeper "
        "climbed its one hundred and twelve steps, trimmed the wick, wound the clockwork and "
        "watched the ships pass between the rocks. In winter the storms came from the north."
    )
    out = json.loads(egw.cli("mark", "detect", str(marked), "--json").stdout)
    sampler = [x for x in out["texts"][0]["results"] if x.get("scheme") == "sampler"]
    assert sampler and sampler[0]["key_id"] == "test-k1", out
    assert sampler[0]["p_value"] < 1e-4, sampler
    assert out["texts"][0]["verdict"]["key_id"] == "test-k1", out
    out = json.loads(egw.cli("mark", "detect", str(human), "--json").stdout)
    sampler = [x for x in out["texts"][0]["results"] if x.get("scheme") == "sampler"]
    assert sampler[0]["p_value"] > 1e-3, sampler


def test_verify_scores_suspects_with_the_sampler_detector(egw, ekey, upstream_url, tmp_path):
    """`moat verify` with this configuration re-tokenises a suspect's answers with the model's
    tokenizer and pools the token-level detector over them: the embedded backend itself
    (sampler-marked) is detected under key `test-k1` with the null check passing; the demo
    upstream (never marked) is not."""
    prompts = tmp_path / "prompts.txt"
    # Long prompts: the demo upstream echoes them, which gives the unmarked suspect text too.
    prompts.write_text(
        "Describe a long walk along a wide river in autumn, with the colours of the leaves, the "
        "sound of the water, the birds and the people you meet on the way home.\n"
        "Explain how a bicycle works: the frame, the wheels and spokes, the chain and gears, the "
        "brakes, and why a rider stays upright when moving but falls over when stopped.\n"
        "Write a short story about a curious cat who climbs onto the roof of an old library at "
        "night and discovers a window left open to a room full of maps.\n")
    env = {**egw.env, "SUSPECT_KEY": ekey}

    def verify(url, out):
        p = subprocess.run(
            [moat_bin(), "--config", str(egw.config), "verify", "--suspect", url,
             "--model", "smollm2-135m", "--prompts", str(prompts), "--out", str(out),
             "--api-key-env", "SUSPECT_KEY", "--max-tokens", "80", "--null-keys", "8"],
            capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        rep = json.loads((out / "report.json").read_text())
        sampler = [r for r in rep["results"] if r["scheme"] == "sampler"]
        assert len(sampler) == 1 and sampler[0]["key_id"] == "test-k1", rep["results"]
        nulls = [r for r in rep["null_check"]["random_keys"]["results"] if r["scheme"] == "sampler"]
        assert len(nulls) == 8 and all(r["scored"] == sampler[0]["scored"] for r in nulls)
        return p.stdout, rep, sampler[0]

    line, rep, s = verify(egw.url + "/v1", tmp_path / "marked")
    assert rep["answers_used"] == 3 and s["scored"] > 120, s
    assert "WATERMARK DETECTED (key test-k1" in line and "null check OK" in line, line
    assert s["log10_p"] < -6 and rep["verdict"]["scheme"] == "sampler", s

    line, rep, s = verify(upstream_url, tmp_path / "clean")
    assert "no watermark detected" in line and "null check OK" in line, line
    assert s["scored"] > 60 and s["p_value"] > 1e-3, s
