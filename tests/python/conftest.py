"""Fixtures for the end-to-end tests: a real `moat` binary, the demo upstream,
and gateways on free ports with a temporary SQLite database and config.

MOAT_BIN overrides the binary (default: target/debug/moat, built if missing).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token-0123456789"


def moat_bin() -> str:
    env = os.environ.get("MOAT_BIN")
    if env:
        return env
    path = REPO / "target" / "debug" / "moat"
    if not path.exists():
        subprocess.run(["cargo", "build", "-p", "moat"], cwd=REPO, check=True)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, verify=True, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def render_toml(sections: dict) -> str:
    out = []
    for name, body in sections.items():
        out.append(f"[{name}]")
        for k, v in body.items():
            out.append(f"{k} = {toml_value(v)}")
        out.append("")
    return "\n".join(out)


class Gateway:
    """A running `moat serve` with its own database and config."""

    def __init__(self, tmp: Path, upstream_url: str, overrides: dict | None = None, env: dict | None = None):
        self.dir = tmp
        self.port = free_port()
        self.admin_port = free_port()
        self.db = tmp / "moat.db"
        sections = {
            "server": {
                "listen": f"127.0.0.1:{self.port}",
                "admin_listen": f"127.0.0.1:{self.admin_port}",
                "admin_token": ADMIN_TOKEN,
                "max_body_bytes": 65536,
            },
            "upstream": {"base_url": upstream_url, "timeout": "3s", "connect_timeout": "2s"},
            "store": {"path": str(self.db)},
            "auth": {"cache_ttl": "300ms"},
            "audit": {"flush_interval": "20ms", "response_prefix_bytes": 200},
            "log": {"level": "info"},
        }
        for name, body in (overrides or {}).items():
            sections.setdefault(name, {}).update(body)
        self.sections = sections
        self.tls = "server.tls" in sections
        self.config = tmp / "moat.toml"
        self.config.write_text(render_toml(sections))
        self.env = {**os.environ, **(env or {})}
        self.log = tmp / "gateway.log"
        self.proc: subprocess.Popen | None = None

    # -- process ---------------------------------------------------------
    def start(self) -> "Gateway":
        self.proc = subprocess.Popen(
            [moat_bin(), "--config", str(self.config), "serve"],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        # Readiness only; the TLS tests verify the certificate themselves.
        wait_http(f"{self.url}/healthz", self.proc, self.log, verify=not self.tls)
        return self

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    # -- CLI ---------------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(
            [moat_bin(), "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        if check and p.returncode != 0:
            raise AssertionError(f"moat {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def create_account(self, account: str, *flags: str) -> dict:
        return json.loads(self.cli("accounts", "create", "--id", account, "--json", *flags).stdout)

    def create_key(self, account: str, *flags: str) -> tuple[str, str]:
        out = json.loads(self.cli("keys", "create", "--account", account, "--json", *flags).stdout)
        return out["key"]["id"], out["secret"]

    def account_with_key(self, account: str, *key_flags: str, account_flags: tuple = ()) -> str:
        self.create_account(account, *account_flags)
        return self.create_key(account, *key_flags)[1]

    # -- admin API -----------------------------------------------------------
    def admin(self, method: str, path: str, token: str | None = ADMIN_TOKEN, **kw) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, self.admin_url + path, headers=headers, timeout=10, **kw)

    # -- audit log -------------------------------------------------------------
    def audit_rows(self, where: str = "1=1", params: tuple = ()) -> list[dict]:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(f"SELECT * FROM audit_log WHERE {where} ORDER BY seq", params)]
        finally:
            con.close()

    def wait_audit(self, where: str, params: tuple = (), n: int = 1, timeout: float = 10.0) -> list[dict]:
        """Audit rows matching `where`, waiting (bounded) for the batched writer."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.audit_rows(where, params)
            if len(rows) >= n or time.monotonic() > deadline:
                assert len(rows) >= n, f"expected {n} audit rows for {where} {params}, got {rows}"
                return rows
            time.sleep(0.05)


@pytest.fixture(scope="session")
def upstream_url():
    """The demo upstream (templated text, not a model), shared by all tests."""
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"moat-demo-upstream-{port}.log"
    proc = subprocess.Popen(
        [moat_bin(), "demo-upstream", "--listen", f"127.0.0.1:{port}"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    yield f"http://127.0.0.1:{port}/v1"
    stop(proc)


@pytest.fixture(scope="session")
def gw(upstream_url, tmp_path_factory):
    """The shared gateway (no default limits)."""
    g = Gateway(tmp_path_factory.mktemp("gw"), upstream_url).start()
    yield g
    g.stop()


@pytest.fixture
def make_gateway(upstream_url, tmp_path):
    """Factory for a dedicated gateway with config overrides."""
    started = []

    def make(overrides=None, upstream=None, env=None, start=True, name="g"):
        d = tmp_path / name
        d.mkdir()
        g = Gateway(d, upstream or upstream_url, overrides, env)
        started.append(g)
        return g.start() if start else g

    yield make
    for g in started:
        g.stop()


_counter = iter(range(1_000_000))


@pytest.fixture
def uniq():
    """A unique name per call (account ids in the shared gateway)."""
    return lambda prefix="acct": f"{prefix}_{os.getpid()}_{next(_counter)}"


@pytest.fixture
def key(gw, uniq):
    """A fresh account with an unrestricted key on the shared gateway."""
    return gw.account_with_key(uniq())
