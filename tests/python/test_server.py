"""TLS serving, https upstreams, /metrics, /healthz, config errors, the demo command."""

import os
import re
import ssl
import subprocess

import anthropic
import httpx
import openai
import pytest

from conftest import Gateway, free_port, moat_bin, stop, wait_http


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A throwaway CA and a localhost certificate signed by it: (ca.pem, cert.pem, key.pem)."""
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", "ca.key", "-out", "ca.pem",
            "-subj", "/CN=moat test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "cert.pem", "-days", "1", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


def test_tls_termination_and_https_upstream(make_gateway, cert):
    ca, crt, key_pem = cert
    front = make_gateway({"server.tls": {"cert": str(crt), "key": str(key_pem)}}, name="tls")
    key = front.account_with_key("acct")
    ctx = ssl.create_default_context(cafile=str(ca))
    c = openai.OpenAI(base_url=front.url + "/v1", api_key=key, max_retries=0,
                      http_client=openai.DefaultHttpxClient(verify=ctx))
    r = c.chat.completions.create(model="demo-echo", messages=[{"role": "user", "content": "over tls"}])
    assert "over tls" in r.choices[0].message.content
    a = anthropic.Anthropic(base_url=front.url, api_key=key, max_retries=0, http_client=anthropic.DefaultHttpxClient(verify=ctx))
    assert a.messages.create(model="demo-echo", max_tokens=20, messages=[{"role": "user", "content": "x"}]).content
    # Plain HTTP to the TLS port fails.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{front.port}/healthz", timeout=2)

    # A second gateway whose upstream is the TLS one: verified with [upstream] ca_file,
    # authenticated with [upstream] api_key from MOAT_UPSTREAM_API_KEY.
    back = make_gateway(
        {"upstream": {"ca_file": str(ca)}}, upstream=front.url + "/v1",
        env={"MOAT_UPSTREAM_API_KEY": key}, name="chain",
    )
    k2 = back.account_with_key("acct2")
    r = openai.OpenAI(base_url=back.url + "/v1", api_key=k2, max_retries=0).chat.completions.create(
        model="demo-echo", messages=[{"role": "user", "content": "chained"}], stream=True
    )
    assert "chained" in "".join(ch.choices[0].delta.content or "" for ch in r if ch.choices)
    # Without the CA the upstream certificate is refused: 502.
    untrusting = make_gateway(upstream=front.url + "/v1", env={"MOAT_UPSTREAM_API_KEY": key}, name="untrusting")
    k3 = untrusting.account_with_key("acct3")
    r = httpx.post(untrusting.url + "/v1/chat/completions", headers={"authorization": f"Bearer {k3}"},
                   json={"model": "m", "messages": []})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unreachable"


def test_healthz_and_metrics(gw, key):
    h = httpx.get(gw.url + "/healthz").json()
    assert h["status"] == "ok" and h["degraded"] == [], h
    assert h["checks"]["store"] == {"ok": True, "backend": "sqlite", "stale_keys_served": 0}
    assert h["checks"]["limiter"] == {"backend": "memory", "ok": True}
    assert "bus" not in h["checks"]  # one process: no [bus]
    assert httpx.get(gw.admin_url + "/healthz").status_code == 200
    httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
               json={"model": "demo-echo", "messages": [{"role": "user", "content": "metrics"}]})
    httpx.post(gw.url + "/v1/chat/completions", json={"model": "m"})
    m = httpx.get(gw.admin_url + "/metrics").text  # no admin token needed for /metrics
    assert re.search(r'moat_requests_total\{api="openai.chat",status="200"\} \d+', m)
    assert re.search(r'moat_requests_total\{api="openai.chat",status="401"\} \d+', m)
    assert 'moat_request_duration_seconds_bucket{api="openai.chat"' in m
    assert 'moat_upstream_duration_seconds_bucket{api="openai.chat"' in m
    assert re.search(r'moat_tokens_total\{api="openai.chat",direction="output"\} \d+', m)
    assert re.search(r'moat_rejections_total\{reason="missing_api_key"\} \d+', m)
    assert "moat_audit_records_total" in m
    assert httpx.get(gw.url + "/metrics").status_code == 404  # not on the public listener by default


def run_moat(*args, env=None):
    return subprocess.run([moat_bin(), *args], capture_output=True, text=True, timeout=60, env=env)


def test_config_unknown_key_reports_file_and_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[upstream]\nbase_url = "demo"\n\n[server]\nlisten = "127.0.0.1:1"\nmax_body_byte = 5\n')
    p = run_moat("--config", str(cfg), "serve")
    assert p.returncode != 0
    assert f"{cfg}:6:1: " in p.stderr and "unknown field `max_body_byte`" in p.stderr, p.stderr
    cfg.write_text('[upstream]\nbase_url = "demo"\ntimeout = "fast"\n')
    p = run_moat("--config", str(cfg), "check-config")
    assert p.returncode != 0 and f"{cfg}:3:11: upstream.timeout" in p.stderr, p.stderr


def test_admin_token_from_env(tmp_path, upstream_url):
    g = Gateway(tmp_path, upstream_url, env={"MOAT_ADMIN_TOKEN": "from-env-0123456789abcdef"})
    g.sections["server"].pop("admin_token")
    from conftest import render_toml
    g.config.write_text(render_toml(g.sections))
    g.start()
    try:
        assert g.admin("GET", "/admin/v1/accounts", token="from-env-0123456789abcdef").status_code == 200
        assert g.admin("GET", "/admin/v1/accounts").status_code == 401
    finally:
        g.stop()


def test_demo_command(tmp_path):
    port = free_port()
    log = tmp_path / "demo.log"
    proc = subprocess.Popen(
        [moat_bin(), "demo", "--listen", f"127.0.0.1:{port}", "--demo-db", str(tmp_path / "demo.db")],
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
        text = log.read_text()
        assert "NOT a model" in text
        key = re.search(r"API key \(shown once\): (moat_\S+)", text).group(1)
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        r = c.chat.completions.create(model="demo-echo", messages=[{"role": "user", "content": "demo hi"}])
        assert "demo hi" in r.choices[0].message.content
    finally:
        stop(proc)
    assert (tmp_path / "demo.db").exists()
    p = run_moat("--db", str(tmp_path / "demo.db"), "audit", "verify")
    assert p.returncode == 0 and p.stdout.startswith("OK: ")
