"""Every error case: status, the API's error JSON shape, and the code."""

import anthropic
import httpx
import openai
import pytest

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
CHAT_BODY = {"model": "demo-echo", "messages": [{"role": "user", "content": "hi"}]}
MSG_BODY = {"model": "demo-echo", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def check_openai(r: httpx.Response, status: int, code: str, source="gateway") -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    err = body["error"]
    assert set(body) == {"error"}
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str)
    assert err["code"] == code
    assert r.headers["x-moat-error-source"] == source
    return err


def check_anthropic(r: httpx.Response, status: int, code: str, source="gateway") -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error"
    err = body["error"]
    assert isinstance(err["type"], str) and isinstance(err["message"], str)
    assert err["code"] == code
    assert r.headers["x-moat-error-source"] == source
    return err


def post(gw, path, key=None, json=None, content=None, headers=None):
    h = dict(headers or {})
    if key:
        h["authorization"] = f"Bearer {key}"
    return httpx.post(gw.url + path, json=json, content=content, headers=h, timeout=30)


def both(gw, key, status, code, oai_body=CHAT_BODY, ant_body=MSG_BODY, **kw):
    e1 = check_openai(post(gw, CHAT, key, json=oai_body, **kw), status, code)
    e2 = check_anthropic(post(gw, MESSAGES, key, json=ant_body, **kw), status, code)
    return e1, e2


def test_bad_json(gw, key):
    check_openai(post(gw, CHAT, key, content=b'{"model": '), 400, "invalid_json")
    check_anthropic(post(gw, MESSAGES, key, content=b"not json"), 400, "invalid_json")
    check_openai(post(gw, CHAT, key, content=b"[1,2]"), 400, "invalid_request")
    check_openai(post(gw, CHAT, key, json={"messages": []}), 400, "invalid_request")
    check_anthropic(post(gw, MESSAGES, key, json={"model": "m", "messages": []}), 400, "invalid_request")
    row = gw.wait_audit("error = 'invalid_json' AND api = 'anthropic.messages'")[0]
    assert row["status"] == 400 and row["request_body"] == "not json"


def test_body_too_large(gw, key):
    big = {"model": "demo-echo", "max_tokens": 1, "messages": [{"role": "user", "content": "x" * 70_000}]}
    check_openai(post(gw, CHAT, key, json=big), 413, "body_too_large")
    check_anthropic(post(gw, MESSAGES, key, json=big), 413, "body_too_large")
    # Chunked upload without Content-Length is capped as well.
    r = httpx.post(
        gw.url + CHAT,
        content=iter([b'{"model":"m","x":"', b"y" * 70_000, b'"}']),
        headers={"authorization": f"Bearer {key}"},
    )
    check_openai(r, 413, "body_too_large")


def test_missing_and_unknown_key(gw):
    both(gw, None, 401, "missing_api_key")
    both(gw, "moat_key_AAAAAAAAAAAA_" + "B" * 43, 401, "invalid_api_key")
    both(gw, "sk-garbage", 401, "invalid_api_key")
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=gw.url + "/v1", api_key="nope", max_retries=0).models.list()
    assert e.value.status_code == 401 and e.value.code == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gw.url, api_key="nope", max_retries=0).messages.create(**MSG_BODY)
    rows = gw.wait_audit("error = 'missing_api_key'", n=2)
    assert all(r["account_id"] is None and r["status"] == 401 for r in rows)


def test_revoked_and_expired_keys_have_distinct_codes(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    key_id, revoked = gw.create_key(acct)
    gw.admin("POST", f"/admin/v1/keys/{key_id}/revoke").raise_for_status()
    both(gw, revoked, 401, "key_revoked")
    _, expired = gw.create_key(acct, "--expires", "2020-01-01T00:00:00Z")
    both(gw, expired, 401, "key_expired")


def test_disabled_account(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    _, key = gw.create_key(acct)
    assert post(gw, CHAT, key, json=CHAT_BODY).status_code == 200
    assert gw.admin("POST", f"/admin/v1/accounts/{acct}/disable").json()["disabled"] is True
    both(gw, key, 403, "account_disabled")
    gw.admin("POST", f"/admin/v1/accounts/{acct}/enable").raise_for_status()
    assert post(gw, CHAT, key, json=CHAT_BODY).status_code == 200


def test_ip_allowlist(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    _, outside = gw.create_key(acct, "--ip-allow", "10.0.0.0/8,192.168.0.0/16")
    both(gw, outside, 403, "ip_not_allowed")
    _, inside = gw.create_key(acct, "--ip-allow", "10.0.0.0/8,127.0.0.1/32")
    assert post(gw, CHAT, inside, json=CHAT_BODY).status_code == 200


def test_model_scope(gw, uniq):
    key = gw.account_with_key(uniq(), "--models", "demo-echo,other")
    assert post(gw, CHAT, key, json=CHAT_BODY).status_code == 200
    e1, _ = both(gw, key, 403, "model_not_allowed", {**CHAT_BODY, "model": "gpt-x"}, {**MSG_BODY, "model": "gpt-x"})
    assert "gpt-x" in e1["message"]
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
            model="forbidden", messages=[{"role": "user", "content": "x"}]
        )


def test_logprobs_scope(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    _, plain = gw.create_key(acct)
    _, allowed = gw.create_key(acct, "--allow-logprobs")
    for body in ({**CHAT_BODY, "logprobs": True}, {**CHAT_BODY, "top_logprobs": 3, "logprobs": True}):
        check_openai(post(gw, CHAT, plain, json=body), 403, "logprobs_not_allowed")
    r = post(gw, "/v1/completions", plain, json={"model": "m", "prompt": "x", "logprobs": 2})
    check_openai(r, 403, "logprobs_not_allowed")
    assert post(gw, CHAT, plain, json={**CHAT_BODY, "logprobs": False}).status_code == 200
    assert post(gw, CHAT, allowed, json={**CHAT_BODY, "logprobs": True}).status_code == 200


def test_rate_limit_429_with_retry_after(gw, uniq):
    key = gw.account_with_key(uniq(), account_flags=("--rpm", "2"))
    assert post(gw, CHAT, key, json=CHAT_BODY).status_code == 200
    assert post(gw, MESSAGES, key, json=MSG_BODY).status_code == 200
    r = post(gw, CHAT, key, json=CHAT_BODY)
    err = check_openai(r, 429, "rate_limit_exceeded")
    assert "requests_per_minute" in err["message"]
    assert int(r.headers["retry-after"]) >= 1
    r = post(gw, MESSAGES, key, json=MSG_BODY)
    check_anthropic(r, 429, "rate_limit_exceeded")
    assert int(r.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0).chat.completions.create(**CHAT_BODY)


def test_request_larger_than_token_limit_is_400(gw, uniq):
    key = gw.account_with_key(uniq(), account_flags=("--tpm", "100"))
    check_openai(post(gw, CHAT, key, json={**CHAT_BODY, "max_tokens": 5000}), 400, "request_exceeds_limit")


def test_upstream_error_passed_through(gw, key):
    for status in (400, 500, 503):
        r = post(gw, CHAT, key, json={**CHAT_BODY, "model": f"error-{status}"})
        e1 = check_openai(r, status, "upstream_error", source="upstream")
        assert e1["type"] == "upstream_error" and e1["upstream_status"] == status
        assert "requested error" in e1["message"]
        r = post(gw, MESSAGES, key, json={**MSG_BODY, "model": f"error-{status}"})
        e2 = check_anthropic(r, status, "upstream_error", source="upstream")
        assert e2["type"] == "upstream_error"
    with pytest.raises(openai.InternalServerError) as e:
        openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
            model="error-500", messages=[]
        )
    assert e.value.status_code == 500


def test_upstream_timeout_504(gw, key):
    # [upstream] timeout = 3s in the test config.
    e1 = check_openai(post(gw, CHAT, key, json={**CHAT_BODY, "model": "slow-10000"}), 504, "upstream_timeout")
    assert e1["type"] != "upstream_error"
    row = gw.wait_audit("error = 'upstream_timeout'")[0]
    assert row["status"] == 504


def test_upstream_unreachable_502(make_gateway):
    from conftest import free_port

    g = make_gateway(upstream=f"http://127.0.0.1:{free_port()}/v1")
    key = g.account_with_key("acct")
    both(g, key, 502, "upstream_unreachable")
    check_openai(httpx.get(g.url + "/v1/models", headers={"authorization": f"Bearer {key}"}), 502, "upstream_unreachable")


def test_upstream_stream_breaks_midway(gw, key):
    body = {"model": "abort-40", "stream": True, "messages": [{"role": "user", "content": "abort me"}]}
    with httpx.stream("POST", gw.url + CHAT, json=body, headers={"authorization": f"Bearer {key}"}) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data:")]
    assert '"error"' in lines[-1]  # the stream ends with an error event in the API's format
    row = gw.wait_audit("request_body LIKE ?", ("%abort me%",))[0]
    assert row["error"] == "upstream_unreachable" and row["status"] == 200
    assert row["output_tokens"] > 0  # estimated from what was relayed


def test_unknown_route_and_method(gw, key):
    check_openai(httpx.get(gw.url + "/v1/nothing"), 404, "not_found")
    check_openai(httpx.get(gw.url + CHAT), 405, "method_not_allowed")
    check_anthropic(httpx.get(gw.url + MESSAGES), 405, "method_not_allowed")


def test_garbage_never_crashes(gw, key):
    payloads = [b"", b"\x00\xff\xfe", b"{}", b'{"model": null}', b'{"model": "m", "stream": "yes"}',
                b'{"model": "m", "max_tokens": -1}', b'{"model": "m", "messages": 5, "stream": true}',
                b'{"model":"' + b"a" * 1000 + b'"}', b"[" * 10000, b'{"model":"m"}' * 3]
    for p in payloads:
        for path in (CHAT, MESSAGES, "/v1/completions"):
            r = post(gw, path, key, content=p, headers={"content-type": "application/json"})
            assert r.status_code in (200, 400), (p[:40], path, r.status_code, r.text)
    assert httpx.get(gw.url + "/healthz").status_code == 200
