"""Evidence packs, signed checkpoints and encryption at rest, end to end with the real binary.

The dev traffic (../shared/traffic/dev) is cut to a deterministic subset of whole campaigns plus
benign accounts (every campaign-c3 line, and every line of every 25th benign account in sorted
order: ~12k exchanges), replayed through the detection engine (`moat replay`), written into an
encrypted audit log with the replay's decisions (`moat audit import`), checkpointed, and packed
per detected cluster (`moat evidence --cluster`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import REPO, moat_bin

DEV = REPO.parent / "shared" / "traffic" / "dev"
KEY1 = "11" * 32
KEY2 = "22" * 32
WRONG = "33" * 32

pytestmark = pytest.mark.skipif(not DEV.is_dir(), reason="../shared/traffic/dev not present")


def run(args, env_keys=None, check=True, **kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOAT_AUDIT")}
    if env_keys is not None:
        env["MOAT_AUDIT_KEYS"] = env_keys
    p = subprocess.run([moat_bin(), *map(str, args)], capture_output=True, text=True, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"moat {args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().split("\n") if l.strip()]


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    d = tmp_path_factory.mktemp("evidence")
    labels = read_jsonl(DEV / "labels.jsonl")
    raw = subprocess.run(["zstd", "-dc", str(DEV / "traffic.jsonl.zst")], capture_output=True, check=True).stdout
    lines = raw.decode().rstrip("\n").split("\n")
    assert len(lines) == len(labels)
    attackers = {l["account"] for l in labels if l["campaign"]}
    benign = sorted({l["account"] for l in labels} - attackers)[::25]
    keep = set(benign)
    sub, sub_labels = [], []
    for line, lab in zip(lines, labels):
        if lab["campaign"] == "c3" or lab["account"] in keep:
            sub.append(line)
            sub_labels.append(lab)
    (d / "traffic.jsonl").write_text("\n".join(sub) + "\n")
    run(["replay", "--traffic", d / "traffic.jsonl", "--accounts", DEV / "accounts.jsonl", "--out", d / "replay"])
    db = d / "audit.db"
    run(["--db", db, "audit", "import", "--traffic", d / "traffic.jsonl",
         "--decisions", d / "replay" / "decisions.jsonl"], env_keys=f"k1={KEY1}")
    run(["audit", "keygen", "--out", d / "ck"])
    run(["--db", db, "audit", "checkpoint", "--key", d / "ck"])
    clusters = defaultdict(set)
    for a in read_jsonl(d / "replay" / "accounts.jsonl"):
        if a.get("cluster"):
            clusters[a["cluster"]].add(a["account"])
    assert clusters, "the replay found no cluster in the subset"
    packs = {}
    for c in sorted(clusters):
        out = d / f"pack_{c}"
        run(["--db", db, "evidence", "--cluster", c, "--out", out], env_keys=f"k1={KEY1}")
        packs[c] = out
    return {"dir": d, "db": db, "records": [json.loads(l) for l in sub], "labels": sub_labels,
            "clusters": clusters, "packs": packs}


def test_pack_accounts_and_totals_match_labels_and_records(dev):
    by_account = defaultdict(lambda: {"exchanges": 0, "input_tokens": 0, "output_tokens": 0})
    for r in dev["records"]:
        t = by_account[r["account"]]
        t["exchanges"] += 1
        t["input_tokens"] += r["response"]["usage"]["input_tokens"]
        t["output_tokens"] += r["response"]["usage"]["output_tokens"]
    campaign_of = defaultdict(set)
    for lab in dev["labels"]:
        if lab["campaign"]:
            campaign_of[lab["account"]].add(lab["campaign"])
    for c, out in dev["packs"].items():
        pack = json.loads((out / "evidence.json").read_text())
        accounts = [a["account"] for a in pack["accounts"]]
        # The pack covers exactly the cluster's accounts, and each one is a labelled attacker.
        assert set(accounts) == dev["clusters"][c]
        assert all(campaign_of[a] for a in accounts), [a for a in accounts if not campaign_of[a]]
        campaigns = set().union(*(campaign_of[a] for a in accounts))
        # The cluster is one whole campaign: every account of that campaign in the subset.
        assert campaigns == {"c3"}
        assert set(accounts) == {a for a, cs in campaign_of.items() if "c3" in cs}
        # Totals equal a direct count over the traffic lines.
        total = {"exchanges": 0, "input_tokens": 0, "output_tokens": 0}
        for a in pack["accounts"]:
            for k in total:
                assert a["totals"][k] == by_account[a["account"]][k], (a["account"], k)
                total[k] += by_account[a["account"]][k]
        for k in total:
            assert pack["totals"][k] == total[k]
        assert pack["value"] > 0 and pack["reasons"] and pack["actions"] and pack["samples"]
        assert pack["links"]["subnets"] and pack["timeline"]


def test_verify_ok_and_tampering_named(dev, tmp_path):
    c, out = next(iter(dev["packs"].items()))
    ok = run(["evidence", "verify", out, "--pubkey", dev["dir"] / "ck.pub"])
    assert "OK" in ok.stdout and "given public key" in ok.stdout
    ok = run(["evidence", "verify", out])
    assert "embedded in the pack" in ok.stdout
    pack = json.loads((out / "evidence.json").read_text())
    rows = [i for i, l in enumerate(pack["proof"]["span"]["links"]) if l["kind"] == "row"]

    def tampered(mutate) -> subprocess.CompletedProcess:
        p = json.loads(json.dumps(pack))
        mutate(p["proof"]["span"]["links"])
        t = tmp_path / "t"
        t.mkdir(exist_ok=True)
        (t / "evidence.json").write_text(json.dumps(p))
        return run(["evidence", "verify", t], check=False)

    i = rows[len(rows) // 2]
    seq = pack["proof"]["span"]["links"][i]["row"]["seq"]

    def bump(links):
        links[i]["row"]["output_tokens"] += 1
    r = tampered(bump)
    assert r.returncode != 0 and f"record seq {seq}: content altered" in r.stderr, r.stderr

    def drop(links):
        del links[i]
    r = tampered(drop)
    assert r.returncode != 0 and f"record seq {seq}: missing" in r.stderr, r.stderr

    def body(links):
        links[i]["request_body"] = links[i]["request_body"].replace("e", "3", 1)
    r = tampered(body)
    assert r.returncode != 0 and f"record seq {seq}: disclosed body" in r.stderr, r.stderr

    other = tmp_path / "other"
    run(["audit", "keygen", "--out", other])
    r = run(["evidence", "verify", out, "--pubkey", f"{other}.pub"], check=False)
    assert r.returncode != 0 and "not by the given public key" in r.stderr


def test_html_renders_in_headless_chromium(dev, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium not installed (.ci/run installs it)")
    out = next(iter(dev["packs"].values()))
    html = (out / "index.html").read_text()
    # Self-contained: no script, no element loading anything (sample text is escaped, so any
    # "<" in the page starts a real tag).
    assert not re.search(r"<script|<link|<img|<iframe|<[a-z]+[^>]*\s(src|href)=", html)
    shot = tmp_path / "evidence.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--hide-scrollbars", "--window-size=1200,1800", f"--screenshot={shot}",
                    (out / "index.html").as_uri()], capture_output=True, timeout=120, check=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank 1200x1800 page compresses to a few KB; tables, text and the chart do not.
    assert len(data) > 40_000, len(data)


def test_bodies_encrypted_at_rest_rotation_and_wrong_key(dev, tmp_path):
    db = tmp_path / "enc.db"
    shutil.copy(dev["db"], db)
    prompt = next(m["content"] for r in dev["records"] for m in r["request"].get("messages", [])
                  if isinstance(m.get("content"), str) and len(m["content"]) > 40)
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("enc.db*"))
    assert prompt.encode() not in blob and json.dumps(prompt)[1:-1].encode() not in blob
    # Without the key: the chain verifies, the bodies are not readable and the command says so.
    v = run(["--db", db, "audit", "verify"])
    assert "not checked" in v.stdout
    e = run(["--db", db, "audit", "export", "--out", tmp_path / "x.jsonl"], check=False)
    assert e.returncode != 0 and 'key "k1"' in e.stderr and "no audit encryption key" in e.stderr
    # A wrong key under the same id: a clear error naming it.
    e = run(["--db", db, "audit", "export", "--out", tmp_path / "x.jsonl"], env_keys=f"k1={WRONG}", check=False)
    assert e.returncode != 0 and 'key "k1"' in e.stderr and "wrong key" in e.stderr
    # Rotation: k2 becomes active; new records use it, old ones stay readable with k1.
    new = tmp_path / "new.jsonl"
    line = dict(dev["records"][0])
    line["request"] = {"model": "m", "messages": [{"role": "user", "content": "rotation canary prompt 7f3a"}]}
    new.write_text(json.dumps(line) + "\n")
    run(["--db", db, "audit", "import", "--traffic", new], env_keys=f"k1={KEY1},k2={KEY2}")
    con = sqlite3.connect(db)
    ids = dict(con.execute("SELECT enc_key_id, COUNT(*) FROM audit_log GROUP BY enc_key_id").fetchall())
    con.close()
    assert ids == {"k1": len(dev["records"]), "k2": 1}
    x = tmp_path / "all.jsonl"
    run(["--db", db, "audit", "export", "--out", x], env_keys=f"k1={KEY1},k2={KEY2}")
    text = x.read_text()
    assert "rotation canary prompt 7f3a" in text and json.dumps(prompt)[1:-1] in text
    v = run(["--db", db, "audit", "verify"], env_keys=f"k1={KEY1},k2={KEY2}")
    assert f"{len(dev['records']) + 1} bodies matched" in v.stdout
    e = run(["--db", db, "audit", "export", "--out", x], env_keys=f"k2={KEY2}", check=False)
    assert e.returncode != 0 and 'key "k1"' in e.stderr


def test_checkpoint_catches_removed_newest_record(dev, tmp_path):
    db = tmp_path / "cut.db"
    shutil.copy(dev["db"], db)
    con = sqlite3.connect(db)
    (last,) = con.execute("SELECT MAX(seq) FROM audit_log").fetchone()
    (prev_hash,) = con.execute("SELECT hash FROM audit_log WHERE seq = ?", (last - 1,)).fetchone()
    # Remove the newest record and rewrite the head so the chain alone looks intact.
    con.execute("DELETE FROM audit_log WHERE seq = ?", (last,))
    con.execute("UPDATE audit_head SET seq = ?, hash = ?", (last - 1, prev_hash))
    con.commit()
    con.close()
    r = run(["--db", db, "audit", "verify"], check=False)
    assert r.returncode != 0 and f"seq {last}" in r.stderr and "checkpoint" in r.stderr, r.stderr
    cps = tmp_path / "cps.json"
    run(["--db", db, "audit", "checkpoints", "export", "--out", cps])
    assert json.loads(cps.read_text())[0]["seq"] == last


def test_live_gateway_encrypts_audit_bodies(make_gateway):
    import openai

    g = make_gateway(start=False, env={"MOAT_TEST_AUDIT_KEY": KEY1})
    g.config.write_text(g.config.read_text() + '\n[audit.encryption]\nactive = "live1"\n'
                        '[[audit.encryption.keys]]\nid = "live1"\nkey_env = "MOAT_TEST_AUDIT_KEY"\n')
    g.start()
    key = g.account_with_key("acct_live")
    c = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0)
    canary = "zebra canary prompt 91c2 for encryption"
    c.chat.completions.create(model="demo-echo", messages=[{"role": "user", "content": canary}])
    rows = g.wait_audit("1=1", n=1)
    g.stop()
    blob = b"".join(p.read_bytes() for p in g.dir.glob("moat.db*"))
    assert canary.encode() not in blob
    con = sqlite3.connect(g.db)
    assert con.execute("SELECT enc_key_id, request_body FROM audit_log WHERE seq = ?",
                       (rows[0]["seq"],)).fetchone() == ("live1", "")
    (n,) = con.execute("SELECT COUNT(*) FROM audit_log").fetchone()
    con.close()
    v = g.cli("audit", "verify")
    assert f"{n} bodies matched" in v.stdout and "not checked" not in v.stdout, v.stdout
    out = g.dir / "x.jsonl"
    g.cli("audit", "export", "--out", str(out))
    assert canary in out.read_text()


def test_encryption_config_errors_are_clear(make_gateway):
    g = make_gateway(start=False)
    base = g.config.read_text()
    g.config.write_text(base + '\n[audit.encryption]\nactive = "nope"\n'
                        '[[audit.encryption.keys]]\nid = "k1"\nkey_env = "X"\n')
    r = g.cli("check-config", check=False)
    assert r.returncode != 0 and "audit.encryption.active: no key with this id" in r.stderr, r.stderr
    g.config.write_text(base + '\n[audit.encryption]\n[[audit.encryption.keys]]\nid = "k1"\n')
    r = g.cli("check-config", check=False)
    assert r.returncode != 0 and "exactly one of key_file, key_env" in r.stderr, r.stderr
    # A valid section whose key file is missing: serve refuses to start, naming the file.
    (g.dir / "bad.key").write_text("not hex\n")
    g.config.write_text(base + '\n[audit.encryption]\n[[audit.encryption.keys]]\nid = "k1"\n'
                        f'key_file = "{g.dir / "bad.key"}"\n')
    p = subprocess.run([moat_bin(), "--config", str(g.config), "serve"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "64 hex digits" in p.stderr, p.stderr
