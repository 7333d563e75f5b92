"""Accounts and keys: CLI, admin API, revocation, rotation grace, expiry."""

import json
import time

import httpx

from conftest import ADMIN_TOKEN

CHAT_BODY = {"model": "demo-echo", "messages": [{"role": "user", "content": "hi"}]}


def call(gw, key) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=CHAT_BODY, headers={"authorization": f"Bearer {key}"})


def code(r: httpx.Response):
    return r.json()["error"]["code"] if r.status_code != 200 else None


def eventually(fn, expect, timeout=5.0):
    """Polls fn() until it returns expect (bounded), e.g. across the auth cache TTL."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == expect or time.monotonic() > deadline:
            assert got == expect
            return
        time.sleep(0.05)


def test_cli_accounts(gw, uniq):
    acct = uniq()
    out = gw.create_account(acct, "--tier", "pro", "--rpm", "7", "--country", "FR", "--verified")
    assert out["id"] == acct and out["tier"] == "pro" and out["limits"]["requests_per_minute"] == 7
    listed = json.loads(gw.cli("accounts", "list", "--json").stdout)
    assert acct in [a["id"] for a in listed]
    gw.create_key(acct, "--models", "a,b")
    shown = json.loads(gw.cli("accounts", "show", acct, "--json").stdout)
    assert shown["account"]["country"] == "FR" and shown["keys"][0]["models"] == ["a", "b"]
    text = gw.cli("accounts", "show", acct).stdout
    assert acct in text and "models=a,b" in text
    assert gw.cli("accounts", "show", "nope", check=False).returncode != 0
    assert gw.cli("accounts", "create", "--id", acct, check=False).returncode != 0  # duplicate


def test_cli_key_secret_printed_once_and_never_listed(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    p = gw.cli("keys", "create", "--account", acct, "--expires", "30d", "--ip-allow", "127.0.0.1")
    secret = p.stdout.strip().splitlines()[-1]
    assert secret.startswith("moat_key_")
    assert call(gw, secret).status_code == 200
    listing = gw.cli("keys", "list", "--account", acct).stdout + gw.cli("keys", "list", "--json").stdout
    assert secret not in listing
    keys = json.loads(gw.cli("keys", "list", "--account", acct, "--json").stdout)
    assert keys[0]["ip_allow"] == ["127.0.0.1/32"] and keys[0]["expires_at"] is not None
    assert secret not in gw.log.read_text()  # never logged


def test_cli_revoke_takes_effect_within_cache_ttl(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    key_id, key = gw.create_key(acct)
    assert call(gw, key).status_code == 200
    gw.cli("keys", "revoke", key_id)
    eventually(lambda: code(call(gw, key)), "key_revoked")  # [auth] cache_ttl = 300ms


def test_cli_rotate_with_grace(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    old_id, old = gw.create_key(acct, "--models", "demo-echo")
    out = json.loads(gw.cli("keys", "rotate", old_id, "--grace", "1h", "--json").stdout)
    new = out["secret"]
    assert out["key"]["models"] == ["demo-echo"]  # same scopes
    assert call(gw, old).status_code == 200  # still inside the grace period
    assert call(gw, new).status_code == 200
    keys = {k["id"]: k for k in json.loads(gw.cli("keys", "list", "--account", acct, "--json").stdout)}
    assert keys[old_id]["replaced_by"] == out["key"]["id"] and keys[old_id]["expires_at"]


def test_rotate_with_zero_grace_expires_old_key(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    old_id, old = gw.create_key(acct)
    assert call(gw, old).status_code == 200  # now cached
    r = gw.admin("POST", f"/admin/v1/keys/{old_id}/rotate", json={"grace": "0s"})
    assert r.status_code == 201, r.text
    assert code(call(gw, old)) == "key_expired"  # admin rotation invalidates the cache at once
    assert call(gw, r.json()["secret"]).status_code == 200
    r = gw.admin("POST", f"/admin/v1/keys/{old_id}/rotate", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_key_expiry(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    _, key = gw.create_key(acct, "--expires", "3s")
    assert call(gw, key).status_code == 200
    eventually(lambda: code(call(gw, key)), "key_expired", timeout=10)


def test_admin_api_requires_token(gw):
    assert gw.admin("GET", "/admin/v1/accounts", token=None).status_code == 401
    r = gw.admin("GET", "/admin/v1/accounts", token=ADMIN_TOKEN + "x")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert gw.admin("GET", "/admin/v1/accounts", token=ADMIN_TOKEN[:-1]).status_code == 401
    assert gw.admin("GET", "/admin/v1/accounts").status_code == 200
    # The admin API is not on the public listener.
    assert httpx.get(gw.url + "/admin/v1/accounts").status_code == 404


def test_admin_api_accounts_and_keys(gw, uniq):
    acct = uniq()
    r = gw.admin("POST", "/admin/v1/accounts", json={"id": acct, "tier": "free", "requests_per_minute": 30})
    assert r.status_code == 201 and r.json()["limits"]["requests_per_minute"] == 30
    assert gw.admin("POST", "/admin/v1/accounts", json={"id": acct}).status_code == 409
    assert gw.admin("POST", "/admin/v1/accounts", json={"idd": acct}).status_code == 400
    assert gw.admin("GET", f"/admin/v1/accounts/{acct}").json()["tier"] == "free"
    assert gw.admin("GET", "/admin/v1/accounts/nope").status_code == 404
    assert acct in [a["id"] for a in gw.admin("GET", "/admin/v1/accounts").json()["accounts"]]

    r = gw.admin("POST", "/admin/v1/keys", json={"account": acct, "models": ["demo-echo"], "ip_allow": ["127.0.0.0/8"]})
    assert r.status_code == 201, r.text
    key_id, secret = r.json()["key"]["id"], r.json()["secret"]
    assert call(gw, secret).status_code == 200
    assert gw.admin("POST", "/admin/v1/keys", json={"account": "nope"}).status_code == 404
    assert gw.admin("POST", "/admin/v1/keys", json={"account": acct, "ip_allow": ["bad"]}).status_code == 400
    keys = gw.admin("GET", "/admin/v1/keys", params={"account": acct}).json()["keys"]
    assert [k["id"] for k in keys] == [key_id] and "secret" not in keys[0]
    assert gw.admin("GET", f"/admin/v1/keys/{key_id}").json()["status"] == "active"

    r = gw.admin("POST", f"/admin/v1/keys/{key_id}/revoke")
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert code(call(gw, secret)) == "key_revoked"  # cache invalidated at once
    assert gw.admin("POST", "/admin/v1/keys/key_nope/revoke").status_code == 404


def test_account_limits_update(gw, uniq):
    acct = uniq()
    gw.create_account(acct)
    r = gw.admin("PUT", f"/admin/v1/accounts/{acct}/limits", json={"requests_per_minute": 1})
    assert r.status_code == 200 and r.json()["limits"]["requests_per_minute"] == 1
    _, key = gw.create_key(acct)
    assert call(gw, key).status_code == 200
    assert code(call(gw, key)) == "rate_limit_exceeded"
    out = gw.cli("accounts", "set-limits", acct, "--tpd", "1000").stdout
    assert "tpd=1000" in out and "rpm=default" in out
    assert gw.admin("PUT", "/admin/v1/accounts/nope/limits", json={}).status_code == 404


def test_admin_audit_verify(gw):
    r = gw.admin("GET", "/admin/v1/audit/verify")
    assert r.status_code == 200 and r.json()["ok"] is True


def test_forwarded_for_only_from_trusted_proxies(make_gateway):
    trusting = make_gateway({"server": {"trusted_proxies": ["127.0.0.1/32"]}}, name="trusting")
    acct_key = trusting.account_with_key("acct", "--ip-allow", "203.0.113.0/24")
    xff = {"authorization": f"Bearer {acct_key}", "x-forwarded-for": "198.51.100.1, 203.0.113.9"}
    r = httpx.post(trusting.url + "/v1/chat/completions", json=CHAT_BODY, headers=xff)
    assert r.status_code == 200, r.text
    row = trusting.wait_audit("status = 200")[0]
    assert row["ip"] == "203.0.113.9"
    # A gateway that trusts no proxy ignores the header: the peer 127.0.0.1 is not allowed.
    plain = make_gateway(name="plain")
    key = plain.account_with_key("acct", "--ip-allow", "203.0.113.0/24")
    r = httpx.post(plain.url + "/v1/chat/completions", json=CHAT_BODY,
                   headers={"authorization": f"Bearer {key}", "x-forwarded-for": "203.0.113.9"})
    assert r.status_code == 403 and code(r) == "ip_not_allowed"
