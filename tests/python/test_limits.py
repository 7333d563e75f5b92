"""Per-account limits under concurrency: no overshoot."""

import asyncio
import time

import httpx

CHAT_BODY = {"model": "demo-echo", "messages": [{"role": "user", "content": "hi"}]}


async def burst(url: str, key: str, n: int) -> tuple[list[httpx.Response], float]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        start = time.monotonic()
        rs = await asyncio.gather(
            *[
                client.post(url + "/v1/chat/completions", json=CHAT_BODY, headers={"authorization": f"Bearer {key}"})
                for _ in range(n)
            ]
        )
        return rs, time.monotonic() - start


def test_rpm_limit_has_no_overshoot_under_200_parallel_requests(gw, uniq):
    acct = uniq()
    key = gw.account_with_key(acct, account_flags=("--rpm", "50"))
    rs, elapsed = asyncio.run(burst(gw.url, key, 200))
    ok = [r for r in rs if r.status_code == 200]
    limited = [r for r in rs if r.status_code == 429]
    assert len(ok) + len(limited) == 200, {r.status_code for r in rs}
    # The bucket refills 50 per 60 s: whatever completes within the burst window may add
    # floor(elapsed * 50 / 60) requests; on any normal machine that is 0, i.e. exactly 50.
    refill = int(elapsed * 50 / 60)
    assert 50 <= len(ok) <= 50 + refill, (len(ok), elapsed)
    for r in limited:
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
    rows = gw.wait_audit("account_id = ?", (acct,), n=200)
    assert sum(r["status"] == 200 for r in rows) == len(ok)
    assert sum(r["error"] == "rate_limit_exceeded" for r in rows) == len(limited)


def test_token_limit_settles_with_real_usage(gw, uniq):
    # tpm = 3000; each request reserves body/4 + max_tokens (1000) then settles to the real
    # usage (~30 tokens), so many more than 3 sequential requests fit.
    key = gw.account_with_key(uniq(), account_flags=("--tpm", "3000"))
    body = {**CHAT_BODY, "max_tokens": 1000}
    statuses = [
        httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}).status_code
        for _ in range(10)
    ]
    assert statuses == [200] * 10
