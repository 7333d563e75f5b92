"""Scale-out: several gateway replicas and detector workers on PostgreSQL, Redis and NATS.

Every test runs the real topology on this machine: two `moat serve` replicas sharing one
PostgreSQL database (a fresh one per test), the Redis limiter, and `moat detect` workers on a
NATS JetStream stream and buckets of their own (deleted afterwards). Nothing is mocked: the
services are the ones `.ci/run` starts (PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379, NATS
127.0.0.1:4222); the Redis-outage test starts a private redis-server it can stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from conftest import Gateway, free_port, moat_bin, stop
from test_detection import COT_SYSTEM, QUESTIONS, read_jsonl

PG_ADMIN = os.environ.get("MOAT_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("MOAT_TEST_NATS_URL", "nats://127.0.0.1:4222")
MARK = "DEMO-REASONING"  # the demo upstream's reasoning text (never in a degraded answer)
LADDER = {"throttle_at": 0.35, "degrade_at": 0.5, "block_at": 0.99, "challenge_at": 0.98,
          "throttle_rpm": 100000, "shadow": False}


def psql(sql: str, url: str = PG_ADMIN) -> str:
    p = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"moat_so_{uuid.uuid4().hex[:10]}"
    psql(f"CREATE DATABASE {name}")
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _delete_bus(names: dict) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    for stream in (names["stream"], f"KV_{names['verdict_bucket']}", f"KV_{names['summary_bucket']}"):
        try:
            await js.delete_stream(stream)
        except Exception:  # noqa: BLE001 - never created
            pass
    await nc.close()


@pytest.fixture
def bus():
    """`[bus]` names of a stream and buckets of this test's own."""
    t = uuid.uuid4().hex[:10]
    names = {
        "url": NATS_URL,
        "stream": f"MOAT_T_{t}",
        "subject_prefix": f"moat_t_{t}.events",
        "verdict_bucket": f"moat_t_{t}_verdicts",
        "summary_bucket": f"moat_t_{t}_summaries",
        "control_subject": f"moat_t_{t}.control",
        "partitions": 8,
        "retention": "1h",
    }
    yield names
    asyncio.run(_delete_bus(names))


class Topology:
    """Replicas and workers of one test; stopped at teardown."""

    def __init__(self, tmp: Path, upstream_url: str, pg_url: str, bus: dict):
        self.tmp, self.upstream_url, self.pg_url, self.bus = tmp, upstream_url, pg_url, bus
        self.replicas: list[Gateway] = []
        self.workers: list[tuple[subprocess.Popen, Path, Path]] = []
        self.key_file = tmp / "watermark-keys"

    def replica(self, name: str, limits: dict | None = None, extra: dict | None = None) -> Gateway:
        d = self.tmp / name
        d.mkdir()
        overrides = {
            "store": {"backend": "postgres", "url": self.pg_url},
            "limits": {"backend": "redis", **(limits or {})},
            "bus": {**self.bus, "replica": name},
            "audit": {"spool_dir": str(d / "spool")},
            "watermark": {"key_file": str(self.key_file)},
            "enforce": {k: v for k, v in LADDER.items() if k in ("throttle_rpm", "shadow")},
            "detect": {k: v for k, v in LADDER.items() if k.endswith("_at")},
        }
        for k, v in (extra or {}).items():
            overrides.setdefault(k, {}).update(v)
        g = Gateway(d, self.upstream_url, overrides)
        self.replicas.append(g)
        return g.start()

    def worker(self, index: int, workers: int, hold: str = "300ms") -> Path:
        cfg = self.replicas[0].config
        out = self.tmp / f"worker{index}-of-{workers}.jsonl"
        log = self.tmp / f"worker{index}-of-{workers}.log"
        proc = subprocess.Popen(
            [moat_bin(), "--config", str(cfg), "detect", "--index", str(index), "--workers",
             str(workers), "--hold", hold, "--decisions-out", str(out)],
            stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.workers.append((proc, out, log))
        return out

    def stop_workers(self) -> None:
        for proc, _, _ in self.workers:
            stop(proc)

    def close(self) -> None:
        self.stop_workers()
        for g in self.replicas:
            g.stop()


@pytest.fixture
def topology(upstream_url, pg_url, bus, tmp_path):
    t = Topology(tmp_path, upstream_url, pg_url, bus)
    yield t
    t.close()


def wait_lines(path: Path, n: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = read_jsonl(path) if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def chat(g: Gateway, key: str, content: str, model="think-demo", system=None, max_tokens=400):
    oa = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0)
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    r = oa.chat.completions.create(model=model, messages=msgs, max_tokens=max_tokens)
    return r.choices[0].message.content


def export_and_replay(g: Gateway, tmp: Path, expect: int) -> tuple[list[dict], list[dict], dict]:
    """Exports the merged audit log once all `expect` exchanges are in it (replicas write their
    records in batches, a few milliseconds after the answer), then replays it."""
    traffic, accounts, out = tmp / "merged.jsonl", tmp / "accounts.jsonl", tmp / "replay"
    deadline = time.monotonic() + 10
    while True:
        g.cli("audit", "export", "--out", str(traffic), "--accounts-out", str(accounts))
        n = len(read_jsonl(traffic))
        if n >= expect:
            break
        assert time.monotonic() < deadline, f"the audit log holds {n} of {expect} exchanges"
        time.sleep(0.2)
    g.cli("replay", "--traffic", str(traffic), "--accounts", str(accounts), "--out", str(out))
    reports = {r["account"]: r for r in read_jsonl(out / "accounts.jsonl")}
    return read_jsonl(traffic), read_jsonl(out / "decisions.jsonl"), reports


def by_account(lines: list[dict], decisions: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line, d in zip(lines, decisions):
        out.setdefault(line["account"], []).append(d)
    return out


def same(a: dict, b: dict) -> bool:
    return (a["action"], a["reasons"], a["cluster"]) == (b["action"], b["reasons"], b["cluster"]) \
        and abs(a["risk"] - b["risk"]) < 1e-9


# --------------------------------------------------------------------------------------------


def test_quota_is_exact_across_two_replicas(topology):
    # fail-closed with a generous deadline: a slow Redis refuses (503) instead of admitting
    # uncounted requests, so the quota can never be overshot
    limits = {"on_error": "closed", "timeout": "5s"}
    a = topology.replica("gw-a", limits=limits)
    b = topology.replica("gw-b", limits=limits)
    acct = f"acct_quota_{uuid.uuid4().hex[:8]}"  # Redis state outlives the test's database
    key = a.account_with_key(acct, account_flags=("--rpm", "50"))

    def one(i: int) -> int:
        g = (a, b)[i % 2]
        r = httpx.post(g.url + "/v1/chat/completions", timeout=30,
                       headers={"authorization": f"Bearer {key}"},
                       json={"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": f"hi {i}"}]})
        return r.status_code

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(one, range(200)))
    elapsed = time.monotonic() - t0
    # the bucket refills 50 per 60 s: requests that arrive later in the burst may use what
    # refilled meanwhile (floor(elapsed * 50 / 60)); nothing else may pass
    refill = int(elapsed * 50 / 60)
    ok = codes.count(200)
    assert 50 <= ok <= 50 + refill, (ok, elapsed, codes)
    assert codes.count(429) == 200 - ok, codes
    # every exchange of both replicas is in the one chain, which verifies
    deadline = time.monotonic() + 10
    while int(psql(f"SELECT count(*) FROM audit_log WHERE account_id = '{acct}'", topology.pg_url)) < 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert a.cli("audit", "verify").returncode == 0


def test_revocation_on_one_replica_is_refused_by_the_other_within_a_second(topology):
    a = topology.replica("gw-a", extra={"auth": {"cache_ttl": "5m"}})
    b = topology.replica("gw-b", extra={"auth": {"cache_ttl": "5m"}})
    a.create_account("acct_rev")
    r = a.admin("POST", "/admin/v1/keys", json={"account": "acct_rev"})
    assert r.status_code == 201, r.text
    key_id, secret = r.json()["key"]["id"], r.json()["secret"]
    assert chat(b, secret, "hello") is not None  # B caches the key (for 5 minutes)
    assert a.admin("POST", f"/admin/v1/keys/{key_id}/revoke").status_code == 200
    t0 = time.monotonic()
    while True:
        s = httpx.post(b.url + "/v1/chat/completions", timeout=10, headers={"authorization": f"Bearer {secret}"},
                       json={"model": "m", "messages": [{"role": "user", "content": "again"}]})
        if s.status_code == 401:
            break
        assert time.monotonic() - t0 < 1.0, "replica B still accepts the revoked key after 1 s"
        time.sleep(0.02)
    assert s.json()["error"]["code"] == "key_revoked"
    # a block made on B is enforced by A at once too
    a.create_account("acct_blk")
    k2 = a.create_key("acct_blk")[1]
    assert chat(a, k2, "hi") is not None
    assert b.admin("POST", "/admin/v1/accounts/acct_blk/block", json={"reason": "test"}).status_code == 200
    t0 = time.monotonic()
    while httpx.post(a.url + "/v1/chat/completions", timeout=10, headers={"authorization": f"Bearer {k2}"},
                     json={"model": "m", "messages": [{"role": "user", "content": "x"}]}).status_code != 403:
        assert time.monotonic() - t0 < 1.0, "replica A still serves an account blocked on B after 1 s"
        time.sleep(0.02)


CAMPAIGN = [f"acct_c{i}" for i in range(4)]
BENIGN = [f"acct_b{i}" for i in range(3)]


def campaign_traffic(replicas: list[Gateway], rounds: int = 24) -> int:
    """A chain-of-thought harvest by four accounts and three ordinary chat customers, one
    request at a time, every account alternating between the replicas. Returns the number of
    exchanges sent."""
    keys = {}
    for acct in CAMPAIGN + BENIGN:
        keys[acct] = replicas[0].account_with_key(acct)
    n = 0
    for i in range(rounds):
        for j, acct in enumerate(CAMPAIGN):
            q = f"Q{i}-{j}: {QUESTIONS[(i * 4 + j) % len(QUESTIONS)]}"
            chat(replicas[n % 2], keys[acct], q, model="think-long-300", system=COT_SYSTEM, max_tokens=4000)
            n += 1
        if i % 3 == 0:
            for acct in BENIGN:
                chat(replicas[n % 2], keys[acct], f"hi, can you suggest a name for my cat? ({i})", model="m")
                n += 1
    return n


def test_campaign_over_two_replicas_is_decided_as_replay_decides_the_merged_log(topology, tmp_path):
    a = topology.replica("gw-a")
    b = topology.replica("gw-b")
    decisions = topology.worker(0, 1)
    sent = campaign_traffic([a, b])
    lines, replayed, reports = export_and_replay(a, tmp_path, sent)
    assert {ln["account"] for ln in lines} == set(CAMPAIGN + BENIGN)
    worker = wait_lines(decisions, len(lines))
    assert len(worker) == len(lines), (len(worker), len(lines))
    # the worker saw both replicas' exchanges in the merged log's order and decided each one
    # exactly as `moat replay` does
    assert [(w["account"], w["ts_us"] // 1000) for w in worker] == \
        [(ln["account"], _ms(ln["ts"])) for ln in lines]
    for n, (w, r) in enumerate(zip(worker, replayed)):
        assert same(w, r), (n, w, r)
    # and that decision is the right one: every campaign account restricted, no customer
    for acct in CAMPAIGN:
        assert reports[acct]["verdict"] == "extraction", reports[acct]
        assert any(d["action"] == "degrade" for d in by_account(lines, replayed)[acct])
    for acct in BENIGN:
        assert reports[acct]["verdict"] == "benign", reports[acct]
        assert all(d["action"] == "allow" for d in by_account(lines, replayed)[acct])
    assert a.cli("audit", "verify").returncode == 0


def _ms(ts: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def test_worker_verdicts_reach_every_replica_within_a_second(topology):
    # one account alone (no cluster) reaches risk ≈ 0.5 within the 60 requests below
    lower = {"detect": {"degrade_at": 0.4}}
    a = topology.replica("gw-a", extra=lower)
    b = topology.replica("gw-b", extra=lower)
    decisions = [topology.worker(0, 2), topology.worker(1, 2)]
    attacker = "acct_solo"
    key = a.account_with_key(attacker)
    # all of the harvest goes to replica A: B's own engine never sees it
    for i in range(60):
        chat(a, key, f"Q{i}: {QUESTIONS[i % len(QUESTIONS)]}", model="think-long-300", system=COT_SYSTEM,
             max_tokens=4000)
    deadline = time.monotonic() + 20
    while sum(len(read_jsonl(d)) for d in decisions if d.exists()) < 60:
        assert time.monotonic() < deadline, "the workers did not decide every exchange"
        time.sleep(0.1)
    worker = [w for d in decisions if d.exists() for w in read_jsonl(d)]
    assert any(w["action"] == "degrade" for w in worker), worker[-1]
    # B installed the worker's verdicts on the account, each within a second of its publication
    deadline = time.monotonic() + 5
    while True:
        h = httpx.get(b.url + "/healthz", timeout=5).json()["checks"]["bus"]
        last = h["last_verdict"]
        if last and last["account"] == attacker and h["verdicts_applied"] >= 2:
            break
        assert time.monotonic() < deadline, h
        time.sleep(0.05)
    lag_ms = last["applied_ms"] - last["published_ms"]
    assert 0 <= lag_ms < 1000, last
    # and B now degrades the account's reasoning requests: no reasoning in its answers
    answer = chat(b, key, "Q: " + QUESTIONS[0], model="think-demo", system=COT_SYSTEM, max_tokens=4000)
    assert MARK not in answer
    # an ordinary customer on B is untouched
    other = b.account_with_key("acct_fine")
    assert MARK in chat(b, other, "Why is the sky blue?", model="think-demo")


def test_two_workers_split_the_accounts_and_agree_with_replay(topology, tmp_path):
    a = topology.replica("gw-a")
    b = topology.replica("gw-b")
    d0 = topology.worker(0, 2)
    d1 = topology.worker(1, 2)
    sent = campaign_traffic([a, b], rounds=18)
    lines, replayed, reports = export_and_replay(a, tmp_path, sent)
    deadline = time.monotonic() + 20
    while True:
        worker = (read_jsonl(d0) if d0.exists() else []) + (read_jsonl(d1) if d1.exists() else [])
        if len(worker) >= len(lines) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(worker) == len(lines)
    # each account was decided by exactly one worker, and both workers had accounts
    owner = {}
    for i, path in enumerate((d0, d1)):
        for w in read_jsonl(path):
            assert owner.setdefault(w["account"], i) == i
    assert set(owner.values()) == {0, 1}
    # per account: the same verdict as replay (extraction vs not), every benign exchange allowed
    final: dict[str, dict] = {}
    for w in sorted(worker, key=lambda w: w["ts_us"]):
        final[w["account"]] = w
    for acct in CAMPAIGN:
        assert reports[acct]["verdict"] == "extraction"
        assert any(w["action"] == "degrade" for w in worker if w["account"] == acct), acct
    for acct in BENIGN:
        assert reports[acct]["verdict"] == "benign"
        assert all(w["action"] == "allow" for w in worker if w["account"] == acct), acct
    # accounts whose decisions involved no cross-worker cluster are decided exactly as replay
    rep = by_account(lines, replayed)
    for acct in BENIGN:
        mine = [w for w in worker if w["account"] == acct]
        assert all(same(x, y) for x, y in zip(mine, rep[acct])), acct


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own (with an append-only file, as production would)."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    d = tmp_path / "redis"
    d.mkdir()

    def start():
        p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "yes", "--dir", str(d)],
                             stdout=(d / "log").open("a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return p

    state = {"proc": start()}

    class R:
        url = f"redis://127.0.0.1:{port}/"

        @staticmethod
        def stop():
            stop(state["proc"])

        @staticmethod
        def start():
            state["proc"] = start()

    yield R
    stop(state["proc"])


def test_redis_outage_fails_as_configured_and_loses_nothing(topology, private_redis, tmp_path):
    a = topology.replica("gw-a", limits={"redis_url": private_redis.url, "on_error": "open", "timeout": "50ms"})
    b = topology.replica("gw-b", limits={"redis_url": private_redis.url, "on_error": "closed", "timeout": "50ms"})
    decisions = topology.worker(0, 1)
    acct = f"acct_outage_{uuid.uuid4().hex[:8]}"
    key = a.account_with_key(acct, account_flags=("--rpm", "1000"))
    sent = 0

    def post(g):
        nonlocal sent
        sent += 1
        return httpx.post(g.url + "/v1/chat/completions", timeout=10, headers={"authorization": f"Bearer {key}"},
                          json={"model": "m", "messages": [{"role": "user", "content": f"n{sent}"}]})

    assert post(a).status_code == 200 and post(b).status_code == 200
    assert httpx.get(a.url + "/healthz").json()["status"] == "ok"
    private_redis.stop()
    ra, rb = post(a), post(b)
    assert ra.status_code == 200, ra.text  # fail-open: served without counting
    assert rb.status_code == 503, rb.text  # fail-closed: refused, in the API's own format
    assert rb.json()["error"]["code"] == "limiter_unavailable"
    assert rb.headers.get("retry-after")
    for g in (a, b):
        h = httpx.get(g.url + "/healthz").json()
        assert h["status"] == "degraded" and "limiter" in h["degraded"], h
    for _ in range(5):
        post(a), post(b)
    private_redis.start()
    deadline = time.monotonic() + 10
    while post(b).status_code != 200:
        assert time.monotonic() < deadline, "replica B did not recover after Redis came back"
        time.sleep(0.1)
    # both report healthy again once their probe reaches Redis (every 250 ms after a fault)
    for g in (a, b):
        deadline = time.monotonic() + 10
        while (h := httpx.get(g.url + "/healthz").json())["status"] != "ok":
            assert time.monotonic() < deadline, h
            time.sleep(0.1)
    # nothing lost: every exchange (refused ones included) is in the audit chain and was
    # decided by the worker
    deadline = time.monotonic() + 10
    while int(psql(f"SELECT count(*) FROM audit_log WHERE account_id = '{acct}'", topology.pg_url)) < sent:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert int(psql(f"SELECT count(*) FROM audit_log WHERE account_id = '{acct}'", topology.pg_url)) == sent
    assert a.cli("audit", "verify").returncode == 0
    assert len([w for w in wait_lines(decisions, sent) if w["account"] == acct]) == sent
