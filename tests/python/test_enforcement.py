"""The enforcement ladder in the live gateway, driven with the official SDKs.

A scripted extraction campaign (three accounts, two keys each, a chain-of-thought-eliciting
system prompt over a broad question set, both APIs, streamed and not, against the demo
upstream's reasoning `think-…` models) runs while a benign customer holds a conversation. The
campaign is throttled, then degraded (answers without any reasoning, streams included), then
blocked (persisted, every key of the account); the customer is never restricted. The same
traffic in shadow mode restricts nothing and logs what would have been done. The audit log
still verifies, its export holds only exchanges, and `moat replay` reproduces the engine's
live decisions.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import anthropic
import httpx
import openai
import pytest

from conftest import free_port
from test_detection import COT_SYSTEM, QUESTIONS, read_jsonl

MARK = "DEMO-REASONING"  # the demo upstream's reasoning text (never in a degraded answer)
CAMPAIGN = [f"acct_camp{i}" for i in range(3)]
BENIGN = "acct_benign"
# Thresholds on the engine's risk: the campaign climbs the ladder within ~150 requests.
LADDER = {"throttle_at": 0.35, "degrade_at": 0.5, "block_at": 0.97, "throttle_rpm": 100000}


class Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        n = int(self.headers.get("content-length", 0))
        Hook.received.append(json.loads(self.rfile.read(n)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def webhook():
    Hook.received = []
    srv = HTTPServer(("127.0.0.1", free_port()), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}/hook", Hook.received
    srv.shutdown()


def error_code(e) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    return body.get("code") or (body.get("error") or {}).get("code") or str(e.status_code)


def ask(g, key, i):
    """One campaign request; returns (kind, outcome, reasoning seen)."""
    kind = ["oa", "oa_stream", "an", "an_stream"][i % 4]
    q = f"Q{i}: {QUESTIONS[i % len(QUESTIONS)]}"
    oa = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0)
    an = anthropic.Anthropic(base_url=g.url, api_key=key, max_retries=0)
    msgs = [{"role": "system", "content": COT_SYSTEM}, {"role": "user", "content": q}]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    try:
        if kind == "oa":
            r = oa.chat.completions.create(model="think-long-300", max_tokens=4000, messages=msgs)
            seen = r.choices[0].message.content + json.dumps(r.choices[0].message.model_extra or {})
        elif kind == "oa_stream":
            seen = ""
            with oa.chat.completions.create(model="think-demo", max_tokens=4000, stream=True,
                                            messages=msgs) as s:
                for c in s:
                    seen += json.dumps(c.model_dump())
        elif kind == "an":
            r = an.messages.create(model="think-long-300", max_tokens=4000, system=COT_SYSTEM,
                                   thinking=thinking, messages=[{"role": "user", "content": q}])
            seen = json.dumps(r.model_dump())
            assert [b.type for b in r.content][-1] == "text"
        else:
            seen = ""
            with an.messages.stream(model="think-demo", max_tokens=4000, system=COT_SYSTEM,
                                    thinking=thinking, messages=[{"role": "user", "content": q}]) as s:
                for ev in s:
                    seen += json.dumps(ev.model_dump())
                final = s.get_final_message()
            seen += json.dumps(final.model_dump())
        reasoning = MARK in seen or "reasoning_content" in seen and '"reasoning_content": null' not in seen \
            or '"thinking"' in seen or "redacted_thinking" in seen
        return kind, "ok", reasoning
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        return kind, error_code(e), False


def run_traffic(g, n=160):
    """The campaign plus the benign customer; returns per-account outcomes."""
    keys = []
    for acct in CAMPAIGN:
        g.create_account(acct)
        keys += [(acct, g.create_key(acct)[1]) for _ in range(2)]
    benign = openai.OpenAI(base_url=g.url + "/v1", api_key=g.account_with_key(BENIGN), max_retries=0)
    history = [{"role": "user", "content": "I'm planning a vegetable garden in a small backyard."}]
    follow_ups = ["Which of those grow well in shade?", "How often should I water them?",
                  "And what about the tomatoes you mentioned?", "Thanks! Any tips for slugs?",
                  "Should I use raised beds?", "What about compost?", "When do I plant garlic?",
                  "How deep should the beds be?"]
    out = {a: [] for a in CAMPAIGN + [BENIGN]}
    for i in range(n):
        acct, key = keys[i % len(keys)]
        out[acct].append(ask(g, key, i))
        if i % 20 == 10:  # the benign customer, at the same time, with a reasoning model
            r = benign.chat.completions.create(model="think-demo", messages=history, max_tokens=200)
            out[BENIGN].append(("oa", "ok", MARK in r.choices[0].message.content))
            history += [{"role": "assistant", "content": r.choices[0].message.content},
                        {"role": "user", "content": follow_ups[len(out[BENIGN]) % len(follow_ups)]}]
    return out, keys


def changes(g):
    return [json.loads(r["request_body"]) for r in g.audit_rows("api = 'moat.enforcement'")]


def check_replay(g, tmp_path):
    """Export has only exchanges; replay reproduces the engine's live decisions."""
    live = g.audit_rows("api != 'moat.enforcement' AND decision IS NOT NULL")
    g.stop()
    live = g.audit_rows("api != 'moat.enforcement' AND decision IS NOT NULL")
    assert g.cli("audit", "verify").returncode == 0
    traffic, accounts, out = tmp_path / "t.jsonl", tmp_path / "a.jsonl", tmp_path / "replay"
    g.cli("audit", "export", "--out", str(traffic), "--accounts-out", str(accounts))
    lines = read_jsonl(traffic)
    assert all(line["api"] != "moat.enforcement" for line in lines)
    assert len(lines) == len(g.audit_rows("api != 'moat.enforcement' AND account_id IS NOT NULL"))
    g.cli("replay", "--traffic", str(traffic), "--accounts", str(accounts), "--out", str(out))
    replayed = read_jsonl(out / "decisions.jsonl")
    assert len(replayed) == len(live) == len(lines)
    for n, (row, b) in enumerate(zip(live, replayed)):
        a = json.loads(row["decision"])
        assert (a["action"], a["reasons"], a["cluster"]) == (b["action"], b["reasons"], b["cluster"]), (n, a, b)
        assert abs(a["risk"] - b["risk"]) < 1e-12
        assert set(a["enforcement"]) == {"applied", "intended", "source", "shadow"}
    return [json.loads(r["decision"]) for r in live]


def test_campaign_is_degraded_then_blocked_benign_untouched(make_gateway, webhook, tmp_path):
    url, received = webhook
    g = make_gateway(overrides={"enforce": {"shadow": False, **LADDER},
                                "enforce.webhook": {"url": url, "min_action": "degrade"}})
    out, keys = run_traffic(g)

    # The customer was served in full every time, reasoning included.
    assert out[BENIGN] and all(o == ("oa", "ok", True) for o in out[BENIGN]), out[BENIGN]
    for acct in CAMPAIGN:
        res = out[acct]
        codes = [r[1] for r in res]
        assert "account_blocked" in codes, (acct, codes)
        first_block = codes.index("account_blocked")
        assert all(c == "account_blocked" for c in codes[first_block:]), codes  # persisted
        assert any(not r[2] for r in res[:first_block] if r[1] == "ok"), "degraded before blocked"
        # never refused outright at first: the ladder degrades before it blocks (with the intent
        # model, a trace-extraction prompt may already be degraded on the account's first request)
        assert res[0][1] == "ok", "served (full or degraded) at first"
    # Degraded answers carry no reasoning in any shape, streams included.
    degraded = [r for a in CAMPAIGN for r in out[a] if r[1] == "ok" and not r[2]]
    assert {r[0] for r in degraded} == {"oa", "oa_stream", "an", "an_stream"}, degraded

    # Every key of a blocked account is refused, in each API's error format.
    for acct, key in keys:
        with pytest.raises(anthropic.PermissionDeniedError) as e:
            anthropic.Anthropic(base_url=g.url, api_key=key, max_retries=0).messages.create(
                model="demo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        assert e.value.body["error"]["code"] == "account_blocked"
        assert e.value.body["error"]["type"] == "permission_error"

    # The block is persisted by the engine; the changes are audited and sent to the webhook.
    overrides = g.admin("GET", "/admin/v1/enforcement").json()["overrides"]
    assert {(o["account"], o["action"], o["source"]) for o in overrides} == \
        {(a, "block", "engine") for a in CAMPAIGN}
    ch = changes(g)
    for acct in CAMPAIGN:
        path = [c["to"] for c in ch if c["account"] == acct]
        assert "degrade" in path and path[-1] == "block", path
        assert all(c["reasons"] for c in ch if c["account"] == acct and c["to"] == "block")
    assert not [c for c in ch if c["account"] == BENIGN]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("block" in h["text"] for h in received):
        time.sleep(0.05)
    assert any("acct_camp" in h["text"] and "block" in h["text"] for h in received), received
    assert all(h["event"]["kind"] == "action_change" for h in received)

    # Operator views: live risk ranking and clusters (admin API and CLI).
    risk = json.loads(g.cli("accounts", "risk", "--json").stdout)
    assert risk["source"] == "live engine"
    ranked = [a["account"] for a in risk["accounts"]]
    assert set(ranked[:3]) == set(CAMPAIGN) and ranked.index(BENIGN) > 2
    assert all(a["override"]["action"] == "block" for a in risk["accounts"][:3])
    clusters = json.loads(g.cli("clusters", "list", "--json").stdout)["clusters"]
    assert clusters and set(CAMPAIGN) <= {a["account"] for a in clusters[0]["accounts"]}
    shown = json.loads(g.cli("clusters", "show", clusters[0]["cluster"], "--json").stdout)
    assert shown["cluster"] == clusters[0]["cluster"]
    offline = json.loads(g.cli("accounts", "risk", "--json", "--offline").stdout)
    assert offline["source"] == "audit log" and offline["accounts"][0]["account"] in CAMPAIGN

    # Operators lift or impose: the admin API takes effect at once ...
    assert g.admin("POST", f"/admin/v1/accounts/{CAMPAIGN[0]}/allow", json={"reason": "reviewed"}).status_code == 200
    r = openai.OpenAI(base_url=g.url + "/v1", api_key=keys[0][1], max_retries=0).chat.completions.create(
        model="think-demo", max_tokens=50, messages=[{"role": "user", "content": "hello again"}])
    assert MARK in r.choices[0].message.content
    assert g.admin("POST", f"/admin/v1/accounts/{BENIGN}/challenge").status_code == 200
    benign_key = g.create_key(BENIGN)[1]
    with pytest.raises(openai.PermissionDeniedError) as e:
        openai.OpenAI(base_url=g.url + "/v1", api_key=benign_key, max_retries=0).chat.completions.create(
            model="demo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "account_verification_required"
    assert g.admin("POST", f"/admin/v1/accounts/{BENIGN}/unblock").status_code == 200
    # ... the CLI (on the database) within the auth cache TTL (300 ms here).
    g.cli("accounts", "block", BENIGN, "--reason", "test")
    time.sleep(0.6)
    with pytest.raises(openai.PermissionDeniedError) as e:
        openai.OpenAI(base_url=g.url + "/v1", api_key=benign_key, max_retries=0).chat.completions.create(
            model="demo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "account_blocked"
    g.cli("accounts", "unblock", BENIGN)
    time.sleep(0.6)
    openai.OpenAI(base_url=g.url + "/v1", api_key=benign_key, max_retries=0).chat.completions.create(
        model="demo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert g.admin("POST", "/admin/v1/accounts/acct_nobody/block").status_code == 404

    metrics = httpx.get(g.admin_url + "/metrics").text
    assert 'moat_enforce_actions_total{action="block"}' in metrics
    assert "moat_enforce_accounts" in metrics

    decisions = check_replay(g, tmp_path)
    applied = {d["enforcement"]["applied"] for d in decisions}
    assert {"allow", "degrade", "block"} <= applied


def test_shadow_mode_restricts_nothing_and_logs_what_it_would_do(make_gateway, tmp_path):
    g = make_gateway(overrides={"enforce": {"shadow": True, **LADDER}})
    out, _ = run_traffic(g)
    for acct, res in out.items():
        assert all(r[1] == "ok" and r[2] for r in res), (acct, res)  # served in full
    ch = changes(g)
    for acct in CAMPAIGN:
        path = [c["to"] for c in ch if c["account"] == acct]
        assert "degrade" in path and "block" in path, path
        assert all(c["shadow"] for c in ch if c["account"] == acct)
    assert not [c for c in ch if c["account"] == BENIGN]
    assert g.admin("GET", "/admin/v1/enforcement").json()["overrides"] == []
    metrics = httpx.get(g.admin_url + "/metrics").text
    assert 'moat_enforce_shadow_would_act_total{action="block"}' in metrics
    decisions = check_replay(g, tmp_path)
    assert {d["enforcement"]["applied"] for d in decisions} == {"allow"}
    assert {"degrade", "block"} <= {d["enforcement"]["intended"] for d in decisions}


def test_throttle_and_hidden_reasoning(make_gateway):
    g = make_gateway(overrides={
        "enforce": {"shadow": False, "throttle_rpm": 1},
        "enforce.force": {"acct_slow": "throttle", "acct_deg": "degrade"},
        "enforce.degrade": {"max_tokens": 3, "logprobs": "refuse"},
        "enforce.reasoning": {"hide_for_tiers": ["free"]},
    })
    slow = openai.OpenAI(base_url=g.url + "/v1", api_key=g.account_with_key("acct_slow"), max_retries=0)
    slow.chat.completions.create(model="demo", max_tokens=5, messages=[{"role": "user", "content": "a"}])
    with pytest.raises(openai.RateLimitError) as e:
        slow.chat.completions.create(model="demo", max_tokens=5, messages=[{"role": "user", "content": "b"}])
    assert int(e.value.response.headers["retry-after"]) >= 1

    deg_key = g.account_with_key("acct_deg", "--allow-logprobs")
    deg = openai.OpenAI(base_url=g.url + "/v1", api_key=deg_key, max_retries=0)
    r = deg.chat.completions.create(model="long-50", max_tokens=40, messages=[{"role": "user", "content": "x"}])
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"  # capped
    with pytest.raises(openai.PermissionDeniedError) as e:
        deg.chat.completions.create(model="demo", logprobs=True, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "feature_restricted"

    free = g.account_with_key("acct_free", account_flags=("--tier", "free"))
    pro = g.account_with_key("acct_pro", account_flags=("--tier", "pro"))
    for key, hidden in [(free, True), (pro, False)]:
        an = anthropic.Anthropic(base_url=g.url, api_key=key, max_retries=0)
        with an.messages.stream(model="think-demo", max_tokens=500, thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": "why is the sky blue?"}]) as s:
            final = s.get_final_message()
        kinds = [b.type for b in final.content]
        text = final.content[-1].text
        if hidden:
            assert kinds == ["text"] and MARK not in text and "<think>" not in text and "not a model" in text
        else:
            assert kinds == ["thinking", "redacted_thinking", "text"] and MARK in text
