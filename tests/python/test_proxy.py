"""The four APIs through the official SDKs (only base_url changed), streaming
and not, with usage recorded in the audit log."""

import anthropic
import httpx
import openai
import pytest


def oai(gw, key, **kw):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, **kw)


def ant(gw, key, **kw):
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, **kw)


def test_chat_completion(gw, key):
    r = oai(gw, key).chat.completions.create(
        model="demo-echo", messages=[{"role": "user", "content": "hello chat"}]
    )
    assert "hello chat" in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    row = gw.wait_audit("key_id IS NOT NULL AND request_body LIKE ?", ("%hello chat%",))[0]
    assert row["api"] == "openai.chat" and row["status"] == 200 and row["stream"] == 0
    assert (row["input_tokens"], row["output_tokens"]) == (r.usage.prompt_tokens, r.usage.completion_tokens)
    assert row["finish_reason"] == "stop"
    assert "hello chat" in row["response_text"]
    assert row["user_agent"].startswith("OpenAI/Python")
    assert row["ip"] == "127.0.0.1"


def test_chat_stream_without_usage_request_strips_usage_chunk(gw, key):
    chunks = list(
        oai(gw, key).chat.completions.create(
            model="demo-echo", stream=True, messages=[{"role": "user", "content": "stream one"}]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "stream one" in text
    # The gateway asked the upstream for usage, but the client did not: no usage chunk.
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    row = gw.wait_audit("request_body LIKE ?", ("%stream one%",))[0]
    assert row["stream"] == 1 and row["status"] == 200 and row["error"] is None
    assert row["input_tokens"] > 0 and row["output_tokens"] == len(text.split())
    assert row["finish_reason"] == "stop"


def test_chat_stream_with_usage_request_keeps_usage_chunk(gw, key):
    chunks = list(
        oai(gw, key).chat.completions.create(
            model="demo-echo",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "stream two"}],
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    row = gw.wait_audit("request_body LIKE ?", ("%stream two%",))[0]
    assert (row["input_tokens"], row["output_tokens"]) == (last.usage.prompt_tokens, last.usage.completion_tokens)


def test_stream_headers_and_incremental_delivery(gw, key):
    body = {"model": "long-50", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream(
        "POST", gw.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        events = [line for line in r.iter_lines() if line.startswith("data:")]
    assert events[-1] == "data: [DONE]"
    assert len(events) == 50 + 3  # role chunk + 50 words + finish chunk + [DONE]


def test_completions(gw, key):
    c = oai(gw, key)
    r = c.completions.create(model="demo-echo", prompt="complete me", max_tokens=4)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 4
    chunks = list(c.completions.create(model="demo-echo", prompt="complete stream", stream=True))
    assert "complete stream" in "".join(ch.choices[0].text for ch in chunks if ch.choices)
    row = gw.wait_audit("request_body LIKE ?", ("%complete stream%",))[0]
    assert row["api"] == "openai.completions" and row["stream"] == 1 and row["output_tokens"] > 0


def test_models_list(gw, key):
    ids = [m.id for m in oai(gw, key).models.list()]
    assert "demo-echo" in ids


def test_models_list_filtered_by_key_scope(gw, uniq):
    key = gw.account_with_key(uniq(), "--models", "demo-template")
    assert [m.id for m in oai(gw, key).models.list()] == ["demo-template"]


def test_model_retrieve(gw, uniq):
    key = gw.account_with_key(uniq(), "--models", "demo-template,org/missing")
    assert oai(gw, key).models.retrieve("demo-template").id == "demo-template"
    with pytest.raises(openai.PermissionDeniedError):
        oai(gw, key).models.retrieve("demo-echo")  # outside the key's scope
    with pytest.raises(openai.NotFoundError):
        oai(gw, key).models.retrieve("org/missing")  # passed to the upstream, which has none


def test_anthropic_messages(gw, key):
    r = ant(gw, key).messages.create(
        model="demo-echo", max_tokens=100, messages=[{"role": "user", "content": "hello claude"}]
    )
    assert "hello claude" in r.content[0].text
    assert r.stop_reason == "end_turn"
    row = gw.wait_audit("request_body LIKE ?", ("%hello claude%",))[0]
    assert row["api"] == "anthropic.messages"
    assert (row["input_tokens"], row["output_tokens"]) == (r.usage.input_tokens, r.usage.output_tokens)
    assert row["finish_reason"] == "end_turn"


def test_anthropic_stream(gw, key):
    with ant(gw, key).messages.stream(
        model="demo-echo", max_tokens=3, messages=[{"role": "user", "content": "anthropic stream"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.split() == ["[moat", "demo", "upstream,"]
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 3
    row = gw.wait_audit("request_body LIKE ?", ("%anthropic stream%",))[0]
    assert row["stream"] == 1 and row["output_tokens"] == 3 and row["input_tokens"] == final.usage.input_tokens
    assert row["finish_reason"] == "max_tokens"


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_both_key_headers_work_on_both_apis(gw, key, header):
    value = f"Bearer {key}" if header == "authorization" else key
    h = {header: value}
    r = httpx.post(gw.url + "/v1/chat/completions", headers=h, json={"model": "m", "messages": []})
    assert r.status_code == 200, r.text
    r = httpx.post(gw.url + "/v1/messages", headers=h, json={"model": "m", "max_tokens": 5, "messages": []})
    assert r.status_code == 200, r.text


def test_response_text_prefix_is_bounded(gw, key):
    oai(gw, key).chat.completions.create(
        model="long-500", messages=[{"role": "user", "content": "bounded prefix"}]
    )
    row = gw.wait_audit("request_body LIKE ?", ("%bounded prefix%",))[0]
    assert row["output_tokens"] == 500
    assert 0 < len(row["response_text"].encode()) <= 200  # [audit] response_prefix_bytes
