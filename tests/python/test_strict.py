"""Strict input and a misbehaving upstream (issue #24): hostile request bodies are refused
with 400/413 in the API's error shape before anything is forwarded, a body over the cap gets
a 413 the client can read, an upstream answer that is not JSON is a 502, and every refusal is
audited. Also the small CLI/log fixes: no ANSI codes in a redirected log, `check-config`
prints the resolved settings, `mark detect` needs no admin token."""

import json
import socket
import subprocess
import tomllib

import httpx
import pytest

from conftest import moat_bin, render_toml
from test_errors import CHAT, CHAT_BODY, MESSAGES, MSG_BODY, check_anthropic, check_openai, post

BOTH = ((CHAT, check_openai), (MESSAGES, check_anthropic))


def test_invalid_utf8_is_400_in_each_api_shape(gw, key):
    for path, check in BOTH:
        body = (json.dumps(CHAT_BODY if path == CHAT else MSG_BODY)[:-1] + ', "x": "bad \xff"}').encode("latin-1")
        err = check(post(gw, path, key, content=body, headers={"content-type": "application/json"}), 400, "invalid_json")
        assert "UTF-8" in err["message"]
        # Inside an ignored field, a message, a key: all refused.
        inner = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"caf\xe9"}]}'
        check(post(gw, path, key, content=inner), 400, "invalid_json")
    rows = gw.wait_audit("error = 'invalid_json' AND request_body LIKE ?", ("%bad %",), n=2)
    assert {r["api"] for r in rows} >= {"openai.chat", "anthropic.messages"}
    assert all(r["status"] == 400 for r in rows)


def test_messages_must_be_an_array_of_objects(gw, key):
    for path, check in BOTH:
        base = CHAT_BODY if path == CHAT else MSG_BODY
        for bad in ("hello", 5, {"role": "user"}, ["just a string"], None):
            check(post(gw, path, key, json={**base, "messages": bad}), 400, "invalid_request")
        missing = {k: v for k, v in base.items() if k != "messages"}
        err = check(post(gw, path, key, json=missing), 400, "invalid_request")
        assert "messages" in err["message"]
        # Fields the detection engine reads, of the wrong type: refused, not scored as empty.
        for field, bad in (("tools", "x"), ("metadata", 3), ("user", ["u"]), ("system", 7)):
            check(post(gw, path, key, json={**base, field: bad}), 400, "invalid_request")
        check(post(gw, path, key, json={**base, "messages": [{"role": 7, "content": "hi"}]}), 400, "invalid_request")
        # The valid shapes still pass: content parts, null content, Anthropic system blocks.
        ok = {**base, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                                   {"role": "assistant", "content": None},
                                   {"role": "user", "content": "again"}]}
        if path == MESSAGES:
            ok["system"] = [{"type": "text", "text": "be brief"}]
        r = post(gw, path, key, json=ok)
        assert r.status_code == 200, r.text
    check_openai(post(gw, "/v1/completions", key, json={"model": "m", "prompt": {"a": 1}}), 400, "invalid_request")
    assert post(gw, "/v1/completions", key, json={"model": "m", "prompt": ["a", "b"]}).status_code == 200
    rows = gw.wait_audit("error = 'invalid_request' AND request_body LIKE ?", ('%"hello"%',), n=2)
    assert all(r["status"] == 400 and r["account_id"] for r in rows)


def test_deep_nesting_is_refused_before_forwarding(make_gateway):
    g = make_gateway({"server": {"max_body_bytes": 1 << 20}})
    key = g.account_with_key("deep")
    deep = "[" * 100_000 + "]" * 100_000
    for path, check in BOTH:
        base = CHAT_BODY if path == CHAT else MSG_BODY
        # Deep in an unknown field, and deep inside a message.
        for body in (json.dumps(base)[:-1] + f', "extra": {deep}}}',
                     json.dumps({**base, "messages": []})[:-3] + f'[{{"role":"user","content":{deep}}}]}}'):
            err = check(post(g, path, key, content=body.encode()), 400, "invalid_request")
            assert "levels deep" in err["message"], err
        # 100 levels pass the check (the upstream then answers as it does).
        ok = json.dumps(base)[:-1] + ', "extra": ' + "[" * 99 + "]" * 99 + "}"
        assert post(g, path, key, content=ok.encode()).status_code == 200
    rows = g.wait_audit("error = 'invalid_request'", n=4)
    assert all(r["status"] == 400 for r in rows)
    assert httpx.get(g.url + "/healthz").json()["status"] == "ok"


def test_body_over_the_cap_gets_a_readable_413(gw, key):
    # 64 MiB against a 64 KiB cap: the client sends it all and reads the 413 (the gateway
    # drains the rest instead of resetting the connection under the client).
    big = b'{"model":"m","x":"' + b"y" * (64 << 20) + b'"}'
    for path, check in BOTH:
        r = httpx.post(gw.url + path, content=big, headers={"authorization": f"Bearer {key}"}, timeout=120)
        check(r, 413, "body_too_large")
        assert r.headers["connection"] == "close"
    # Chunked (no Content-Length): cut at the cap while reading, the rest drained as well.
    def chunks():
        for _ in range(64):
            yield b"z" * (1 << 20)
    r = httpx.post(gw.url + CHAT, content=chunks(), headers={"authorization": f"Bearer {key}"}, timeout=120)
    check_openai(r, 413, "body_too_large")
    # A client that waits for "100 Continue" gets the 413 instead and need not send anything.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {64 << 20}\r\n"
                  "Expect: 100-continue\r\n\r\n".encode())
        head = s.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head
    rows = gw.wait_audit("error = 'body_too_large' AND account_id IS NOT NULL", n=4)
    assert all(r["status"] == 413 for r in rows)


def test_upstream_answer_that_is_not_json_is_502(gw, key):
    for path, check in BOTH:
        base = CHAT_BODY if path == CHAT else MSG_BODY
        err = check(post(gw, path, key, json={**base, "model": "garbage"}), 502, "upstream_bad_response")
        assert err["type"] != "upstream_error"
        # Streamed: the events before the bad one are relayed, then the API's error event.
        with httpx.stream("POST", gw.url + path, json={**base, "model": "garbage", "stream": True,
                                                        "messages": [{"role": "user", "content": "garbage stream"}]},
                          headers={"authorization": f"Bearer {key}"}, timeout=30) as r:
            assert r.status_code == 200
            data = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
        assert "<html>" not in "".join(data)
        last = json.loads(data[-1])
        assert last["error"]["code"] == "upstream_bad_response", data
        if path == MESSAGES:
            assert last["type"] == "error"
    rows = gw.wait_audit("error = 'upstream_bad_response'", n=4)
    assert {r["status"] for r in rows} == {502, 200}


def test_log_to_a_file_has_no_colour_codes(gw, key):
    post(gw, CHAT, key, json={**CHAT_BODY, "model": "slow-10000"})  # a warning line at least
    text = gw.log.read_text()
    assert "WARN" in text or "INFO" in text
    assert "\x1b[" not in text


def test_check_config_prints_resolved_settings(make_gateway):
    g = make_gateway(start=False)
    r = g.cli("check-config")
    assert "Config {" not in r.stdout and "Secret" not in r.stdout
    assert "test-admin-token" not in r.stdout
    resolved = tomllib.loads(r.stdout)
    assert resolved["server"]["max_body_bytes"] == 65536
    assert resolved["upstream"]["timeout"] == "3s"
    assert resolved["upstream"]["stream_idle_timeout"] == "5m"  # a default, filled in
    assert resolved["store"]["path"] == str(g.db)
    assert resolved["watermark"]["enabled"] is True
    assert "# admin_token: set" in r.stdout


def test_mark_detect_needs_no_admin_token(make_gateway):
    g = make_gateway(start=False)
    g.sections["server"].pop("admin_token")
    g.config.write_text(render_toml(g.sections))
    env = {k: v for k, v in g.env.items() if k != "MOAT_ADMIN_TOKEN"}
    keys = g.dir / "wm.keys"
    keys.write_text("k1 " + "ab" * 32 + "\n")
    texts = g.dir / "t.jsonl"
    texts.write_text(json.dumps("You do not need a big server for this.") + "\n")
    p = subprocess.run([moat_bin(), "--config", str(g.config), "mark", "detect", "--jsonl", "--key-file", str(keys),
                        str(texts)], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "verdict" in p.stdout
    # Without --key-file: the configured key file (next to the database) is read; missing here.
    p = subprocess.run([moat_bin(), "--config", str(g.config), "mark", "detect", str(texts)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert "admin" not in p.stderr, p.stderr
    # serve still requires it.
    p = subprocess.run([moat_bin(), "--config", str(g.config), "check-config"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode != 0 and "admin token" in p.stderr


def test_demo_help_names_the_model():
    p = subprocess.run([moat_bin(), "demo", "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    first = p.stdout.splitlines()[0]
    assert "DEMO upstream (not a model)" not in first and "SmolLM2" in p.stdout, p.stdout
