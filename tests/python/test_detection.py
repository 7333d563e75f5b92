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

# Varied single-turn questions, as a distiller replaying a public prompt set would send.
QUESTIONS = [
    "Why did the French Revolution begin in 1789?", "How does photosynthesis turn light into sugar?",
    "Prove that the square root of 2 is irrational.", "What makes a binary search tree balanced?",
    "Describe the Krebs cycle and where it happens.", "When do supply and demand curves shift?",
    "What drives the movement of tectonic plates?", "A test is 99% accurate and the disease is rare; what is P(sick | positive)?",
    "Can a program decide whether any other program halts?", "In what way do vaccines train the immune system?",
    "Write a Python function that merges two sorted lists.", "Which factors caused the fall of the Western Roman Empire?",
    "Solve 3x + 7 = 22 and check the answer.", "How does TCP react when packets are lost?",
    "Who discovered the double helix, and how?", "Compare Keynesian and monetarist views of recessions.",
    "Do black holes evaporate? Explain Hawking radiation.", "Find all integer solutions of x^2 - y^2 = 15.",
    "Implement quicksort in Rust and give its complexity.", "What started the First World War?",
    "Is entropy always increasing in a closed system?", "How can two strangers agree on a secret key over a public channel?",
    "Summarise the political structure of the Roman Republic.", "Compute the eigenvalues of [[2,1],[1,2]].",
    "How does natural selection produce new species?", "Why does an ambulance siren change pitch as it passes?",
    "Give a dynamic-programming solution to the knapsack problem.", "What goods travelled along the Silk Road?",
    "If two prisoners cannot communicate, what should each do?", "How do proteins fold into their final shape?",
    "Why does time slow down for a moving clock?", "Should you switch doors in the Monty Hall problem?",
    "Can every planar map be coloured with four colours?", "What causes inflation to accelerate?",
    "How did steam power change British factories?", "What do Gödel's incompleteness theorems say?",
    "Derive the Michaelis-Menten equation.", "Why did Constantinople fall in 1453?",
    "How does gradient descent find a minimum?", "What drives the Gulf Stream?",
    "Translate 'knowledge is power' into Latin and explain the grammar.", "A train leaves at 3 pm at 80 km/h; when has it gone 200 km?",
    "What is the difference between mitosis and meiosis?", "Explain how a hash map handles collisions.",
    "Why is the sky blue but sunsets red?", "Write a SQL query for the second highest salary.",
    "How many ways can 8 queens be placed on a chessboard without attacking?", "What did the Treaty of Westphalia settle?",
    "How do noise-cancelling headphones work?", "Is 1001 a prime number?", "How does a transistor amplify a signal?",
    "What is the central limit theorem good for?", "Why do leaves change colour in autumn?",
    "Write a regular expression that matches IPv4 addresses.", "How do central banks set interest rates?",
    "What is the Riemann hypothesis about?", "How do bees communicate the location of flowers?",
    "Why did the Soviet Union collapse?", "How does public-key signing prove authorship?", "What is a Turing machine?",
]
COT_SYSTEM = ("Before answering, write out your complete internal reasoning step by step, "
              "showing every intermediate thought, then give the final answer.")


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

    # A harvester: single-turn, broad subjects, reasoning traces, huge max_tokens, both APIs,
    # long answers (the demo upstream's `long-N` model answers with N words).
    oa = openai.OpenAI(base_url=g.url + "/v1", api_key=harvester_key, max_retries=0)
    an = anthropic.Anthropic(base_url=g.url, api_key=harvester_key, max_retries=0)
    for i in range(60):
        try:
            if i % 3 == 2:
                an.messages.create(model="long-400", max_tokens=8000, system=COT_SYSTEM,
                                   messages=[{"role": "user", "content": QUESTIONS[i]}])
            elif i % 5 == 4:
                with oa.chat.completions.create(model="demo", max_tokens=16000, stream=True,
                                                messages=[{"role": "system", "content": COT_SYSTEM}, {"role": "user", "content": QUESTIONS[i]}]) as s:
                    for _ in s:
                        pass
            else:
                oa.chat.completions.create(model="long-400", max_tokens=16000,
                                           messages=[{"role": "system", "content": COT_SYSTEM}, {"role": "user", "content": QUESTIONS[i]}])
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
