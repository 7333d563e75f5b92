"""Detection in the live gateway agrees with `moat replay` on the same traffic.

Traffic is sent through the real gateway with the official SDKs: a customer holding real
multi-turn conversations, a harvester sending single-turn reasoning-elicitation prompts over a
broad range of subjects with large `max_tokens`, and a key probing for logprobs it may not have.
The gateway records each decision in the audit log; the log is exported, replayed offline, and
every decision must match the live one (action, risk, reasons, cluster).
"""

import json

import anthropic
import openai
import pytest

from conftest import moat_bin  # noqa: F401  (binary used through gw.cli)

SUBJECTS = [
    "the causes of the French Revolution", "how photosynthesis converts light", "the proof that sqrt(2) is irrational",
    "binary search trees", "the Krebs cycle", "supply and demand curves", "plate tectonics", "Bayes' theorem",
    "the halting problem", "how vaccines train immunity", "Fourier transforms", "the water cycle",
    "Nash equilibria", "TCP congestion control", "the structure of DNA", "Keynesian economics",
    "black hole evaporation", "the Pythagorean theorem", "quicksort", "the causes of World War I",
    "entropy in thermodynamics", "public key cryptography", "the Roman Republic", "eigenvalues",
    "natural selection", "the Doppler effect", "dynamic programming", "the Silk Road", "game theory",
    "protein folding", "special relativity", "the Monty Hall problem", "graph colouring", "inflation",
    "the Industrial Revolution", "Gödel's incompleteness", "enzyme kinetics", "the Byzantine empire",
    "gradient descent", "ocean currents",
]


def harvest_prompt(i: int) -> str:
    subject = SUBJECTS[i % len(SUBJECTS)]
    return (
        f"Question {i}: explain {subject}. Before answering, write out your complete internal "
        "reasoning step by step, showing every intermediate thought, then give the final answer."
    )


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def detect_gw(make_gateway):
    return make_gateway(name="detect")


def test_serve_and_replay_make_the_same_decisions(detect_gw, tmp_path):
    g = detect_gw
    chat_key = g.account_with_key("acct_chat_app")
    harvester_key = g.account_with_key("acct_harvester")
    prober_key = g.account_with_key("acct_prober")  # no --allow-logprobs

    # A real conversation: later turns build on earlier answers.
    chat = openai.OpenAI(base_url=g.url + "/v1", api_key=chat_key, max_retries=0)
    history = [{"role": "user", "content": "I'm planning a vegetable garden in a small backyard."}]
    for follow_up in ["Which of those grow well in shade?", "How often should I water them?",
                      "And what about the tomatoes you mentioned?", "Thanks! Any tips for slugs?"]:
        r = chat.chat.completions.create(model="demo", messages=history, max_tokens=200)
        history += [{"role": "assistant", "content": r.choices[0].message.content},
                    {"role": "user", "content": follow_up}]

    # A harvester: single-turn, broad subjects, reasoning traces, huge max_tokens, both APIs.
    oa = openai.OpenAI(base_url=g.url + "/v1", api_key=harvester_key, max_retries=0)
    an = anthropic.Anthropic(base_url=g.url, api_key=harvester_key, max_retries=0)
    for i in range(60):
        try:
            if i % 3 == 2:
                an.messages.create(model="demo", max_tokens=8000,
                                   messages=[{"role": "user", "content": harvest_prompt(i)}])
            elif i % 5 == 4:
                with oa.chat.completions.create(model="demo", max_tokens=16000, stream=True,
                                                messages=[{"role": "user", "content": harvest_prompt(i)}]) as s:
                    for _ in s:
                        pass
            else:
                oa.chat.completions.create(model="demo", max_tokens=16000,
                                           messages=[{"role": "user", "content": harvest_prompt(i)}])
        except (openai.APIStatusError, anthropic.APIStatusError):
            pass  # shadow mode refuses nothing today; enforcement may

    # A key probing for logprobs without the scope: refused (403), and still scored.
    pr = openai.OpenAI(base_url=g.url + "/v1", api_key=prober_key, max_retries=0)
    for i in range(3):
        with pytest.raises(openai.PermissionDeniedError):
            pr.chat.completions.create(model="demo", logprobs=True, top_logprobs=5, max_tokens=1,
                                       messages=[{"role": "user", "content": f"Is {i} prime? Answer yes or no."}])

    expected = 4 + 60 + 3
    live = g.wait_audit("decision IS NOT NULL", n=expected, timeout=20)
    assert len(live) == expected
    g.stop()  # flushes the audit log

    traffic, accounts, out = tmp_path / "traffic.jsonl.zst", tmp_path / "accounts.jsonl", tmp_path / "replay"
    g.cli("audit", "export", "--out", str(traffic), "--accounts-out", str(accounts))
    g.cli("replay", "--traffic", str(traffic), "--accounts", str(accounts), "--out", str(out))
    replayed = read_jsonl(out / "decisions.jsonl")

    live_decisions = [json.loads(r["decision"]) for r in live]
    assert len(replayed) == len(live_decisions)
    for n, (a, b) in enumerate(zip(live_decisions, replayed)):
        assert a["action"] == b["action"], (n, a, b)
        assert abs(a["risk"] - b["risk"]) < 1e-12, (n, a, b)
        assert a["reasons"] == b["reasons"], (n, a, b)
        assert a["cluster"] == b["cluster"], (n, a, b)

    # The comparison means something: the harvester was restricted, the customer was not.
    by_account = {}
    for row, d in zip(live, live_decisions):
        by_account.setdefault(row["account_id"], []).append(d)
    assert all(d["action"] == "allow" for d in by_account["acct_chat_app"])
    assert any(d["action"] in ("degrade", "challenge", "block") for d in by_account["acct_harvester"]), \
        [d["action"] for d in by_account["acct_harvester"]]
    assert max(d["risk"] for d in by_account["acct_harvester"]) > max(d["risk"] for d in by_account["acct_chat_app"])
