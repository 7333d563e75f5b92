"""Benign customers.  Each kind is a function ``run(sink, corp, knobs, scale) -> [account ids]``
registered in ``BENIGN`` with its default knobs (``accounts``, volume knobs).  Several kinds
are *hard negatives*: a legitimate product that looks like one attack on one signal
(``MIRRORS`` says which).
"""
from __future__ import annotations

import math
import random

from . import common as C
from . import wrappers as W
from .common import DAY_MS, HOUR_MS, MIN_MS, Item, a, emit_item, u
from .strategies import APP_NAMES


class BAcct:
    pass


def new_account(sink, rng, *, country=None, age="aged", verified=0.7, tier=None, domain="mixed", created=None,
                api=None, apis=None, ua_family=None, model_kind="large", ips="cloud", n_ips=None, system=None,
                max_tokens=None, temperature=None):
    ac = BAcct()
    ac.country = country or C.pick_country(rng)
    ac.tz = C.TZ.get(ac.country, 0)
    if created is None:
        if age == "aged":
            created = C.aged_created(rng, sink.start_ms, 20, 1100)
        elif age == "new":
            created = sink.start_ms - int(rng.uniform(0.5, 19) * DAY_MS)
        else:  # "fresh": created during the week, before use
            created = sink.start_ms + int(rng.uniform(0, sink.days - 1) * DAY_MS)
    ac.created = int(created)
    if tier is None:
        tier = C.tier_for(rng)
    ac.id = sink.add_account(rng, created_ms=created, tier=tier,
                             domain=C.email_domain(rng, domain) if domain in ("mixed", "webmail", "company", "university") else domain,
                             country=ac.country, verified=rng.random() < verified)
    if api is None:
        apis = apis or {"openai.chat": 0.72, "anthropic.messages": 0.25, "openai.completions": 0.03}
        api = rng.choices(list(apis), list(apis.values()))[0]
    ac.api = api
    ac.style = C.make_style(rng, api, model_kind)
    ac.keys = [sink.new_id("key_", 10) for _ in range(rng.choice([1, 1, 1, 2]))]
    if ua_family:
        swap = {"anthropic.messages": {"openai_py": "anth_py", "async_openai": "anth_py", "openai_js": "anth_js"},
                "openai.chat": {"anth_py": "openai_py", "anth_js": "openai_js"},
                "openai.completions": {"anth_py": "openai_py", "anth_js": "openai_js"}}[api]
        ua_family = swap.get(ua_family, ua_family)
    ac.uas = [C.user_agent(rng, api, ua_family)]
    if n_ips is None:
        n_ips = rng.choice([1, 1, 2, 3])
    if ips == "cloud":
        ac.ips = [C.cloud_ip(rng) for _ in range(n_ips)]
    elif ips == "residential":
        ac.ips = [C.residential_ip(rng, ac.country) for _ in range(n_ips)]
    else:
        ac.ips = list(ips)
    ac.system = system
    ac.max_tokens = max_tokens
    ac.temperature = temperature
    return ac


def send(sink, ac, ts, item, rng, kind, ip=None, ua=None, key=None):
    if ts < ac.created:
        return False
    return emit_item(sink, ac, ts, item, rng, C.label(ac.id, None, kind), key=key or ac.keys[0],
                     ua=ua or ac.uas[0], ip=ip or rng.choice(ac.ips))


def n_acc(k, scale):
    return max(1, int(round(k["accounts"] * scale)))


def day_weights(sink, ac, profile="human", weekend=0.7, rng=None, day_from=0.0):
    return C.hourly_weights(sink.start_ms, sink.days, ac.tz, profile, weekend=weekend, jitter_rng=rng,
                            day_from=max(day_from, (ac.created - sink.start_ms) / DAY_MS))


def conversation(rng, corp, max_turns=6):
    """A real multi-turn conversation (ShareGPT): list of requests, each the history so far."""
    conv = rng.choice(corp.multi_turn)
    k = rng.randrange(1, min(max_turns, len(conv) // 2) + 1)
    return [[{"role": r, "content": x[:3000]} for r, x in conv[: 2 * j + 1]] for j in range(k)]


def user_prompt(rng, corp):
    x = rng.random()
    if x < 0.62:
        return corp.broad_prompt(rng)
    if x < 0.85:
        return corp.chat_line(rng)
    if x < 0.93:
        return corp.code_item(rng)
    return corp.mgsm.sample(rng, "en")


# ============================================================================= kinds

def chat_app(sink, corp, k, scale, kind="chat_app", with_ids=True):
    """A consumer chat app: many end users in real multi-turn conversations, a human daily
    rhythm, one backend.  With end-user ids (``user`` / ``safety_identifier`` /
    ``metadata.user_id``) or without."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"{kind}:{i}")
        name = rng.choice(APP_NAMES)
        ac = new_account(sink, rng, age="aged", verified=0.95, tier=rng.choice(["build", "pro", "scale", "enterprise"]),
                         domain="company", ua_family=rng.choice(["openai_py", "openai_js", "anth_py", "anth_js", "litellm"]),
                         apis={"openai.chat": 0.65, "anthropic.messages": 0.35}, n_ips=rng.choice([1, 2, 4]),
                         system=f"You are {name}, a helpful assistant in the {name} app. "
                                + rng.choice(["Be friendly and concise.", "Format answers with Markdown.",
                                              "Keep answers under 300 words unless asked.", "Today's date is provided by the app."]),
                         max_tokens=rng.choice([None, 1024, 2048]), temperature=rng.choice([0.7, 0.8, 1.0, None]))
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.7))
        users = [f"{rng.choice(['u', 'usr', 'user', ''])}{rng.getrandbits(36):09x}" for _ in range(int(vol * 2) + 20)]
        w = day_weights(sink, ac, "human", rng.uniform(0.7, 1.2), rng)
        sessions = int(vol * sink.days / 2.4)
        for s in C.times_from_weights(rng, sessions, sink.start_ms, w):
            uid = rng.choice(users) if with_ids else None
            t = s
            if rng.random() < 0.35:
                reqs = [[u(user_prompt(rng, corp))]]
            else:
                reqs = conversation(rng, corp)
            for turns in reqs:
                send(sink, ac, t, Item(turns, "chat", user_id=uid), rng, kind)
                t += C.gap_ms(rng, 50, 0.9, 4)
        out.append(ac.id)
    return out


def chat_app_anon(sink, corp, k, scale):
    return chat_app(sink, corp, k, scale, kind="chat_app_anon", with_ids=False)


def answer_engine(sink, corp, k, scale):
    """Search-style answer box: anonymous, broad, single-turn questions with ordinary
    parameters at a human rhythm.  Hard negative for broad_sampling (breadth, single-turn)."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"answer_engine:{i}")
        ac = new_account(sink, rng, age="aged", verified=1.0, tier=rng.choice(["scale", "enterprise", "pro"]),
                         domain="company", ua_family=rng.choice(["go", "openai_py", "custom", "okhttp"]),
                         apis={"openai.chat": 0.8, "anthropic.messages": 0.2}, n_ips=rng.choice([2, 3, 4]),
                         system=rng.choice(["Answer the user's question directly and accurately. If unsure, say so.",
                                            "You power an answer box on a search page. Give a complete but compact answer.",
                                            None]),
                         max_tokens=rng.choice([None, 800, 1500]), temperature=rng.choice([0.3, 0.5, None]))
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.5))
        w = day_weights(sink, ac, "human", 0.9, rng)
        for ts in C.times_from_weights(rng, int(vol * sink.days), sink.start_ms, w):
            q = corp.broad_prompt(rng) if rng.random() < 0.8 else corp.chat_line(rng)
            send(sink, ac, ts, Item([u(q)], "chat"), rng, "answer_engine")
        out.append(ac.id)
    return out


def individual_dev(sink, corp, k, scale):
    """Individual developers: mostly small, irregular, a few active days, assorted prompts and
    API features (tools, logprobs, n, reasoning), residential addresses, mixed account ages."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"individual_dev:{i}")
        x = rng.random()
        age = "aged" if x < 0.72 else "new" if x < 0.93 else "fresh"
        ac = new_account(sink, rng, age=age, verified=0.55 if age == "aged" else 0.25, domain="mixed",
                         ips="residential", n_ips=rng.choice([1, 1, 2, 3]),
                         tier=C.tier_for(rng, {"free": 0.7, "build": 0.28, "pro": 0.02}),
                         max_tokens=rng.choice([None, None, 256, 512, 1000, 2048, 4096]),
                         temperature=rng.choice([None, None, 0, 0.2, 0.7, 1]))
        if rng.random() < 0.3:
            ac.uas.append(C.user_agent(rng, ac.api, "curl"))
        if rng.random() < 0.2:
            ac.ips.append(C.cloud_ip(rng))
        total = int(min(k["max_weekly"], rng.lognormvariate(math.log(k["median_weekly"]), 1.3)))
        days = sorted(rng.sample(range(int(sink.days)), rng.randint(1, min(5, int(sink.days)))))
        prof = rng.choice(["business", "evening", "human"])
        habits = rng.random()
        sys_p = rng.choice([None, None, None, "You are a helpful assistant.", "You are a concise assistant.",
                            "You are an expert Python developer."])
        n = 0
        while n < total:
            d = rng.choice(days)
            h = rng.choices(range(24), C.PROFILES[prof])[0]
            s = sink.start_ms + d * DAY_MS + int(((h - ac.tz) % 24) * HOUR_MS) + rng.randrange(HOUR_MS)
            burst = rng.randint(1, 12)
            t = s
            for _ in range(burst):
                item = _dev_item(rng, corp, habits)
                item.system = sys_p if item.system is None else item.system
                ip = ac.ips[0] if rng.random() < 0.75 else rng.choice(ac.ips)
                send(sink, ac, t, item, rng, "individual_dev", ip=ip, ua=rng.choice(ac.uas))
                t += C.gap_ms(rng, 40, 1.1, 1)
                n += 1
        out.append(ac.id)
    return out


def _dev_item(rng, corp, habits):
    x = rng.random()
    if x < 0.03:
        return Item([u(rng.choice(["hello", "test", "Hi!", "ping", "say hi", "what model are you?"]))], "casual")
    if x < 0.06 and habits > 0.5:
        return Item([u(corp.chat_line(rng))], "probe", params={"max_tokens": 1, "logprobs": True, "top_logprobs": 5})
    if x < 0.09:
        return Item([u(corp.broad_prompt(rng))], "chat", params={"n": rng.choice([2, 3, 4])})
    if x < 0.13:
        return Item([u(corp.reasoning_item(rng))], "cot", params={"reasoning_effort": rng.choice(["low", "medium", "high"])})
    if x < 0.16:
        tools = rng.choice(W.AGENT_TOOLSETS)
        return Item([u(corp.code_item(rng))], "tool_call", tools=tools, tool_call=True)
    if x < 0.3:
        conv = conversation(rng, corp, 3)
        return Item(conv[-1], "chat")
    if x < 0.5:
        return Item([u(corp.code_item(rng))], "code")
    return Item([u(user_prompt(rng, corp))], "chat")


def power_user(sink, corp, k, scale):
    """People who use the API every day from home for work and study: tens of requests a day at a
    human rhythm, stable residential addresses, aged accounts, often asking for thorough
    explanations.  Hard negative for low_and_slow."""
    out = []
    styles = ["{q}", "{q}", "{q}", "{q}\n\nCan you explain it in detail?", "{q}\n\nPlease explain like I'm new to this.",
              "{q}\n\nGive me a thorough answer with examples."]
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"power_user:{i}")
        ac = new_account(sink, rng, age="aged", verified=0.8, domain="mixed", ips="residential", n_ips=rng.choice([1, 2]),
                         max_tokens=rng.choice([None, 2048, 4096]), temperature=rng.choice([None, 0.7]),
                         system=rng.choice([None, None, "You are a helpful assistant.", "Answer like a senior engineer."]))
        per_day = rng.uniform(k["min_daily"], k["max_daily"])
        w = day_weights(sink, ac, rng.choice(["human", "evening", "business"]), rng.uniform(0.3, 1.2), rng)
        style = rng.choice(styles)
        sessions = int(per_day * sink.days / 2.2)
        for s in C.times_from_weights(rng, sessions, sink.start_ms, w):
            t = s
            if rng.random() < 0.45:
                reqs = conversation(rng, corp, 4)
            else:
                reqs = [[u(style.format(q=user_prompt(rng, corp)))]]
            for turns in reqs:
                send(sink, ac, t, Item(turns, "chat"), rng, "power_user")
                t += C.gap_ms(rng, 70, 0.9, 5)
        out.append(ac.id)
    return out


BATCH_TEMPLATES = [
    ("Summarize the following customer conversation in 2-3 sentences for the support dashboard. Mention the customer's main issue and the outcome.\n\n{text}", "summary", "chitchat_conv"),
    ("Extract all product names, people and organisations from the text below. Return JSON with keys \"products\", \"people\", \"organisations\".\n\nText:\n{text}", "extract", "answer"),
    ("Write a 60-word product description for an online store listing. Product: {text}", "summary", "topic"),
    ("Classify the sentiment of this review as positive, negative or neutral and give a one-sentence reason.\n\nReview: {text}", "extract", "chat"),
    ("Rewrite the following paragraph in plain English at an 8th-grade reading level. Keep all facts.\n\n{text}", "summary", "answer"),
    ("Generate 5 SEO keywords and a meta description (max 155 characters) for this article:\n\n{text}", "extract", "answer"),
    ("Translate the following support macro into German, French and Spanish. Return JSON keyed by language code.\n\n{text}", "translate", "chat"),
    ("Tag this support ticket with up to 3 labels from [billing, login, bug, feature_request, shipping, refund, other]. Reply with a JSON list only.\n\nTicket: {text}", "extract", "chat"),
]


def _batch_text(rng, corp, src):
    if src == "chitchat_conv":
        conv = rng.choice(corp.chitchat_convs)
        return "\n".join(f"{'Customer' if j % 2 == 0 else 'Agent'}: {x}" for j, x in enumerate(conv[:12]))
    if src == "answer":
        return rng.choice(corp.answers)[:2500]
    if src == "topic":
        return rng.choice(W.TOPICS) + " " + rng.choice(["starter kit", "guidebook", "online course", "planner", "toolkit"])
    return corp.chat_line(rng)


def batch_pipeline(sink, corp, k, scale):
    """Nightly batch jobs: one template per account run over a day's records at a fixed hour,
    rapid sequential requests, temperature 0, fixed max_tokens, stable server address."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"batch_pipeline:{i}")
        tmpl, answer, src = rng.choice(BATCH_TEMPLATES)
        ac = new_account(sink, rng, age="aged", verified=0.9, domain="company", n_ips=1,
                         ua_family=rng.choice(["requests", "httpx", "custom", "openai_py", "go", "aiohttp"]),
                         apis={"openai.chat": 0.75, "anthropic.messages": 0.2, "openai.completions": 0.05},
                         model_kind=rng.choice(["small", "large"]), max_tokens=rng.choice([256, 400, 512, 800]),
                         temperature=0)
        hour_local = rng.choice([0, 1, 2, 3, 4, 22, 23])
        per_night = int(min(k["max_nightly"], rng.lognormvariate(math.log(k["median_nightly"]), 0.8)))
        weekdays_only = rng.random() < 0.4
        for d in range(int(sink.days)):
            day0 = sink.start_ms + d * DAY_MS
            if weekdays_only and C.datetime.fromtimestamp(day0 / 1000, tz=C.timezone.utc).weekday() >= 5:
                continue
            t = day0 + int(((hour_local - ac.tz) % 24) * HOUR_MS) + rng.randrange(0, 10 * MIN_MS)
            n = int(per_night * rng.uniform(0.7, 1.3))
            conc = rng.choice([1, 1, 4, 8])
            for j in range(n):
                text = _batch_text(rng, corp, src)
                send(sink, ac, t, Item([u(tmpl.format(text=text))], answer), rng, "batch_pipeline")
                t += int(rng.uniform(300, 2500) / conc)
        out.append(ac.id)
    return out


def benchmark_runner(sink, corp, k, scale):
    """Researchers running benchmarks: a few bursts at high concurrency, one benchmark per run
    (GSM-style maths with a CoT instruction, multilingual GSM with the benchmark's own
    instruction, reasoning-gym tasks, HumanEval completions), temperature 0, sometimes n>1
    (self-consistency).  Hard negative for cot_multilingual / high-rate templated reasoning."""
    out = []
    cot_suffixes = ["\n\nLet's think step by step.", "\n\nThink step by step, then give the final answer after '####'.",
                    "\nA: Let's think step by step.", "\n\nShow your reasoning, then write the answer in \\boxed{}.", ""]
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"benchmark_runner:{i}")
        ac = new_account(sink, rng, age=rng.choice(["aged", "aged", "new"]), verified=0.7,
                         domain=rng.choice(["university", "university", "company"]), n_ips=1,
                         ua_family=rng.choice(["openai_py", "async_openai", "litellm", "anth_py", "custom", "httpx"]),
                         apis={"openai.chat": 0.7, "anthropic.messages": 0.25, "openai.completions": 0.05},
                         max_tokens=rng.choice([512, 1024, 2048, 4096]), temperature=0)
        runs = rng.randint(1, k["max_runs"])
        for r in range(runs):
            bench = rng.choice(["gsm", "mgsm", "rg", "humaneval", "gsm"])
            size = int(rng.uniform(k["min_run"], k["max_run"]))
            suffix = rng.choice(cot_suffixes)
            nsamp = rng.choice([None, None, None, 5])
            t = sink.start_ms + int(rng.uniform(0.1, sink.days - 0.3) * DAY_MS)
            conc = rng.choice([4, 8, 16, 32])
            langs = rng.sample(corp.mgsm.languages, 6) if bench == "mgsm" else ["en"]
            task = rng.choice(corp.rg_tasks)
            for j in range(size):
                if bench == "gsm":
                    text = "Q: " + corp.mgsm.sample(rng, "en") + suffix
                elif bench == "mgsm":
                    lang = langs[j * len(langs) // size]
                    text = corp.mgsm.instructions.get(lang, "") + "\n\n" + corp.mgsm.sample(rng, lang)
                elif bench == "rg":
                    text = rng.choice(corp.rg[task])["question"] + suffix
                else:
                    text = "Complete the following Python function.\n\n" + corp.humaneval[j % len(corp.humaneval)]["prompt"]
                p = {"n": nsamp} if nsamp else {}
                if rng.random() < 0.3:
                    p["seed"] = 1234
                send(sink, ac, t, Item([u(text.strip())], "bench_cot" if suffix or bench == "mgsm" else "code", params=p), rng,
                     "benchmark_runner")
                t += int(rng.expovariate(conc / 1500.0)) + 20
        out.append(ac.id)
    return out


def loglik_eval(sink, corp, k, scale):
    """lm-evaluation-harness-style likelihood scoring: completions with ``echo`` + ``logprobs`` and
    ``max_tokens`` 0/1 over (context, continuation) pairs, or chat multiple-choice with
    ``max_tokens`` 1 + ``top_logprobs``; every question scored once per choice, in bursts.
    Hard negative for param_probe (max_tokens 1, logprobs)."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"loglik_eval:{i}")
        chat = rng.random() < 0.4
        ac = new_account(sink, rng, age="aged", verified=0.8, domain=rng.choice(["university", "company"]), n_ips=1,
                         api="openai.chat" if chat else "openai.completions",
                         ua_family=rng.choice(["openai_py", "async_openai", "custom", "requests"]), temperature=0)
        runs = rng.randint(1, 3)
        for r in range(runs):
            t = sink.start_ms + int(rng.uniform(0.1, sink.days - 0.3) * DAY_MS)
            nq = int(rng.uniform(k["min_q"], k["max_q"]))
            for j in range(nq):
                q = corp.reasoning_item(rng) if rng.random() < 0.5 else corp.mgsm.sample(rng, "en")
                choices = [str(rng.randrange(1, 500)) for _ in range(4)]
                if chat:
                    text = q + "\n\n" + "\n".join(f"{'ABCD'[c]}. {choices[c]}" for c in range(4)) + "\nAnswer with the letter only.\nAnswer:"
                    send(sink, ac, t, Item([u(text)], "loglik", params={"max_tokens": 1, "logprobs": True, "top_logprobs": 5}),
                         rng, "loglik_eval")
                    t += int(rng.uniform(40, 400))
                else:
                    for c in choices:
                        text = f"Question: {q}\nAnswer: {c}"
                        send(sink, ac, t, Item([u(text)], "loglik",
                                               params={"max_tokens": rng.choice([0, 1]) if r == 0 else 1,
                                                       "logprobs": True, "top_logprobs": rng.choice([0, 1, 5]), "echo": True}),
                             rng, "loglik_eval")
                        t += int(rng.uniform(30, 300))
        out.append(ac.id)
    return out


def classifier_service(sink, corp, k, scale):
    """A classification service: a FIXED ``logit_bias`` over the few label tokens, ``max_tokens``
    1, temperature 0, a one-line classification system prompt, customer messages as input.
    Hard negative for param_probe's logit-bias walk."""
    out = []
    labelsets = [["positive", "negative", "neutral"], ["yes", "no"], ["spam", "ham"], ["billing", "technical", "account", "other"],
                 ["urgent", "normal"], ["A", "B", "C", "D"], ["true", "false"]]
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"classifier_service:{i}")
        labels = rng.choice(labelsets)
        bias = {rng.randrange(300, 90000): 100 for _ in labels}
        ac = new_account(sink, rng, age="aged", verified=0.9, domain="company", n_ips=rng.choice([1, 2]),
                         api=rng.choice(["openai.chat", "openai.chat", "openai.completions"]),
                         ua_family=rng.choice(["openai_py", "go", "requests", "custom"]), model_kind="small",
                         system=f"Classify the user's message. Answer with exactly one word: {', '.join(labels)}.",
                         temperature=0)
        with_lp = rng.random() < 0.4
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.6))
        w = day_weights(sink, ac, rng.choice(["human", "business"]), 0.8, rng)
        for ts in C.times_from_weights(rng, int(vol * sink.days), sink.start_ms, w):
            p = {"max_tokens": 1, "logit_bias": bias, "temperature": 0}
            if with_lp:
                p.update({"logprobs": True, "top_logprobs": len(labels)})
            text = corp.chat_line(rng) if rng.random() < 0.7 else corp.broad_prompt(rng)[:600]
            send(sink, ac, ts, Item([u(text)], "classify", params=p), rng, "classifier_service")
        out.append(ac.id)
    return out


TUTOR_FOLLOWUPS = ["I don't get the second step, can you explain it differently?", "Can you check my answer? I got {n}.",
                   "Why do we divide there?", "Can you give me a similar problem to practice?", "ok thanks!",
                   "Can you explain why that works?", "Wait, where did the {n} come from?", "Can you show the work again slower?"]


def tutoring_app(sink, corp, k, scale):
    """A homework tutor: step-by-step maths (GSM-style problems) with a tutor system prompt that
    asks to show the work, students' follow-ups, end-user ids, evening peaks.  Hard negative
    for CoT elicitation."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"tutoring_app:{i}")
        lang = rng.choice(["en", "en", "en", "es", "pt", "hi", "id", "fr"])
        ac = new_account(sink, rng, age="aged", verified=0.95, domain="company", n_ips=rng.choice([1, 2]),
                         apis={"openai.chat": 0.7, "anthropic.messages": 0.3},
                         ua_family=rng.choice(["openai_js", "openai_py", "anth_js", "anth_py"]),
                         system=rng.choice([
                             "You are a patient math tutor for middle-school students. Solve problems step by step, show your work, and explain why each step is needed. Never just give the answer.",
                             "You are MathPal. Walk the student through the problem step-by-step and check their understanding.",
                             "You help students with math homework. Think step by step and explain your reasoning in simple words."]),
                         max_tokens=rng.choice([None, 1200]), temperature=rng.choice([0.3, 0.5, None]),
                         country={"es": "MX", "pt": "BR", "hi": "IN", "id": "ID", "fr": "FR"}.get(lang, "US"))
        if rng.random() < 0.3:
            ac.uas.append(C.user_agent(rng, ac.api))
        users = [f"stu_{rng.getrandbits(32):08x}" for _ in range(rng.randrange(100, 600))]
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.5))
        w = day_weights(sink, ac, "evening", 0.6, rng)
        for s in C.times_from_weights(rng, int(vol * sink.days / 2.5), sink.start_ms, w):
            uid = rng.choice(users)
            nturns = rng.choice([1, 1, 2, 3, 4])
            if nturns == 1:
                q, ans = corp.mgsm.sample(rng, lang), ""
            else:
                q, ans = corp.mgsm.pair(rng, lang)
            turns = [u(q)]
            t = s
            for j in range(nturns):
                send(sink, ac, t, Item(list(turns), "cot", user_id=uid), rng, "tutoring_app")
                turns.append(a(ans if j == 0 else rng.choice(["Sure! Let's look at that part again. " + ans[: len(ans) // 2],
                                                             "Good question. " + ans[len(ans) // 3:]])))
                turns.append(u(rng.choice(TUTOR_FOLLOWUPS).format(n=rng.randrange(2, 300))))
                t += C.gap_ms(rng, 90, 0.7, 10)
        out.append(ac.id)
    return out


ML_FOLLOWUPS = {
    "zh": ["谢谢！能再详细解释一下吗？", "为什么是这样？", "可以举个例子吗？", "好的，明白了。"],
    "ja": ["ありがとう！もう少し詳しく説明してもらえますか？", "なぜそうなるのですか？", "例を挙げてください。"],
    "ko": ["고마워요! 좀 더 자세히 설명해 줄 수 있어요?", "왜 그런가요?", "예를 들어 주세요."],
    "es": ["¡Gracias! ¿Puedes explicarlo con más detalle?", "¿Por qué es así?", "Dame un ejemplo, por favor."],
    "pt": ["Obrigado! Pode explicar melhor?", "Por que isso acontece?", "Pode dar um exemplo?"],
    "de": ["Danke! Kannst du das genauer erklären?", "Warum ist das so?", "Gib mir bitte ein Beispiel."],
    "fr": ["Merci ! Tu peux détailler ?", "Pourquoi est-ce comme ça ?", "Donne-moi un exemple, s'il te plaît."],
    "ru": ["Спасибо! Можешь объяснить подробнее?", "Почему так?", "Приведи пример, пожалуйста."],
    "ar": ["شكراً! هل يمكنك الشرح بتفصيل أكثر؟", "لماذا؟", "أعطني مثالاً من فضلك."],
    "hi": ["धन्यवाद! क्या आप इसे और विस्तार से समझा सकते हैं?", "ऐसा क्यों है?", "एक उदाहरण दीजिए।"],
    "tr": ["Teşekkürler! Biraz daha açıklayabilir misin?", "Neden böyle?", "Bir örnek verir misin?"],
    "vi": ["Cảm ơn! Bạn giải thích kỹ hơn được không?", "Tại sao lại như vậy?", "Cho mình một ví dụ nhé."],
    "id": ["Terima kasih! Bisa dijelaskan lebih rinci?", "Kenapa begitu?", "Beri contoh, ya."],
    "it": ["Grazie! Puoi spiegarlo meglio?", "Perché è così?", "Fammi un esempio, per favore."],
}
ML_COUNTRY = {"zh": "TW", "ja": "JP", "ko": "KR", "es": "MX", "pt": "BR", "de": "DE", "fr": "FR", "ru": "UA",
              "ar": "EG", "hi": "IN", "tr": "TR", "vi": "VN", "id": "ID", "it": "IT"}


def multilingual_chat(sink, corp, k, scale):
    """A chat app for non-English users (one or two languages per app): native-language prompts
    (ShareGPT's non-English user turns where there are enough, GSM-style homework in the
    language otherwise), follow-ups asking for more detail, end-user ids.  Hard negative for
    multilingual CoT harvest."""
    out = []
    langs = list(ML_FOLLOWUPS)
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"multilingual_chat:{i}")
        lang = langs[i % len(langs)] if i < len(langs) else rng.choice(langs)
        ac = new_account(sink, rng, age="aged", verified=0.85, domain="company", n_ips=rng.choice([1, 2]),
                         country=ML_COUNTRY[lang], apis={"openai.chat": 0.7, "anthropic.messages": 0.3},
                         ua_family=rng.choice(["openai_js", "openai_py", "anth_py", "okhttp", "go"]),
                         system=f"You are a helpful assistant. Always answer in {W.LANG_NAMES[lang][0]}.",
                         temperature=rng.choice([0.7, None]))
        users = [f"{rng.getrandbits(40):010x}" for _ in range(rng.randrange(100, 800))]
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.6))
        w = day_weights(sink, ac, "human", 0.9, rng)
        for s in C.times_from_weights(rng, int(vol * sink.days / 2), sink.start_ms, w):
            uid = rng.choice(users) if i % 2 == 0 else None
            native = corp.non_english.get(lang)
            nturns = rng.choice([1, 1, 2, 3])
            if native and rng.random() < 0.6:
                q, ans = rng.choice(native), None
                nturns = 1
            else:
                q, ans = corp.mgsm.pair(rng, lang) if nturns > 1 else (corp.mgsm.sample(rng, lang), None)
            turns = [u(q)]
            t = s
            for j in range(nturns):
                send(sink, ac, t, Item(list(turns), "chat", user_id=uid), rng, "multilingual_chat")
                turns.append(a(ans if j == 0 else ans[len(ans) // 2:] + " " + ans[: len(ans) // 2]))
                turns.append(u(rng.choice(ML_FOLLOWUPS[lang])))
                t += C.gap_ms(rng, 60, 0.8, 5)
        out.append(ac.id)
    return out


def coding_agent(sink, corp, k, scale):
    """A coding-agent product: real agent loops (each request carries the whole history: the
    model's previous tool calls and the tools' results), many rapid steps per task, a fixed
    product tool set; some products enable ``thinking``.  Hard negative for agentic_harvest
    and (with thinking) native_thinking."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"coding_agent:{i}")
        name = rng.choice(["Forge", "Patchwork", "Codewright", "Shipyard", "Refactorly", "Devloop", "Branchbot"])
        ac = new_account(sink, rng, age="aged", verified=0.95, domain="company", n_ips=rng.choice([2, 3, 5]),
                         apis={"anthropic.messages": 0.55, "openai.chat": 0.45},
                         ua_family=rng.choice(["anth_js", "anth_py", "openai_js", "openai_py", "custom"]),
                         system=f"You are {name}, an autonomous coding agent. Use the tools to inspect and change the user's repository. Make minimal, well-tested changes.",
                         max_tokens=rng.choice([4096, 8192]), temperature=rng.choice([0, 0.2, None]))
        tools = rng.choice(W.AGENT_TOOLSETS[:2])
        thinking = rng.choice([None, None, 2048, 4096, 8000])
        sessions_day = min(k["max_sessions"], rng.lognormvariate(math.log(k["median_sessions"]), 0.6))
        w = day_weights(sink, ac, rng.choice(["business", "human"]), 0.5, rng)
        for s in C.times_from_weights(rng, int(sessions_day * sink.days), sink.start_ms, w):
            he = rng.choice(corp.humaneval)
            task = rng.choice(["Make this function pass its tests:\n\n{c}", "Implement this and add tests:\n\n{c}",
                               "{issue}"]).format(c=he["prompt"], issue=rng.choice(corp.code_prompts)[:1500])
            turns = [u(task)]
            t = s
            steps = rng.randint(3, k["max_steps"])
            for j in range(steps):
                last = j == steps - 1
                p = {"thinking": thinking} if thinking and ac.api == "anthropic.messages" else {}
                send(sink, ac, t, Item(list(turns), "code" if last else "tool_call", tools=tools, tool_call=not last,
                                       params=p), rng, "coding_agent")
                if last:
                    break
                tool = rng.choice(tools)
                cid = f"toolu_{rng.getrandbits(48):012x}"
                from .strategies import _fake_arg, _fake_result
                args = {pp: _fake_arg(rng, pp, he, tool["name"]) for pp in tool["parameters"].get("properties", {})}
                turns.append({"role": "assistant", "content": rng.choice([None, "Let me look at the code first.", "Running the tests."]),
                              "tool_calls": [{"id": cid, "name": tool["name"], "arguments": args}]})
                turns.append({"role": "tool", "tool_call_id": cid, "content": _fake_result(rng, corp, he)[:3000]})
                t += C.gap_ms(rng, 6, 0.7, 0.5)
                if rng.random() < 0.08:  # the human steers
                    turns.append(u(rng.choice(["Also update the README.", "Don't change the public API.", "Use pathlib instead.",
                                               "Looks good, now run the full suite."])))
                    t += C.gap_ms(rng, 60, 0.8, 5)
        out.append(ac.id)
    return out


ESSAY_RUBRIC = ("You are an assistant for teachers. Grade student essays against the rubric: Thesis (1-4), Evidence (1-4), "
                "Organization (1-4), Conventions (1-4). For each criterion give the score and one sentence of feedback "
                "addressed to the student, then a total and two suggestions for improvement.")


def essay_grading(sink, corp, k, scale):
    """Essay grading for teachers: rubric scores with justifications for student essays, batches
    in the evening, teacher ids as end users.  Hard negative for judge_harvest."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"essay_grading:{i}")
        ac = new_account(sink, rng, age="aged", verified=0.9, domain="company", n_ips=1,
                         apis={"openai.chat": 0.6, "anthropic.messages": 0.4},
                         ua_family=rng.choice(["openai_py", "anth_py", "openai_js"]), system=ESSAY_RUBRIC,
                         temperature=rng.choice([0, 0.2]), max_tokens=rng.choice([700, 1000]))
        teachers = [f"t{rng.getrandbits(24):06x}" for _ in range(rng.randrange(10, 80))]
        w = day_weights(sink, ac, "evening", 1.2, rng)
        batches = int(rng.uniform(k["min_batches"], k["max_batches"]))
        for s in C.times_from_weights(rng, batches, sink.start_ms, w):
            uid = rng.choice(teachers)
            prompt = rng.choice(corp.short_english)
            t = s
            for j in range(rng.randint(8, 35)):
                essay = rng.choice(corp.answers)[:3500]
                text = f"Assignment prompt: {prompt}\n\nStudent essay:\n{essay}\n\nGrade the essay using the rubric."
                send(sink, ac, t, Item([u(text)], "essay_feedback", user_id=uid), rng, "essay_grading")
                t += C.gap_ms(rng, 25, 0.6, 3)
        out.append(ac.id)
    return out


MT_BENCH_JUDGE = ("Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the "
                  "user question displayed below. Choose the assistant that follows the user's instructions and answers the user's "
                  "question better. Begin your evaluation by comparing the two responses and provide a short explanation. Output your "
                  "final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is "
                  "better, and \"[[C]]\" for a tie.")


def judge_eval_platform(sink, corp, k, scale):
    """An LLM-as-judge evaluation platform run by a product team on its OWN outputs: nightly
    pairwise comparisons of two versions of its assistant (MT-bench-style judge prompt) and
    rubric scoring of its support replies, on its own fixed prompt set.  Hard negative for
    judge_harvest."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"judge_eval_platform:{i}")
        ac = new_account(sink, rng, age="aged", verified=1.0, domain="company", n_ips=1,
                         api="openai.chat", ua_family=rng.choice(["openai_py", "async_openai", "litellm", "custom"]),
                         system=MT_BENCH_JUDGE, temperature=0, max_tokens=rng.choice([512, 1024]))
        prompts = [rng.choice(corp.qa_pairs) for _ in range(rng.randrange(60, 300))]
        runs = rng.randint(k["min_runs"], k["max_runs"])
        for r in range(runs):
            day = rng.randrange(int(sink.days))
            t = sink.start_ms + day * DAY_MS + int(((rng.choice([1, 2, 3, 20, 21]) - ac.tz) % 24) * HOUR_MS)
            for q, ans in prompts:
                other = ans[: int(len(ans) * rng.uniform(0.5, 0.9))]
                a1, a2 = (ans, other) if rng.random() < 0.5 else (other, ans)
                text = (f"[User Question]\n{q[:2000]}\n\n[The Start of Assistant A's Answer]\n{a1[:2000]}\n[The End of Assistant A's Answer]\n\n"
                        f"[The Start of Assistant B's Answer]\n{a2[:2000]}\n[The End of Assistant B's Answer]")
                send(sink, ac, t, Item([u(text)], "judge_short"), rng, "judge_eval_platform")
                t += int(rng.uniform(200, 3000))
        out.append(ac.id)
    return out


QA_TEMPLATES = [
    "Generate {n} realistic customer messages for the {product} support chatbot covering these intents: {intents}. Include typos and informal language in some. Return a JSON list of objects with fields \"message\" and \"expected_intent\".",
    "We are testing the signup form of {product}. Write {n} edge-case inputs for the fields name, email and phone (unicode, very long values, injection attempts, empty values). Return JSON.",
    "Create {n} test conversations (2-4 turns) between a user and the {product} assistant where the user asks about {intents}. Return JSON for our regression suite.",
    "Write {n} product reviews for {product} with star ratings 1-5, evenly spread, to test our sentiment pipeline. JSON list with \"stars\" and \"text\".",
]


def qa_testdata(sink, corp, k, scale):
    """A QA team generating synthetic test data for its own app (one product, a few templates,
    JSON output, office hours, small volume).  Hard negative for synth_data."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"qa_testdata:{i}")
        product = rng.choice(APP_NAMES)
        intents = ", ".join(rng.sample(["billing", "refund", "password reset", "shipping delay", "cancel subscription",
                                        "upgrade plan", "bug report", "feature request", "account deletion"], 4))
        ac = new_account(sink, rng, age="aged", verified=0.9, domain="company", n_ips=1,
                         ua_family=rng.choice(["openai_py", "requests", "anth_py", "curl"]), temperature=rng.choice([0.8, 1.0]),
                         max_tokens=rng.choice([2000, 4000]))
        tmpls = rng.sample(QA_TEMPLATES, 2)
        days = rng.sample(range(int(sink.days)), rng.randint(1, 4))
        for d in days:
            t = sink.start_ms + d * DAY_MS + int(((rng.uniform(9, 17) - ac.tz) % 24) * HOUR_MS)
            for j in range(int(rng.uniform(k["min_day"], k["max_day"]))):
                text = rng.choice(tmpls).format(n=rng.choice([10, 20, 25, 50]), product=product, intents=intents)
                send(sink, ac, t, Item([u(text)], "testdata"), rng, "qa_testdata")
                t += C.gap_ms(rng, 30, 1.0, 2)
        out.append(ac.id)
    return out


def translation_service(sink, corp, k, scale):
    """A translation service: documents and messages translated between many language pairs,
    output about as long as the input."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"translation_service:{i}")
        ac = new_account(sink, rng, age="aged", verified=0.9, domain="company", n_ips=rng.choice([1, 2]),
                         ua_family=rng.choice(["go", "okhttp", "openai_py", "custom", "axios"]), model_kind="small",
                         system=rng.choice(["You are a professional translator. Translate faithfully; keep formatting and placeholders.",
                                            "Translate the user's text. Output only the translation.", None]),
                         temperature=rng.choice([0, 0.3]))
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.6))
        w = day_weights(sink, ac, rng.choice(["business", "human"]), 0.5, rng)
        pairs = [(rng.choice(["English", "English", "German", "Japanese", "Spanish"]),
                  rng.choice(["French", "Korean", "Portuguese", "Chinese", "Arabic", "Turkish", "Vietnamese", "Polish", "Hindi"]))
                 for _ in range(rng.randint(1, 5))]
        for ts in C.times_from_weights(rng, int(vol * sink.days), sink.start_ms, w):
            src, tgt = rng.choice(pairs)
            text = rng.choice(corp.answers)[: rng.randrange(100, 3000)] if rng.random() < 0.6 else corp.chat_line(rng)
            send(sink, ac, ts, Item([u(f"Translate from {src} to {tgt}:\n\n{text}")], "translate"), rng, "translation_service")
        out.append(ac.id)
    return out


def rag_support_bot(sink, corp, k, scale):
    """A retrieval-augmented support bot: long retrieved context (several document chunks) plus a
    short user question, short grounded answers, end-user ids in metadata."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"rag_support_bot:{i}")
        product = rng.choice(APP_NAMES)
        ac = new_account(sink, rng, age="aged", verified=0.95, domain="company", n_ips=rng.choice([1, 2, 3]),
                         apis={"openai.chat": 0.5, "anthropic.messages": 0.5},
                         ua_family=rng.choice(["openai_py", "anth_py", "litellm", "custom"]),
                         system=f"You are the support assistant for {product}. Answer ONLY from the provided documents. If the answer is not there, say you don't know and offer to open a ticket.",
                         temperature=0.2, max_tokens=rng.choice([400, 600]))
        docs = [rng.choice(corp.answers)[:1800] for _ in range(400)]
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.6))
        w = day_weights(sink, ac, "business", 0.4, rng)
        for s in C.times_from_weights(rng, int(vol * sink.days / 1.4), sink.start_ms, w):
            uid = f"cust_{rng.getrandbits(32):08x}"
            chunks = "\n\n".join(f"<doc id=\"{rng.randrange(10000)}\">\n{rng.choice(docs)}\n</doc>" for _ in range(rng.randint(2, 5)))
            q = corp.chat_line(rng) if rng.random() < 0.5 else rng.choice(corp.short_english)
            turns = [u(f"Documents:\n{chunks}\n\nQuestion: {q}")]
            t = s
            for j in range(rng.choice([1, 1, 1, 2, 3])):
                send(sink, ac, t, Item(list(turns), "rag", user_id=uid), rng, "rag_support_bot")
                turns.append(a(rng.choice(corp.answers)[:600]))
                turns.append(u(corp.chat_line(rng)))
                t += C.gap_ms(rng, 40, 0.7, 5)
        out.append(ac.id)
    return out


def eval_harness(sink, corp, k, scale):
    """A CI regression suite: the same fixed prompt set replayed several times a day on every
    deploy, at high rate, temperature 0 and a fixed seed."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"eval_harness:{i}")
        ac = new_account(sink, rng, age="aged", verified=0.9, domain="company", n_ips=rng.choice([1, 3]),
                         ua_family=rng.choice(["openai_py", "requests", "custom", "go"]), temperature=0,
                         max_tokens=rng.choice([256, 512, 1024]), system=rng.choice([None, f"You are {rng.choice(APP_NAMES)}."]))
        suite = [rng.choice([corp.broad_prompt, corp.chat_line, corp.reasoning_item])(rng) for _ in range(rng.randrange(40, 250))]
        runs_day = rng.uniform(k["min_runs_day"], k["max_runs_day"])
        w = day_weights(sink, ac, "business", 0.2, rng)
        for s in C.times_from_weights(rng, int(runs_day * sink.days), sink.start_ms, w):
            t = s
            for q in suite:
                send(sink, ac, t, Item([u(q)], "chat", params={"seed": 42}), rng, "eval_harness")
                t += int(rng.uniform(80, 900))
        out.append(ac.id)
    return out


def health_check(sink, corp, k, scale):
    """Monitoring probes: a tiny prompt with ``max_tokens`` 1-5 at a fixed interval, around the
    clock.  Hard negative for machine cadence, clockwork arrivals and max_tokens 1."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"health_check:{i}")
        ac = new_account(sink, rng, age="aged", verified=0.9, domain="company", n_ips=rng.choice([1, 3]),
                         ua_family=rng.choice(["custom", "curl", "go", "requests"]), model_kind=rng.choice(["small", "large"]))
        interval = rng.choice(k["intervals_s"]) * 1000
        prompt = rng.choice(["ping", "Say OK.", "health check", "Reply with the word pong.", "1+1="])
        mt = rng.choice([1, 1, 2, 5])
        t = sink.start_ms + rng.randrange(interval)
        while t < sink.end_ms:
            send(sink, ac, t, Item([u(prompt)], "ping", params={"max_tokens": mt, "temperature": 0}), rng, "health_check")
            t += interval + rng.randrange(-800, 800)
        out.append(ac.id)
    return out


def reasoning_power_user(sink, corp, k, scale):
    """Individuals who turn on ``thinking`` budgets / ``reasoning_effort: high`` for hard
    problems from a laptop that moves between home, office, phone tethering and cafés (many
    addresses).  Hard negative for native_thinking and rotating addresses."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"reasoning_power_user:{i}")
        ac = new_account(sink, rng, age=rng.choice(["aged", "aged", "new"]), verified=0.7, domain="mixed",
                         ips="residential", n_ips=rng.randint(3, 8), model_kind="reason",
                         apis={"anthropic.messages": 0.5, "openai.chat": 0.5})
        ac.ips += [C.residential_ip(rng, C.pick_country(rng)) for _ in range(rng.randint(0, 3))]
        budget = rng.choice([4096, 8000, 16000, 32000])
        days = rng.sample(range(int(sink.days)), rng.randint(2, 6))
        for d in days:
            ip = rng.choice(ac.ips)
            t = sink.start_ms + d * DAY_MS + int(((rng.uniform(8, 23) - ac.tz) % 24) * HOUR_MS)
            for j in range(rng.randint(k["min_day"], k["max_day"])):
                if rng.random() < 0.3:
                    ip = rng.choice(ac.ips)
                q = rng.choice([corp.reasoning_item, corp.code_item, corp.broad_prompt, lambda r: corp.mgsm.sample(r, "en")])(rng)
                conv = [u(q)]
                if rng.random() < 0.3:
                    conv = conversation(rng, corp, 3)[-1]
                p = {"thinking": budget, "max_tokens": budget + 4000} if ac.api == "anthropic.messages" else \
                    {"reasoning_effort": rng.choice(["high", "high", "medium"])}
                send(sink, ac, t, Item(conv, "cot", params=p), rng, "reasoning_power_user", ip=ip)
                t += C.gap_ms(rng, 240, 0.9, 20)
        out.append(ac.id)
    return out


def classroom_cohort(sink, corp, k, scale):
    """A university course: a cohort of students who all sign up in the same lab session (a
    creation burst, unverified, same campus /24), share the course's system prompt, and work
    on the same problem sets before a deadline.  Hard negative for hydra_shared."""
    out = []
    for c in range(max(1, int(round(k["cohorts"] * scale)))):
        rng = sink.rng(f"classroom_cohort:{c}")
        country = rng.choice(["US", "GB", "DE", "IN", "BR", "KR", "CA", "FR", "NL"])
        campus = C.subnet24(rng, cloud=False, country=country)
        uni = rng.choice(C.UNIS)
        course = rng.choice(["CS101", "STAT200", "ECON110", "MATH221", "DS100", "PHYS150"])
        system = (f"You are the teaching assistant for {course}. Help students understand concepts and guide them "
                  f"towards solutions; do not write their graded assignments for them.")
        signup = sink.start_ms + int(rng.uniform(-1, 2) * DAY_MS)
        deadline = sink.start_ms + int(rng.uniform(4, sink.days - 0.2) * DAY_MS)
        api = rng.choice(["openai.chat", "anthropic.messages"])
        for s in range(rng.randint(k["min_size"], k["max_size"])):
            created = signup + int(rng.uniform(0, 1.5) * HOUR_MS)
            ac = new_account(sink, rng, country=country, created=created, verified=0.1, tier="free", domain=uni,
                             api=api, ips=[C.ip_in(rng, campus)] + [C.residential_ip(rng, country)], system=system,
                             temperature=rng.choice([None, 0.7]))
            n = int(rng.lognormvariate(math.log(k["median_per_student"]), 0.7))
            for _ in range(n):
                t = int(deadline - rng.expovariate(1 / (1.5 * DAY_MS)))
                if t < created:
                    t = created + rng.randrange(HOUR_MS)
                ip = ac.ips[0] if rng.random() < 0.6 else ac.ips[1]
                if rng.random() < 0.35:  # a short back-and-forth with the TA bot
                    for turns in conversation(rng, corp, 3):
                        send(sink, ac, t, Item(turns, "chat"), rng, "classroom_cohort", ip=ip)
                        t += C.gap_ms(rng, 90, 0.8, 10)
                    continue
                q = rng.choice([corp.code_item, corp.reasoning_item, lambda r: corp.mgsm.sample(r, "en"), corp.broad_prompt])(rng)
                send(sink, ac, t, Item([u(q)], "chat"), rng, "classroom_cohort", ip=ip)
            out.append(ac.id)
    return out


FEWSHOT = [
    ("Extract the city and date from the message. Reply as JSON.",
     [("Can we meet in Lisbon on March 3rd?", '{"city": "Lisbon", "date": "03-03"}'),
      ("I'll be in Osaka next Friday the 14th.", '{"city": "Osaka", "date": "14"}')]),
    ("Rewrite the customer's message politely, keeping the meaning.",
     [("this app is garbage fix the login", "I'm having trouble logging in to the app. Could you please help me fix it?"),
      ("where is my refund?? it's been weeks", "Could you let me know the status of my refund? It has been a few weeks.")]),
    ("Convert the request into a SQL query over table orders(id, customer, total, created_at).",
     [("orders over 100 dollars", "SELECT * FROM orders WHERE total > 100;"),
      ("how many orders last week", "SELECT COUNT(*) FROM orders WHERE created_at >= now() - interval '7 days';")]),
    ("Give the message a short title (max 6 words).",
     [("My package arrived damaged and the box was open.", "Damaged package on arrival"),
      ("How do I change the email on my account?", "Changing account email")]),
]


def fewshot_extractor(sink, corp, k, scale):
    """A pipeline that prompts with few-shot examples written as user/assistant turns (assistant
    turns the model never produced), then the real input; one template per account.  Hard
    negative for fake_multiturn."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"fewshot_extractor:{i}")
        instr, shots = rng.choice(FEWSHOT)
        ac = new_account(sink, rng, age="aged", verified=0.9, domain="company", n_ips=1,
                         apis={"openai.chat": 0.8, "anthropic.messages": 0.2}, model_kind="small",
                         ua_family=rng.choice(["openai_py", "requests", "go", "custom"]), system=instr, temperature=0,
                         max_tokens=rng.choice([64, 128, 200]))
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.6))
        w = day_weights(sink, ac, rng.choice(["business", "human", "flat"]), 0.6, rng)
        for ts in C.times_from_weights(rng, int(vol * sink.days), sink.start_ms, w):
            turns = []
            for q, ans in shots:
                turns += [u(q), a(ans)]
            turns.append(u(corp.chat_line(rng)))
            send(sink, ac, ts, Item(turns, "extract"), rng, "fewshot_extractor")
        out.append(ac.id)
    return out


def multi_env_team(sink, corp, k, scale):
    """A team sharing one key across CI runners (cloud addresses, curl/requests), developers'
    laptops in several countries (SDKs) and a production server.  Hard negative for leaked_key
    (one key, many addresses and clients)."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"multi_env_team:{i}")
        ac = new_account(sink, rng, age="aged", verified=0.95, domain="company", n_ips=1, max_tokens=rng.choice([None, 1024]))
        envs = [("ci", [C.cloud_ip(rng) for _ in range(rng.randint(3, 10))], C.user_agent(rng, ac.api, rng.choice(["curl", "requests"])), 0.3)]
        for d in range(rng.randint(2, 6)):
            ctry = rng.choice([ac.country, ac.country, C.pick_country(rng)])
            envs.append(("dev", [C.residential_ip(rng, ctry) for _ in range(rng.randint(1, 2))], C.user_agent(rng, ac.api), 0.4 / 4))
        envs.append(("prod", [C.cloud_ip(rng)], C.user_agent(rng, ac.api, "custom"), 0.3))
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.6))
        w = day_weights(sink, ac, "business", 0.3, rng)
        for ts in C.times_from_weights(rng, int(vol * sink.days), sink.start_ms, w):
            env = rng.choices(envs, [e[3] for e in envs])[0]
            item = _dev_item(rng, corp, 0.0) if env[0] == "dev" else Item([u(corp.chat_line(rng) if env[0] == "ci" else user_prompt(rng, corp))], "chat")
            send(sink, ac, ts, item, rng, "multi_env_team", ip=rng.choice(env[1]), ua=env[2])
        out.append(ac.id)
    return out


MODERATION = ("You are a content moderation assistant. Decide whether the user message violates the community guidelines "
              "(harassment, hate, self-harm, sexual content, spam). Give a brief rationale, then a final line "
              "'LABEL: allow' or 'LABEL: flag:<category>'.")


def moderation_rationale(sink, corp, k, scale):
    """Content moderation with a short rationale and a label for every message, templated,
    high volume.  Hard negative for rationale_distill."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"moderation_rationale:{i}")
        ac = new_account(sink, rng, age="aged", verified=1.0, domain="company", n_ips=rng.choice([1, 2]),
                         ua_family=rng.choice(["go", "openai_py", "custom"]), model_kind="small", system=MODERATION,
                         temperature=0, max_tokens=150)
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.5))
        w = day_weights(sink, ac, "human", 1.0, rng)
        for ts in C.times_from_weights(rng, int(vol * sink.days), sink.start_ms, w):
            send(sink, ac, ts, Item([u(f"Message: {corp.chat_line(rng)}")], "moderation"), rng, "moderation_rationale")
        out.append(ac.id)
    return out


def ai_gateway_platform(sink, corp, k, scale):
    """An AI platform / router reselling access to many small apps: many end users (ids), many
    different system prompts (its customers' bots), mixed clients, high volume, human rhythm.
    Hard negative for reseller_mixed."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"ai_gateway_platform:{i}")
        ac = new_account(sink, rng, age="aged", verified=1.0, tier="enterprise", domain="company", n_ips=rng.randint(3, 6),
                         apis={"openai.chat": 0.7, "anthropic.messages": 0.3}, ua_family="litellm")
        bots = [f"You are {rng.choice(APP_NAMES)} {rng.choice(['Assistant', 'Helper', 'Coach', 'Bot'])}. "
                + rng.choice(["Be concise.", "Answer in Markdown.", "Be warm and encouraging.", "Stay on topic."])
                for _ in range(rng.randint(20, 80))]
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.4))
        w = day_weights(sink, ac, "human", 1.0, rng)
        for s in C.times_from_weights(rng, int(vol * sink.days / 2.2), sink.start_ms, w):
            bot = rng.choice(bots)
            uid = f"{rng.choice(['tenant', 'app'])}{rng.randrange(1, 90)}:{rng.getrandbits(32):08x}"
            reqs = conversation(rng, corp, 4) if rng.random() < 0.6 else [[u(user_prompt(rng, corp))]]
            t = s
            for turns in reqs:
                send(sink, ac, t, Item(turns, "chat", system=bot, user_id=uid), rng, "ai_gateway_platform")
                t += C.gap_ms(rng, 45, 0.9, 4)
        out.append(ac.id)
    return out


def product_launch(sink, corp, k, scale):
    """A new product launching this week: a recently created (often still unverified) account
    whose traffic grows day by day as users arrive.  Hard negative for adaptive_ramp and new
    accounts."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"product_launch:{i}")
        ac = new_account(sink, rng, age=rng.choice(["new", "fresh"]), verified=0.4, domain="company", n_ips=1,
                         ua_family=rng.choice(["openai_js", "openai_py", "anth_js"]),
                         system=f"You are {rng.choice(APP_NAMES)}, an assistant for {rng.choice(W.TOPICS)}.")
        launch = max(ac.created + HOUR_MS, sink.start_ms + int(rng.uniform(0, 3) * DAY_MS))
        base = rng.uniform(10, 40)
        for d in range(int(sink.days)):
            t0 = sink.start_ms + d * DAY_MS
            if t0 + DAY_MS < launch:
                continue
            rate = base * (1.6 ** max(0, (t0 - launch) / DAY_MS))
            w = [0.0] * int(sink.days * 24)
            for h in range(24):
                idx = d * 24 + h
                if sink.start_ms + idx * HOUR_MS >= launch:
                    w[idx] = C.HUMAN[int(h + ac.tz) % 24]
            for s in C.times_from_weights(rng, int(min(rate, k["max_daily"]) / 1.8), sink.start_ms, w):
                uid = f"{rng.getrandbits(32):08x}"
                reqs = conversation(rng, corp, 3) if rng.random() < 0.5 else [[u(user_prompt(rng, corp))]]
                t = s
                for turns in reqs:
                    send(sink, ac, t, Item(turns, "chat", user_id=uid if i % 2 else None), rng, "product_launch")
                    t += C.gap_ms(rng, 50, 0.8, 4)
        out.append(ac.id)
    return out


def ide_assistant(sink, corp, k, scale):
    """An IDE plugin: code-only questions and completions from many developers (end-user ids),
    office hours, short follow-ups.  Hard negative for narrow_domain (code)."""
    out = []
    for i in range(n_acc(k, scale)):
        rng = sink.rng(f"ide_assistant:{i}")
        ac = new_account(sink, rng, age="aged", verified=0.95, domain="company", n_ips=rng.choice([1, 2]),
                         apis={"openai.chat": 0.6, "anthropic.messages": 0.3, "openai.completions": 0.1},
                         ua_family=rng.choice(["openai_js", "anth_js", "custom", "node_fetch"]),
                         system="You are a coding assistant inside an IDE. Prefer code over prose. Use the user's language and style.",
                         temperature=rng.choice([0, 0.2]), max_tokens=rng.choice([512, 1024, 2048]))
        devs = [f"dev-{rng.getrandbits(28):07x}" for _ in range(rng.randrange(50, 400))]
        vol = min(k["max_daily"], rng.lognormvariate(math.log(k["median_daily"]), 0.6))
        w = day_weights(sink, ac, "business", 0.3, rng)
        for s in C.times_from_weights(rng, int(vol * sink.days / 1.5), sink.start_ms, w):
            uid = rng.choice(devs)
            turns = [u(corp.code_item(rng))]
            t = s
            for j in range(rng.choice([1, 1, 2, 3])):
                send(sink, ac, t, Item(list(turns), "code", user_id=uid), rng, "ide_assistant")
                turns.append(a(rng.choice(corp.answers)[:1500]))
                turns.append(u(rng.choice(["make it async", "add type hints", "why does this fail on empty input?",
                                           "write a test for it", "can you simplify this?"])))
                t += C.gap_ms(rng, 60, 0.8, 5)
        out.append(ac.id)
    return out


# name -> (function, default knobs, which attack signal it mirrors)
BENIGN = {
    "chat_app": (chat_app, dict(accounts=10, median_daily=190, max_daily=1000), "conversation traffic with end-user ids (reseller_mixed's end users)"),
    "chat_app_anon": (chat_app_anon, dict(accounts=7, median_daily=140, max_daily=800), "one key for many anonymous users (reseller_mixed without ids)"),
    "answer_engine": (answer_engine, dict(accounts=4, median_daily=220, max_daily=800), "broad single-turn prompts, ordinary parameters (broad_sampling)"),
    "individual_dev": (individual_dev, dict(accounts=1400, median_weekly=6, max_weekly=500), "small mixed traffic; occasional logprobs / n / tools / reasoning_effort"),
    "power_user": (power_user, dict(accounts=40, min_daily=8, max_daily=45), "tens of requests a day, human rhythm, aged, residential (low_and_slow)"),
    "batch_pipeline": (batch_pipeline, dict(accounts=30, median_nightly=40, max_nightly=500), "templated, machine-paced bursts"),
    "benchmark_runner": (benchmark_runner, dict(accounts=25, max_runs=3, min_run=80, max_run=500), "high-rate CoT prompts in bursts, multilingual GSM with benchmark instructions (cot_multilingual)"),
    "loglik_eval": (loglik_eval, dict(accounts=6, min_q=80, max_q=300), "max_tokens 0/1 with logprobs / top_logprobs, echo (param_probe)"),
    "classifier_service": (classifier_service, dict(accounts=8, median_daily=160, max_daily=600), "fixed logit_bias + max_tokens 1 (param_probe walk)"),
    "tutoring_app": (tutoring_app, dict(accounts=6, median_daily=180, max_daily=600), "step-by-step maths, show-your-work (CoT elicitation)"),
    "multilingual_chat": (multilingual_chat, dict(accounts=10, median_daily=70, max_daily=500), "non-English prompts, requests for more detail (cot_multilingual, trace_translation)"),
    "coding_agent": (coding_agent, dict(accounts=10, median_sessions=12, max_sessions=60, max_steps=16), "tools, tool results, long plans, thinking (agentic_harvest, native_thinking)"),
    "essay_grading": (essay_grading, dict(accounts=6, min_batches=3, max_batches=15), "rubric scores with justifications (judge_harvest)"),
    "judge_eval_platform": (judge_eval_platform, dict(accounts=5, min_runs=1, max_runs=4), "pairwise judge prompts on its own outputs (judge_harvest)"),
    "qa_testdata": (qa_testdata, dict(accounts=8, min_day=5, max_day=30), "'generate N examples in JSON' (synth_data)"),
    "translation_service": (translation_service, dict(accounts=8, median_daily=70, max_daily=500), "output ≈ input; many languages"),
    "rag_support_bot": (rag_support_bot, dict(accounts=8, median_daily=120, max_daily=500), "long contexts, short answers, end-user ids"),
    "eval_harness": (eval_harness, dict(accounts=6, min_runs_day=0.3, max_runs_day=2), "high-rate, fixed prompt set, machine cadence"),
    "health_check": (health_check, dict(accounts=10, intervals_s=[300, 900, 1800, 3600]), "clockwork arrivals around the clock, max_tokens 1"),
    "reasoning_power_user": (reasoning_power_user, dict(accounts=20, min_day=3, max_day=25), "thinking budgets / reasoning_effort high from changing addresses (native_thinking)"),
    "classroom_cohort": (classroom_cohort, dict(cohorts=2, min_size=25, max_size=40, median_per_student=18), "creation burst, shared /24, shared system prompt (hydra_shared)"),
    "fewshot_extractor": (fewshot_extractor, dict(accounts=6, median_daily=120, max_daily=500), "assistant turns the model never wrote (fake_multiturn)"),
    "multi_env_team": (multi_env_team, dict(accounts=10, median_daily=40, max_daily=200), "one key from many addresses and clients (leaked_key)"),
    "moderation_rationale": (moderation_rationale, dict(accounts=5, median_daily=120, max_daily=600), "rationale + label per item (rationale_distill)"),
    "ai_gateway_platform": (ai_gateway_platform, dict(accounts=4, median_daily=350, max_daily=900), "many end users and system prompts behind one account (reseller_mixed)"),
    "product_launch": (product_launch, dict(accounts=4, max_daily=700), "new account whose traffic ramps up (adaptive_ramp)"),
    "ide_assistant": (ide_assistant, dict(accounts=6, median_daily=80, max_daily=500), "code-only traffic (narrow_domain)"),
}

MIRRORS = {name: v[2] for name, v in BENIGN.items()}


def run_benign(name, sink, corp, overrides=None, scale=1.0):
    fn, defaults, mirror = BENIGN[name]
    k = dict(defaults)
    if overrides:
        k.update(overrides)
    ids = fn(sink, corp, k, scale)
    return {"accounts": ids, "knobs": k, "mirrors": mirror, "doc": (fn.__doc__ or "").strip()}
