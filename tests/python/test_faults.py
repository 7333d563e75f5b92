"""Fault tests (issue #24), against the real gateway and real dependencies, nothing mocked:

* the upstream process killed (SIGKILL) in the middle of a stream;
* a client that hangs up in the middle of a stream (audited, its reservation settled);
* the SQLite database on a full, then read-only disk (a small tmpfs; root only), with
  `store.on_error` = serve_stale and fail_closed, the audit spool on another disk;
* PostgreSQL and NATS restarted under load on the scale-out topology — private instances of
  this test's own (initdb into a temp dir, `nats-server -js` on a free port), never the
  machine-wide services.

What moat promises under each fault is written down in docs/reliability.md.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import Gateway, free_port, moat_bin, stop, wait_http

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


def start_demo_upstream(port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([moat_bin(), "demo-upstream", "--listen", f"127.0.0.1:{port}"],
                            stdout=log.open("a"), stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    return proc


def sse(lines) -> tuple[list[str | None], list[dict]]:
    """(event names, data payloads as JSON) of an SSE line iterator."""
    names, data, name = [], [], None
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            payload = line[5:].strip()
            if payload != "[DONE]":
                names.append(name)
                data.append(json.loads(payload))
            name = None
    return names, data


# -- the upstream dies in the middle of a stream ---------------------------------------------


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_upstream_killed_mid_stream(make_gateway, tmp_path, path):
    port = free_port()
    log = tmp_path / "upstream.log"
    upstream = start_demo_upstream(port, log)
    g = make_gateway(upstream=f"http://127.0.0.1:{port}/v1")
    key = g.account_with_key("acct")
    tag = f"kill me {uuid.uuid4().hex[:6]}"
    body = {"model": "long-3000", "max_tokens": 5000, "stream": True,
            "messages": [{"role": "user", "content": tag}]}
    seen = []
    try:
        with httpx.stream("POST", g.url + path, json=body, headers={"authorization": f"Bearer {key}"},
                          timeout=30) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            for line in lines:
                seen.append(line)
                if sum(1 for x in seen if x.startswith("data:")) == 40:
                    upstream.send_signal(signal.SIGKILL)  # 3000 words take ~6 s: mid-stream
                    upstream.wait()
                    break
            seen.extend(lines)  # what the gateway sends after the upstream died
    finally:
        stop(upstream)
    names, data = sse(seen)
    last = data[-1]
    # A terminated stream, in the API's own error event shape.
    assert "error" in last, last
    assert last["error"]["code"] in ("upstream_unreachable", "upstream_bad_response"), last
    if path == MESSAGES:
        assert names[-1] == "error" and last["type"] == "error"
        assert not any(d.get("type") == "message_stop" for d in data)
        reported_input = next(d["message"]["usage"]["input_tokens"] for d in data if d.get("type") == "message_start")
        text = "".join(d["delta"].get("text", "") for d in data if d.get("type") == "content_block_delta")
    else:
        assert set(last) == {"error"}
        text = "".join(c["delta"].get("content") or "" for d in data for c in d.get("choices", []))
    words = len(re.findall(r"\bw\d+\b", text))  # the demo's words: w0 w1 w2 …
    assert words >= 30, text
    row = g.wait_audit("request_body LIKE ?", (f"%{tag}%",), timeout=15)[0]
    assert row["status"] == 200 and row["error"] == last["error"]["code"]
    # The partial usage is kept: the upstream's input count where it sent one, the output
    # estimated from what was relayed (at least what this client received).
    assert words <= row["output_tokens"] < 3000
    assert row["input_tokens"] > 0
    if path == MESSAGES:
        assert row["input_tokens"] == reported_input
    assert row["response_text"].startswith("w0 w1")
    # The gateway itself is fine, and serves again once the upstream is back.
    assert httpx.get(g.url + "/healthz").json()["status"] == "ok"
    upstream = start_demo_upstream(port, log)
    try:
        ok = {"model": "demo-echo", "max_tokens": 5, "messages": [{"role": "user", "content": "back"}]}
        codes = [httpx.post(g.url + path, json=ok, headers={"authorization": f"Bearer {key}"}, timeout=10).status_code
                 for _ in range(3)]
        assert codes[-1] == 200, codes
    finally:
        stop(upstream)
    assert g.cli("audit", "verify").returncode == 0


# -- the client hangs up in the middle of a stream ----------------------------------------


def test_client_disconnect_mid_stream_settles_the_limiter(make_gateway):
    g = make_gateway()
    # 2,000 tokens a minute; each request reserves ~1,240 (its body / 4 + max_tokens 1,200).
    key = g.account_with_key("acct", account_flags=("--tpm", "2000"))
    body = {"model": "long-3000", "max_tokens": 1200, "stream": True,
            "messages": [{"role": "user", "content": "hang up"}]}
    with httpx.Client(timeout=30) as c:
        with c.stream("POST", g.url + CHAT, json=body, headers={"authorization": f"Bearer {key}"}) as r:
            assert r.status_code == 200
            got = 0
            for line in r.iter_lines():
                got += line.startswith("data:")
                if got >= 10:
                    break
        # the connection is closed here, ~1,190 words before the end
    row = g.wait_audit("error = 'client_disconnected'", timeout=15)[0]
    assert row["status"] == 200 and 5 <= row["output_tokens"] < 1200
    used = row["input_tokens"] + row["output_tokens"]
    assert used < 600, row
    # The reservation was settled with what was used: a second request of the same size fits
    # (it would not if the first still held its ~1,240 tokens: 2 × 1,240 > 2,000).
    time.sleep(0.3)
    r = httpx.post(g.url + CHAT, headers={"authorization": f"Bearer {key}"}, timeout=30,
                   json={**body, "model": "demo-echo", "stream": False})
    assert r.status_code == 200, r.text


# -- SQLite on a full or read-only disk ------------------------------------------------------


class Disk:
    """A small file system of this test's own for the database (mounting needs root):
    a 4 MiB tmpfs to fill up, or an 8 MiB ext4 image on a loop device that a file-system error
    turns read-only (`errors=remount-ro`, as a failing disk does)."""

    def __init__(self, kind: str):
        if os.geteuid() != 0:
            pytest.skip("needs root to mount a small file system (the full/read-only disk tests)")
        self.kind = kind
        self.path = Path(tempfile.mkdtemp(prefix="moat-disk-"))
        self.image = self.path.with_suffix(".img")
        if kind == "tmpfs":
            cmd = ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(self.path)]
        else:
            subprocess.run(["truncate", "-s", "8M", str(self.image)], check=True)
            p = subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], capture_output=True, text=True)
            if p.returncode != 0:
                pytest.skip(f"cannot make an ext4 image here: {p.stderr.strip()}")
            cmd = ["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            pytest.skip(f"cannot mount a {kind} here: {p.stderr.strip()}")

    def fill(self) -> None:
        with open(self.path / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)

    def fail_read_only(self) -> None:
        """An ext4 error: the kernel remounts the file system read-only under the open files."""
        dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(self.path)], capture_output=True,
                             text=True, check=True).stdout.strip()
        Path(f"/sys/fs/ext4/{Path(dev).name}/trigger_fs_error").write_text("1")
        with pytest.raises(OSError):  # EROFS from now on
            (self.path / "probe").write_text("x")

    def repair(self) -> None:
        """What an operator does: unmount, fsck, mount read-write again (nothing may hold a
        file open on it)."""
        subprocess.run(["umount", str(self.path)], check=True)
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True)
        subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)
        self.image.unlink(missing_ok=True)


def disk_gateway(make_gateway, disk: Disk, name: str, on_error: str) -> Gateway:
    g = make_gateway(start=False, name=name)
    g.db = disk.path / f"{name}.db"
    g.sections["store"] = {"path": str(g.db), "on_error": on_error}
    g.sections["audit"]["spool_dir"] = str(g.dir / "spool")  # on another disk
    g.sections["watermark"] = {"key_file": str(g.dir / "wm.keys")}
    from conftest import render_toml
    g.config.write_text(render_toml(g.sections))
    return g.start()


def audit_count(g: Gateway, account: str) -> int:
    con = sqlite3.connect(f"file:{g.db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM audit_log WHERE account_id = ?", (account,)).fetchone()[0]
    finally:
        con.close()


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.1)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_sqlite_disk_fault(make_gateway, fault):
    disk = Disk("tmpfs" if fault == "full" else "ext4")
    try:
        sqlite_disk_fault(make_gateway, disk, fault)
    finally:
        for g in getattr(disk, "gateways", []):
            g.stop()
        disk.close()


def sqlite_disk_fault(make_gateway, disk: Disk, fault: str) -> None:
    stale = disk_gateway(make_gateway, disk, "stale", "serve_stale")
    closed = disk_gateway(make_gateway, disk, "closed", "fail_closed")
    disk.gateways = [stale, closed]
    keys = {g: g.account_with_key("acct") for g in (stale, closed)}
    sent = {stale: 0, closed: 0}
    statuses = {stale: [], closed: []}

    def post(g):
        sent[g] += 1
        r = httpx.post(g.url + CHAT, headers={"authorization": f"Bearer {keys[g]}"}, timeout=10,
                       json={"model": "demo-echo", "messages": [{"role": "user", "content": f"n{sent[g]}"}]})
        statuses[g].append(r.status_code)
        return r

    for g in (stale, closed):
        assert post(g).status_code == 200
        wait_for(lambda: audit_count(g, "acct") == 1, 10, "first record written")
    if fault == "full":
        disk.fill()
    else:
        disk.fail_read_only()
    # serve_stale: served throughout; the records go to the spool, the health says so.
    for _ in range(10):
        assert post(stale).status_code == 200
    wait_for(lambda: httpx.get(stale.url + "/healthz").json()["status"] == "degraded", 10, "stale: degraded")
    h = httpx.get(stale.url + "/healthz").json()
    assert "store" in h["degraded"] and h["checks"]["audit"]["spooled_pending"] > 0, h
    # fail_closed: once a write has failed, refused with 503 in the API's shape (and the
    # refusals are recorded too).
    post(closed)
    wait_for(lambda: post(closed).status_code == 503, 10, "closed: refusing")
    r = post(closed)
    assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable", r.text
    assert r.headers["x-moat-error-source"] == "gateway"
    for g in (stale, closed):
        assert g.proc.poll() is None, f"{g.dir.name} died:\n{g.log.read_text()[-3000:]}"
    # The disk recovers: the spool is flushed into the database, nothing is lost, the chain
    # verifies, and the fail-closed gateway serves again. A full disk is freed under the
    # running gateways; a read-only one needs an fsck, so the gateways are stopped first (their
    # spooled records wait on the other disk) and started again after it.
    if fault == "full":
        disk.free()
    else:
        for g in (stale, closed):
            g.stop()
            assert g.proc.returncode == 0, g.log.read_text()[-3000:]
        disk.repair()
        for g in (stale, closed):
            g.start()
    for g in (stale, closed):
        wait_for(lambda: audit_count(g, "acct") == sent[g], 40,
                 lambda: f"{g.dir.name}: {audit_count(g, 'acct')} of {sent[g]} records in the database; "
                         f"spool {sorted(p.name for p in (g.dir / 'spool').glob('*'))}\n{g.log.read_text()[-4000:]}")
        assert audit_count(g, "acct") == sent[g]
        assert g.cli("audit", "verify").returncode == 0
        wait_for(lambda: httpx.get(g.url + "/healthz").json()["status"] == "ok", 20, "healthy again")
    wait_for(lambda: post(closed).status_code == 200, 20, "closed: serving again")
    assert all(s == 200 for s in statuses[stale]), statuses[stale]
    assert 503 in statuses[closed]
    for g in (stale, closed):
        wait_for(lambda: audit_count(g, "acct") == sent[g], 10, "last record")
    # The refusals are in the chain with their code.
    refused = closed.audit_rows("account_id = 'acct' AND status = 503")
    assert len(refused) == statuses[closed].count(503)
    assert {r["error"] for r in refused} == {"service_unavailable"}


# -- PostgreSQL and NATS restarted under load (scale-out) ----------------------------------


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PrivatePostgres:
    """A PostgreSQL server of this test's own, in a temp dir, on a free port."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            pytest.fail("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
        self.bin = Path(bins[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="moat-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        subprocess.run(_as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                     "--no-sync"]), check=True, capture_output=True)
        self.start()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts,
                                     "-l", str(self.dir / "log"), "-w", "start"]), check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
                       capture_output=True)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateNats:
    """A NATS server (JetStream on, file store in a temp dir) of this test's own."""

    def __init__(self):
        if not shutil.which("nats-server"):
            pytest.fail("nats-server is not installed (.ci/run installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix="moat-nats-"))
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", str(self.dir / "js")],
                                     stdout=(self.dir / "log").open("a"), stderr=subprocess.STDOUT)
        import socket
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        stop(self.proc)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg():
    pg = PrivatePostgres()
    yield pg
    pg.close()


@pytest.fixture
def private_nats():
    n = PrivateNats()
    yield n
    n.close()


class Load:
    """Clients sending requests to the replicas round-robin until stopped; every answer kept."""

    def __init__(self, replicas: list[Gateway], key: str, threads: int = 4):
        self.replicas, self.key = replicas, key
        self.results: list[tuple[float, int, str | None]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def run(self, i: int) -> None:
        n = 0
        with httpx.Client(timeout=15) as c:
            while not self.stopping.is_set():
                g = self.replicas[(i + n) % len(self.replicas)]
                n += 1
                path, body = (CHAT, {"model": "demo-echo", "messages": [{"role": "user", "content": f"t{i} n{n}"}]}) \
                    if n % 2 else (MESSAGES, {"model": "demo-echo", "max_tokens": 8,
                                              "messages": [{"role": "user", "content": f"t{i} n{n}"}]})
                try:
                    r = c.post(g.url + path, json=body, headers={"authorization": f"Bearer {self.key}"})
                    code = None
                    if r.status_code != 200:
                        j = r.json()
                        code = j["error"]["code"]
                    res = (time.monotonic(), r.status_code, code)
                except httpx.HTTPError as e:  # the gateway never goes away in these tests
                    res = (time.monotonic(), 0, type(e).__name__)
                with self.lock:
                    self.results.append(res)
                time.sleep(0.02)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def between(self, t0: float, t1: float) -> list[tuple[float, int, str | None]]:
        with self.lock:
            return [r for r in self.results if t0 <= r[0] <= t1]


def pg_count(url: str, account: str) -> int:
    p = subprocess.run(["psql", url, "-At", "-c", f"SELECT count(*) FROM audit_log WHERE account_id = '{account}'"],
                       capture_output=True, text=True, timeout=10)
    return int(p.stdout.strip()) if p.returncode == 0 else -1


def replica(tmp: Path, name: str, upstream_url: str, pg_url: str, bus: dict | None) -> Gateway:
    d = tmp / name
    d.mkdir()
    overrides = {
        "store": {"backend": "postgres", "url": pg_url, "timeout": "1s"},
        "audit": {"spool_dir": str(d / "spool")},
        "watermark": {"key_file": str(tmp / "watermark-keys")},
    }
    if bus:
        overrides["bus"] = {**bus, "replica": name}
    return Gateway(d, upstream_url, overrides).start()


def bus_names(url: str) -> dict:
    t = uuid.uuid4().hex[:10]
    return {"url": url, "stream": f"MOAT_F_{t}", "subject_prefix": f"moat_f_{t}.events",
            "verdict_bucket": f"moat_f_{t}_verdicts", "summary_bucket": f"moat_f_{t}_summaries",
            "control_subject": f"moat_f_{t}.control", "partitions": 4, "retention": "1h"}


@pytest.mark.parametrize("restart", ["postgres", "nats"])
def test_restart_under_load_loses_nothing(upstream_url, private_pg, private_nats, tmp_path, restart):
    bus = bus_names(private_nats.url)
    reps: list[Gateway] = []
    worker = None
    try:
        reps = [replica(tmp_path, n, upstream_url, private_pg.url, bus) for n in ("gw-a", "gw-b")]
        acct = f"acct_{restart}_{uuid.uuid4().hex[:6]}"
        key = reps[0].account_with_key(acct)
        decisions = tmp_path / "decisions.jsonl"
        wlog = tmp_path / "worker.log"
        worker = subprocess.Popen([moat_bin(), "--config", str(reps[0].config), "detect", "--index", "0",
                                   "--workers", "1", "--hold", "200ms", "--decisions-out", str(decisions)],
                                  stdout=wlog.open("w"), stderr=subprocess.STDOUT)
        for g in reps:  # every replica has the key cached before the fault
            assert httpx.post(g.url + CHAT, headers={"authorization": f"Bearer {key}"}, timeout=10,
                              json={"model": "demo-echo", "messages": [{"role": "user", "content": "warm"}]}
                              ).status_code == 200
        with Load(reps, key) as load:
            time.sleep(2)
            t0 = time.monotonic()
            if restart == "postgres":
                private_pg.stop("fast")
                time.sleep(3)
                private_pg.start()
            else:
                private_nats.stop()
                time.sleep(3)
                private_nats.start()
            t1 = time.monotonic()
            time.sleep(3)
        results = load.results
        assert len(results) > 50
        # Served throughout (cached keys while PostgreSQL is away: store.on_error = serve_stale;
        # the bus is off the request path), in the API's format when not.
        assert not [r for r in results if r[1] == 0], "a connection to the gateway failed"
        during = load.between(t0, t1)
        assert during and all(r[1] == 200 for r in during), [r for r in during if r[1] != 200][:5]
        assert all(r[1] == 200 for r in results), {r for r in results if r[1] != 200}
        sent = len(results) + len(reps)  # plus the warm-up requests
        # Nothing lost: every exchange is in the one chain (spooled while PostgreSQL was down,
        # flushed exactly once), and the chain verifies.
        wait_for(lambda: pg_count(private_pg.url, acct) >= sent, 60,
                 f"{sent} audit records (have {pg_count(private_pg.url, acct)})")
        assert pg_count(private_pg.url, acct) == sent
        v = reps[0].cli("audit", "verify")
        assert v.returncode == 0 and v.stdout.startswith("OK"), v.stdout + v.stderr
        for g in reps:
            wait_for(lambda: httpx.get(g.url + "/healthz").json()["status"] == "ok", 30,
                     f"{g.dir.name} healthy again")
        # ... and every exchange reached the detector worker (queued while NATS was down).
        def decided():
            if not decisions.exists():
                return 0
            # complete lines only (the worker's writer may be in the middle of one)
            return sum(1 for line in decisions.read_text().split("\n")[:-1] if f'"account":"{acct}"' in line)
        wait_for(lambda: decided() >= sent, 60,
                 lambda: f"worker decisions: {decided()} of {sent}\n"
                         f"{[httpx.get(g.url + '/healthz').json()['checks'].get('bus') for g in reps]}\n"
                         f"worker log:\n{wlog.read_text()[-4000:]}")
        assert decided() == sent
        assert worker.poll() is None, f"the worker died:\n{wlog.read_text()[-3000:]}"
    finally:
        if worker:
            stop(worker)
        for g in reps:
            g.stop()
