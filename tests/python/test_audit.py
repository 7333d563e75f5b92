"""Audit log: client disconnects, tamper detection, export to the traffic format."""

import io
import json
import sqlite3
import subprocess

import httpx
import pytest
import openai
import zstandard

from conftest import moat_bin


def test_client_disconnect_mid_stream_leaves_audit_record(gw, key):
    body = {"model": "long-3000", "stream": True, "messages": [{"role": "user", "content": "disconnect me"}]}
    with httpx.Client(timeout=30) as client:
        with client.stream(
            "POST", gw.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        ) as r:
            assert r.status_code == 200
            got = 0
            for line in r.iter_lines():
                if line.startswith("data:"):
                    got += 1
                if got >= 5:
                    break
        # leaving the block closes the connection mid-stream (3000 words take ~6 s)
    row = gw.wait_audit("request_body LIKE ?", ("%disconnect me%",), timeout=15)[0]
    assert row["error"] == "client_disconnected"
    assert row["status"] == 200 and row["stream"] == 1
    assert 0 < row["output_tokens"] < 3000  # estimated from what was relayed
    assert row["input_tokens"] > 0
    assert row["response_text"].startswith("w0 w1")


def test_client_disconnect_anthropic_keeps_known_usage(gw, key):
    body = {"model": "long-3000", "max_tokens": 5000, "stream": True,
            "messages": [{"role": "user", "content": "anthropic disconnect"}]}
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", gw.url + "/v1/messages", json=body, headers={"x-api-key": key}) as r:
            for i, _ in enumerate(r.iter_lines()):
                if i > 20:
                    break
    row = gw.wait_audit("request_body LIKE ?", ("%anthropic disconnect%",), timeout=15)[0]
    assert row["error"] == "client_disconnected"
    assert row["input_tokens"] > 0  # reported in message_start


def test_audit_verify_ok_then_tamper_detected(make_gateway):
    g = make_gateway()
    key = g.account_with_key("acct")
    c = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0)
    for i in range(5):
        c.chat.completions.create(model="demo-echo", messages=[{"role": "user", "content": f"n{i}"}])
    rows = g.wait_audit("1=1", n=5)
    p = g.cli("audit", "verify")
    assert p.stdout.startswith("OK: ")
    victim = rows[2]["seq"]
    con = sqlite3.connect(g.db, timeout=10)
    con.execute("UPDATE audit_log SET output_tokens = output_tokens + 1 WHERE seq = ?", (victim,))
    con.commit()
    con.close()
    p = g.cli("audit", "verify", check=False)
    assert p.returncode != 0
    assert f"seq {victim}" in p.stderr, p.stderr
    r = g.admin("GET", "/admin/v1/audit/verify")
    assert r.status_code == 409 and r.json()["broken"]["seq"] == victim


def read_jsonl(path) -> list[dict]:
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def test_export_traffic_format(make_gateway, tmp_path):
    g = make_gateway()
    key = g.account_with_key("acct_export")
    oc = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0)
    oc.chat.completions.create(model="demo-echo", messages=[{"role": "user", "content": "export me"}], max_tokens=50)
    list(oc.completions.create(model="demo-echo", prompt="export stream", stream=True))
    httpx.post(g.url + "/v1/messages", headers={"x-api-key": key},
               json={"model": "demo-echo", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]})
    httpx.post(g.url + "/v1/chat/completions", json={"model": "m"})  # unauthenticated: not exportable
    g.wait_audit("1=1", n=4)

    out = tmp_path / "traffic.jsonl.zst"
    g.cli("audit", "export", "--since", "1h", "--out", str(out), "--accounts-out", str(tmp_path / "accounts.jsonl"))
    lines = read_jsonl(out)
    assert [l["api"] for l in lines] == ["openai.chat", "openai.completions", "anthropic.messages"]
    first = lines[0]
    assert first["account"] == "acct_export" and first["key"].startswith("key_")
    assert first["ip"] == "127.0.0.1" and first["user_agent"].startswith("OpenAI/Python")
    assert first["ts"].endswith("Z")
    assert first["request"] == {"model": "demo-echo", "messages": [{"role": "user", "content": "export me"}], "max_tokens": 50}
    resp = first["response"]
    assert resp["status"] == 200 and resp["finish_reason"] == "stop"
    assert resp["usage"]["input_tokens"] > 0 and resp["usage"]["output_tokens"] > 0
    assert lines[1]["request"]["stream"] is True and lines[1]["response"]["usage"]["output_tokens"] > 0
    accounts = read_jsonl(tmp_path / "accounts.jsonl")
    assert [a["account"] for a in accounts] == ["acct_export"]

    # time window: nothing in the future
    empty = tmp_path / "empty.jsonl"
    g.cli("audit", "export", "--since", "2099-01-01T00:00:00Z", "--out", str(empty))
    assert read_jsonl(empty) == []

    # and `moat replay` reads it back: one decision per line
    outdir = tmp_path / "replay"
    p = subprocess.run(
        [moat_bin(), "replay", "--traffic", str(out), "--accounts", str(tmp_path / "accounts.jsonl"), "--out", str(outdir)],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    decisions = read_jsonl(outdir / "decisions.jsonl")
    assert len(decisions) == 3 and all("action" in d for d in decisions)


def test_client_gone_before_answer_is_recorded_as_499(gw, key):
    body = {"model": "slow-1500", "messages": [{"role": "user", "content": "impatient client"}]}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=0.3)
    row = gw.wait_audit("request_body LIKE ?", ("%impatient client%",), timeout=15)[0]
    assert row["status"] == 499 and row["error"] == "client_disconnected"


def test_shutdown_flushes_every_audit_record(make_gateway):
    g = make_gateway({"audit": {"flush_interval": "5s", "batch": 1000}})
    key = g.account_with_key("acct")
    with httpx.Client() as c:
        for i in range(25):
            r = c.post(g.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "demo-echo", "messages": [{"role": "user", "content": f"flush {i}"}]})
            assert r.status_code == 200
    g.stop()  # SIGTERM: graceful shutdown writes the pending batch
    assert g.proc.returncode == 0, g.log.read_text()
    assert len(g.audit_rows("request_body LIKE '%flush %'")) == 25
    assert g.cli("audit", "verify").returncode == 0
