"""Attack strategies.  Each is a function ``run(sink, corp, knobs) -> dict`` (the manifest
entry: accounts, knobs, counts) registered in ``STRATEGIES`` with its default knobs.

Common knobs (every strategy reads them through :class:`Campaign`):

``accounts``      number of attacking accounts
``rate``          requests per account per active day (before per-account jitter)
``ip_pool``       ``none`` (one address per account) | ``residential`` (1-3 stable home addresses)
                  | ``rotating`` (a fresh residential address from a proxy network on most requests)
                  | ``shared_proxy`` (addresses inside a few /24s shared by the whole campaign)
                  | ``cloud`` (1-3 VPS addresses per account)
``creation``      ``burst`` (all accounts created within a few hours, just before use) | ``new``
                  (created over the last days) | ``aged`` (months to years old)
``verified``      share of accounts that are verified
``wrappers``      ``paraphrase`` (fresh CoT/trace paraphrases) | ``light`` (per-account habit) | ``mixed``
                  | ``none``
``languages``     languages of prompts (and wrappers)
``cover_share``   share of requests that are ordinary chat (cover traffic), still labelled with the campaign
``apis``          {api: weight} among openai.chat / anthropic.messages / openai.completions
``system_prompt`` ``none`` | ``shared`` (one family for the campaign) | ``distinct`` (one per account)
``cadence``       ``flat`` | ``paced`` (near-regular gaps) | ``diurnal`` (human day, jittered) | ``bursty``
``start_spread``  accounts start at a random time within this many days
``active_days``   how long each account is active (None: to the end)

Sources are cited in each docstring; README.md lists them with links.
"""
from __future__ import annotations

import math
import random

from . import common as C
from . import wrappers as W
from .common import DAY_MS, HOUR_MS, MIN_MS, Item, a, emit_item, u

BASE = dict(accounts=6, rate=250, ip_pool="cloud", creation="new", verified=0.3, wrappers="none",
            languages=["en"], cover_share=0.0, apis={"openai.chat": 1.0}, system_prompt="none",
            cadence="flat", start_spread=1.0, active_days=None, countries=None, scale_accounts=True,
            min_accounts=3)


# ----------------------------------------------------------------------------- campaign engine

class Account:
    pass


class Campaign:
    """Creates a campaign's accounts from the common knobs and runs their request streams."""

    def __init__(self, sink, corp, name, knobs, scale=1.0):
        self.sink, self.corp, self.name, self.k = sink, corp, name, knobs
        self.rng = sink.rng(f"strategy:{name}")
        self.accounts = []
        self.counts = {"exchanges": 0, "cover": 0, "benign_in_account": 0}
        n = knobs["accounts"]
        if knobs.get("scale_accounts", True):
            n = max(knobs.get("min_accounts", 3), int(round(n * scale)))
        self.n = n
        rng = self.rng
        # campaign-level shared infrastructure
        self.subnets = [C.subnet24(rng, cloud=rng.random() < 0.7, country=rng.choice(["US", "SG", "HK", "DE", "JP"]))
                        for _ in range(max(2, min(6, n // 10 + 2)))]
        self.burst_ms = sink.start_ms + int(rng.uniform(-0.3, 0.8) * DAY_MS)
        self.family_name = rng.choice(W.HYDRA_NAMES)
        self.countries = knobs.get("countries") or ["US", "SG", "HK", "GB", "DE", "JP", "KR", "CA", "NL", "TW", "MY"]
        self.proxy_countries = ["US", "GB", "DE", "FR", "BR", "IN", "ID", "VN", "PH", "TH", "MX", "PL", "TR",
                                "KR", "JP", "NG", "ZA", "CA", "AU", "ES", "IT", "NL", "UA", "AR", "CO", "EG"]
        for i in range(n):
            self.accounts.append(self._make_account(i))

    # -- accounts ------------------------------------------------------------------
    def _make_account(self, i):
        k, rng, sink = self.k, self.rng, self.sink
        ac = Account()
        ac.i = i
        country = rng.choice(self.countries) if k["creation"] != "aged" else C.pick_country(rng)
        if k.get("countries"):
            country = rng.choice(k["countries"])
        ac.country = country
        # activity window
        ac.t0 = sink.start_ms + int(rng.random() * k["start_spread"] * DAY_MS)
        if k["creation"] == "burst":
            created = self.burst_ms + int(rng.uniform(0, 3) * HOUR_MS)
            ac.t0 = max(ac.t0, created + int(rng.uniform(5, 90) * MIN_MS))
        elif k["creation"] == "new":
            created = ac.t0 - int(rng.uniform(0.05, 6) * DAY_MS)
        else:
            created = C.aged_created(rng, sink.start_ms, 40, 800)
        ac.t1 = sink.end_ms if not k.get("active_days") else min(sink.end_ms, ac.t0 + int(k["active_days"] * DAY_MS))
        verified = rng.random() < k["verified"]
        if k["creation"] == "burst":
            domain = C.email_domain(rng, "webmail") if rng.random() < 0.8 else C.company_domain(rng)
            tier = "free" if rng.random() < 0.7 else "build"
        else:
            domain = C.email_domain(rng)
            tier = C.tier_for(rng, {"free": 0.4, "build": 0.45, "pro": 0.15})
        ac.id = sink.add_account(rng, created_ms=created, tier=tier, domain=domain, country=country, verified=verified)
        ac.keys = [sink.new_id("key_", 10) for _ in range(1 if rng.random() < 0.8 else 2)]
        apis = k["apis"]
        ac.api = rng.choices(list(apis), [apis[x] for x in apis])[0]
        ac.style = C.make_style(rng, ac.api, k.get("model_kind", "large"))
        ac.uas = [C.user_agent(rng, ac.api)]
        if rng.random() < 0.15:
            ac.uas.append(C.user_agent(rng, ac.api))
        # addresses
        pool = k["ip_pool"]
        if pool == "none":
            ac.ips = [C.residential_ip(rng, country) if rng.random() < 0.5 else C.cloud_ip(rng)]
        elif pool == "residential":
            ac.ips = [C.residential_ip(rng, country) for _ in range(rng.choice([1, 1, 2, 2, 3]))]
        elif pool == "cloud":
            ac.ips = [C.cloud_ip(rng) for _ in range(rng.choice([1, 1, 2, 3]))]
        elif pool == "shared_proxy":
            ac.subnets = rng.sample(self.subnets, min(len(self.subnets), rng.choice([1, 2])))
            ac.ips = [C.ip_in(rng, s) for s in ac.subnets for _ in range(rng.choice([1, 2, 3]))]
        else:  # rotating
            ac.ips = [C.residential_ip(rng, rng.choice(self.proxy_countries)) for _ in range(3)]
        # system prompt
        sp = k["system_prompt"]
        if sp == "shared":
            ac.system = rng.choice(W.HYDRA_FAMILY).format(name=self.family_name)
        elif sp == "distinct":
            ac.system = (f"You are {rng.choice(W.DISTINCT_ROLES)}. " + " ".join(rng.sample(W.DISTINCT_TRAITS, 2))
                         if rng.random() < 0.8 else None)
        else:
            ac.system = None
        # per-account habits
        ac.light = rng.choice(list(W.LIGHT_STYLES))
        langs = k["languages"]
        ac.langs = rng.sample(langs, min(len(langs), rng.choice([1, 2, 3]))) if len(langs) > 1 else list(langs)
        ac.rate = k["rate"] * rng.lognormvariate(0, 0.3)
        ac.max_tokens = rng.choice(k.get("max_tokens_choices", [None, 1024, 2048, 4096]))
        ac.temperature = rng.choice(k.get("temperature_choices", [None, 0.7, 1.0, 0.6]))
        ac.tz = C.TZ.get(country, 0) + rng.choice([0, 0, 0, -1, 1])
        ac.state = {}
        return ac

    def ip(self, ac, rng):
        pool = self.k["ip_pool"]
        if pool == "rotating":
            if rng.random() < 0.85:
                return C.residential_ip(rng, rng.choice(self.proxy_countries))
            return rng.choice(ac.ips)
        if pool == "shared_proxy":
            if rng.random() < 0.3:
                return C.ip_in(rng, rng.choice(ac.subnets))
            return rng.choice(ac.ips)
        return rng.choice(ac.ips) if len(ac.ips) == 1 or rng.random() < 0.8 else rng.choice(ac.ips)

    # -- times -----------------------------------------------------------------------
    def times(self, ac, rng, rate=None, t0=None, t1=None, cadence=None):
        rate = rate if rate is not None else ac.rate
        t0 = ac.t0 if t0 is None else t0
        t1 = ac.t1 if t1 is None else t1
        cad = cadence or self.k["cadence"]
        days = max(0.0, (t1 - t0) / DAY_MS)
        n = int(round(rate * days))
        if n <= 0:
            return []
        if cad == "paced":
            return C.paced_times(rng, n, t0, t1, cv=rng.uniform(0.08, 0.25))
        if cad == "flat":
            return C.poisson_times(rng, n, t0, t1)
        if cad in ("diurnal", "business"):
            sink = self.sink
            w = C.hourly_weights(sink.start_ms, sink.days, ac.tz, "human" if cad == "diurnal" else "business",
                                 weekend=rng.uniform(0.5, 1.0), day_from=(t0 - sink.start_ms) / DAY_MS,
                                 day_to=(t1 - sink.start_ms) / DAY_MS, jitter_rng=rng)
            return C.times_from_weights(rng, n, sink.start_ms, w)
        # bursty: sessions of a few hours at a high rate
        out = []
        remaining = n
        while remaining > 0:
            start = t0 + int(rng.random() * max(1, (t1 - t0 - 3 * HOUR_MS)))
            m = min(remaining, rng.randrange(50, 400))
            dur = rng.uniform(0.5, 4) * HOUR_MS
            out.extend(C.poisson_times(rng, m, start, int(start + dur)))
            remaining -= m
        return sorted(x for x in out if t0 <= x < t1)

    # -- emission ----------------------------------------------------------------------
    def cover_item(self, rng, ac):
        corp = self.corp
        x = rng.random()
        if x < 0.45:
            q = corp.chat_line(rng)
            return Item([u(q)], "casual", cover=True)
        if x < 0.8:
            return Item([u(corp.broad_prompt(rng))], "chat", cover=True)
        conv = rng.choice(corp.multi_turn)
        k = rng.randrange(1, min(4, len(conv) // 2) + 1)
        turns = [{"role": r, "content": t[:2500]} for r, t in conv[: 2 * k - 1]]
        return Item(turns, "chat", cover=True)

    def send(self, ac, ts, item, rng, label=None, key=None, ua=None, ip=None, style=None):
        lab = label or C.label(ac.id, self.name, self.name, cover=item.cover)
        ok = emit_item(self.sink, ac, ts, item, rng, lab, key=key or rng.choice(ac.keys), ua=ua or rng.choice(ac.uas),
                       ip=ip or self.ip(ac, rng), style=style)
        if ok:
            if lab.get("campaign"):
                self.counts["exchanges"] += 1
                if item.cover:
                    self.counts["cover"] += 1
            else:
                self.counts["benign_in_account"] += 1

    def run(self, make_item):
        cover = self.k["cover_share"]
        for ac in self.accounts:
            rng = random.Random(f"{self.sink.seed}:{self.name}:{ac.i}")
            for ts in self.times(ac, rng):
                item = self.cover_item(rng, ac) if rng.random() < cover else make_item(rng, ac)
                self.send(ac, ts, item, rng)

    def manifest(self):
        return {"accounts": [ac.id for ac in self.accounts], "knobs": self.k, "counts": self.counts}

    # -- content helpers ---------------------------------------------------------------
    def wrap(self, rng, ac, q, lang="en"):
        mode = self.k["wrappers"]
        if mode == "mixed":
            mode = ac.state.setdefault("wmode", rng.choice(["paraphrase", "light", "none"]))
        if mode == "none":
            return q
        if mode == "light":
            return rng.choice(W.LIGHT_STYLES[ac.light]).format(q=q)
        return rng.choice(W.COT_WRAPPERS.get(lang) or W.COT_WRAPPERS["en"]).format(q=q)

    def task(self, rng, lang="en", mix=("rg", "mgsm", "code", "broad")):
        corp = self.corp
        src = rng.choice(mix)
        if lang != "en":
            if src == "broad" and lang in corp.non_english and rng.random() < 0.5:
                return corp.any_lang_prompt(rng, lang)
            return corp.mgsm.sample(rng, lang)
        if src == "rg":
            return corp.reasoning_item(rng)
        if src == "mgsm":
            return corp.mgsm.sample(rng, "en")
        if src == "code":
            return corp.code_item(rng)
        return corp.broad_prompt(rng)


def _merge(defaults, overrides):
    k = dict(BASE)
    k.update(defaults)
    if overrides:
        k.update(overrides)
    return k


# ============================================================================= strategies

def low_and_slow(sink, corp, knobs, scale):
    """Many aged accounts, each a few tens of requests a day at a human, diurnal, jittered
    rhythm from its own residential address; each account its own client, its own habit of
    wrapping (or none), a share of ordinary chat as cover; no shared infrastructure and no
    shared system prompt.

    Sources: Anthropic, "Detecting and preventing distillation attacks" (2026-02-23): hydra
    clusters of fraudulent accounts spread so that each account looks like a light user, traffic
    mixed with unrelated requests; OpenAI memo to the House Select Committee on the CCP
    (2026-02-12): access "through obfuscated third-party routers and other ways that mask their
    source"; Juuti et al. 2019 (PRADA) discuss adversaries that pace and spread queries to stay
    under per-client detectors.
    """
    c = Campaign(sink, corp, "low_and_slow", knobs, scale)

    def make(rng, ac):
        lang = rng.choice(ac.langs)
        q = c.task(rng, lang, ("rg", "mgsm", "broad", "broad", "code"))
        w = c.wrap(rng, ac, q, lang)
        return Item([u(w)], "cot" if w != q else "chat")
    c.run(make)
    return c


def param_probe(sink, corp, knobs, scale):
    """Logit / embedding-projection extraction through API parameters: ``max_tokens`` 1 (0-2)
    with ``logprobs``/``top_logprobs`` and a ``logit_bias`` that walks across the vocabulary a
    block of token ids at a time (variant ``walk``), or top-logprobs only on many prefixes
    (variant ``toplogprobs``).

    Sources: Carlini et al. 2024, "Stealing Part of a Production Language Model" (ICML,
    arXiv:2403.06634) — logit-bias + top-logprob queries recover the final projection layer;
    Finlayson, Ren & Swayamdipta 2024, "Logits of API-Protected LLMs Leak Proprietary
    Information" (arXiv:2403.09539); Morris et al. 2023, "Language Model Inversion"
    (arXiv:2311.13647); Tramèr et al. 2016, "Stealing Machine Learning Models via Prediction
    APIs" (USENIX Security) — confidence scores make extraction cheap.
    """
    c = Campaign(sink, corp, "param_probe", knobs, scale)
    variants = knobs.get("variants", ["walk", "toplogprobs"])
    vocab = knobs.get("vocab", 100_000)
    for ac in c.accounts:
        ac.variant = variants[ac.i % len(variants)]
        ac.state["tok"] = c.rng.randrange(0, vocab)
        ac.state["block"] = c.rng.choice([1, 2, 4, 8, 16, 50])
        ac.state["prefixes"] = [c.corp.broad_prompt(c.rng)[: c.rng.randrange(20, 200)] for _ in range(c.rng.randrange(3, 12))]
        if ac.variant == "toplogprobs":
            ac.state["prefixes"] = None

    def make(rng, ac):
        st = ac.state
        if ac.variant == "walk":
            prompt = rng.choice(st["prefixes"])
            b = st["block"]
            bias = {(st["tok"] + j) % vocab: rng.choice([100, 100, 50, -100]) if j == 0 else 100 for j in range(b)}
            st["tok"] = (st["tok"] + b) % vocab
            params = {"max_tokens": rng.choice([1, 1, 1, 2, 0]) if ac.style.api == "openai.completions" else 1,
                      "logprobs": True, "top_logprobs": 20 if ac.style.api == "openai.chat" else 5,
                      "logit_bias": bias, "temperature": 0 if rng.random() < 0.5 else None}
        else:
            src = rng.random()
            prompt = (corp.broad_prompt(rng) if src < 0.5 else corp.chat_line(rng) if src < 0.8
                      else corp.reasoning_item(rng))
            prompt = prompt[: rng.randrange(30, 600)]
            params = {"max_tokens": rng.choice([1, 1, 1, 2]), "logprobs": True,
                      "top_logprobs": rng.choice([5, 10, 20]) if ac.style.api == "openai.chat" else 5,
                      "temperature": rng.choice([0, 1, None])}
        params = {k: v for k, v in params.items() if v is not None}
        return Item([u(prompt)], "probe", system="", params=params)
    c.run(make)
    return c


def judge_harvest(sink, corp, knobs, scale):
    """Reward-model / grader data: the model scores candidate answers against rubrics and
    justifies the scores, compares pairs, ranks lists.  Candidates are real assistant answers
    from ShareGPT, so the request looks like evaluation of someone's outputs.

    Sources: Anthropic (2026-02-23) — DeepSeek's traffic used Claude "as a reward model" for
    reinforcement learning (rubric-based grading); Zheng et al. 2023, "Judging LLM-as-a-Judge"
    (arXiv:2306.05685); Cui et al. 2023, "UltraFeedback" (arXiv:2310.01377) — preference data
    labelled by a proprietary model; Lee et al. 2023, "RLAIF" (arXiv:2309.00267); Kim et al. 2023,
    "Prometheus" (arXiv:2310.08491) — rubric feedback distilled from GPT-4.
    """
    c = Campaign(sink, corp, "judge_harvest", knobs, scale)

    def cand(rng):
        x = rng.choice(corp.answers)
        return x[: rng.randrange(300, 1800)]

    def make(rng, ac):
        q, ans = rng.choice(corp.qa_pairs)
        ans = ans[:1800]
        r = rng.random()
        if r < 0.45:
            text = rng.choice(W.JUDGE_SINGLE).format(q=q[:3000], ans=ans)
            kind = "judge"
        elif r < 0.85:
            other = cand(rng) if rng.random() < 0.5 else ans[: len(ans) // 2]
            a1, a2 = (ans, other) if rng.random() < 0.5 else (other, ans)
            text = rng.choice(W.JUDGE_PAIR).format(q=q[:3000], a1=a1, a2=a2)
            kind = "judge"
        else:
            k = rng.randrange(3, 6)
            cands = "\n\n".join(f"Candidate {i + 1}:\n{cand(rng)[:1200]}" for i in range(k))
            text = W.JUDGE_LIST[0].format(k=k, q=q[:2000], cands=cands)
            kind = "judge"
        system = ac.state.setdefault("jsys", rng.choice(W.JUDGE_SYSTEMS))
        return Item([u(text)], kind, system=system or "", params={"temperature": rng.choice([0, 0.2, None])})
    c.run(make)
    return c


def reseller_mixed(sink, corp, knobs, scale):
    """A reseller / router account: one key carrying a real chat product's end users plus a
    distiller among them (``distill_share`` ≈ 15 % of the account's traffic).  Variants with
    end-user ids (``user`` / ``safety_identifier`` / ``metadata.user_id``, the distiller under a
    few ids of its own) and without.  The end users' exchanges are labelled benign (campaign
    null, kind ``reseller_enduser``); the distiller's carry the campaign.

    Sources: Anthropic (2026-02-23) — commercial proxy services resell access and one proxy
    network mixed distillation traffic with unrelated customer requests; OpenAI memo
    (2026-02-12) — "obfuscated third-party routers".
    """
    c = Campaign(sink, corp, "reseller_mixed", knobs, scale)
    share = knobs.get("distill_share", 0.15)
    for ac in c.accounts:
        rng = random.Random(f"{sink.seed}:reseller:{ac.i}")
        with_ids = ac.i % 2 == 0 if knobs.get("user_ids", "both") == "both" else bool(knobs.get("user_ids"))
        ac.state["with_ids"] = with_ids
        app_system = f"You are {rng.choice(APP_NAMES)}, a friendly assistant. Answer clearly; use Markdown when it helps."
        users = [f"u_{rng.getrandbits(40):010x}" for _ in range(rng.randrange(300, 1500))]
        distiller_ids = [f"u_{rng.getrandbits(40):010x}" for _ in range(rng.randrange(1, 6))]
        ac.ips = [C.cloud_ip(rng) for _ in range(rng.choice([1, 2]))]
        sessions = int(ac.rate * (ac.t1 - ac.t0) / DAY_MS / 3.0)
        w = C.hourly_weights(sink.start_ms, sink.days, ac.tz, "human", day_from=(ac.t0 - sink.start_ms) / DAY_MS)
        starts = C.times_from_weights(rng, sessions, sink.start_ms, w)
        n_user = 0
        for s in starts:
            uid = rng.choice(users) if with_ids else None
            conv = rng.choice(corp.multi_turn) if rng.random() < 0.7 else None
            if conv is None:
                turns = [u(corp.broad_prompt(rng) if rng.random() < 0.6 else corp.chat_line(rng))]
                c.send(ac, s, Item(turns, "chat", system=app_system, user_id=uid), rng,
                       label=C.label(ac.id, None, "reseller_enduser"))
                n_user += 1
                continue
            t = s
            k = rng.randrange(1, min(6, len(conv) // 2) + 1)
            for j in range(k):
                turns = [{"role": r, "content": x[:3000]} for r, x in conv[: 2 * j + 1]]
                c.send(ac, t, Item(turns, "chat", system=app_system, user_id=uid), rng,
                       label=C.label(ac.id, None, "reseller_enduser"))
                n_user += 1
                t += C.gap_ms(rng, 45, 0.8, 5)
        # distiller: share/(1-share) of the end users' volume, single-turn harvest, flat-ish
        n_d = int(n_user * share / (1 - share))
        times = C.poisson_times(rng, n_d, ac.t0, ac.t1) if rng.random() < 0.5 else \
            C.times_from_weights(rng, n_d, sink.start_ms, [1.0 if x > 0 else 0 for x in w])
        for ts in times:
            lang = rng.choice(ac.langs)
            q = c.task(rng, lang, ("rg", "mgsm", "broad", "code"))
            text = c.wrap(rng, ac, q, lang) if rng.random() < 0.7 else q
            uid = rng.choice(distiller_ids) if with_ids else None
            c.send(ac, ts, Item([u(text)], "cot", system=app_system if rng.random() < 0.5 else "", user_id=uid), rng)
    return c


def cot_multilingual(sink, corp, knobs, scale):
    """Chain-of-thought / full reasoning-trace elicitation in many languages with paraphrased
    wrappers (full transcript, deliberation log with dead ends, a character who narrates while
    solving, two-part working/result formats, reconstruction of the working behind a given
    answer, translation of the reasoning into another language).

    Sources: Google Threat Intelligence Group, "AI Threat Tracker" (2026-02-12; covered by Ars
    Technica 2026-02-16) — "reasoning trace coercion", a campaign of 100,000+ prompts, many in
    non-English languages; Anthropic (2026-02-23) — prompts asking the model to "imagine and
    articulate the internal reasoning behind a completed response"; DeepSeek-AI 2025, "DeepSeek-R1"
    (arXiv:2501.12948) — distilling reasoning traces into small models works.
    """
    c = Campaign(sink, corp, "cot_multilingual", knobs, scale)

    def make(rng, ac):
        lang = rng.choice(ac.langs)
        r = rng.random()
        if r < 0.12 and lang == "en":
            task = rng.choice(corp.rg_tasks)
            it = rng.choice(corp.rg[task])
            return Item([u(rng.choice(W.RECONSTRUCT).format(q=it["question"], ans=it["answer"][:200]))], "trace")
        if r < 0.22:
            target = rng.choice([x for x in ac.langs if x != lang] or ["en"])
            name = W.LANG_NAMES.get(target, (target, target))
            q = c.task(rng, lang, ("mgsm", "rg") if lang == "en" else ("mgsm",))
            return Item([u(rng.choice(W.ANSWER_IN).format(q=q, L=name[0]))], "trace")
        q = c.task(rng, lang, ("mgsm", "rg", "code") if lang == "en" else ("mgsm", "broad"))
        return Item([u(rng.choice(W.COT_WRAPPERS.get(lang) or W.COT_WRAPPERS["en"]).format(q=q))], "trace")
    c.run(make)
    return c


def hydra_shared(sink, corp, knobs, scale):
    """A hydra cluster: many fresh, unverified accounts created in a burst, behind a few
    shared proxy /24s, sharing one system-prompt family, each running the same harvest at a
    modest rate.

    Sources: Anthropic (2026-02-23) — "hydra cluster" architectures, ~24,000 fraudulent
    accounts, >16M exchanges, one proxy network managing 20,000+ accounts at once, detected
    through IP correlation and request metadata; OpenAI memo (2026-02-12).
    """
    c = Campaign(sink, corp, "hydra_shared", knobs, scale)

    def make(rng, ac):
        q = c.task(rng, "en", ("rg", "mgsm", "code", "broad"))
        return Item([u(c.wrap(rng, ac, q))], "cot")
    c.run(make)
    return c


def hydra_distributed(sink, corp, knobs, scale):
    """A hydra without shared infrastructure: aged accounts (bought or farmed), each with its
    own rotating residential pool or its own address, distinct system prompts or none, its own
    client and habit; together they cover one harvest (reasoning, coding, broad knowledge).

    Sources: Anthropic (2026-02-23) — Moonshot used "hundreds of fraudulent accounts spanning
    multiple access pathways", varied account types to make the campaign harder to see as
    coordinated; OpenAI memo (2026-02-12) — third-party routers masking origin.
    """
    c = Campaign(sink, corp, "hydra_distributed", knobs, scale)

    def make(rng, ac):
        lang = rng.choice(ac.langs)
        q = c.task(rng, lang, ("rg", "code", "broad", "mgsm"))
        return Item([u(c.wrap(rng, ac, q, lang))], "cot")
    c.run(make)
    return c


def agentic_harvest(sink, corp, knobs, scale):
    """Harvesting agentic coding / tool-use trajectories: rich tool definitions, a coding task,
    a fabricated history of tool calls and tool results (never the model's own earlier calls:
    each request starts a new, made-up trajectory), and asks for the full plan and next action.

    Sources: Anthropic (2026-02-23) — Moonshot (3.4M exchanges) and MiniMax (13M) targeted
    agentic reasoning, tool use, coding and orchestration; Qin et al. 2023, "ToolLLM"
    (arXiv:2307.16789) and Zeng et al. 2023, "AgentTuning" (arXiv:2310.12823) — tool-use
    trajectories collected from a proprietary model to train open agents.
    """
    c = Campaign(sink, corp, "agentic_harvest", knobs, scale)

    def make(rng, ac):
        tools = ac.state.setdefault("tools", rng.choice(W.AGENT_TOOLSETS))
        he = rng.choice(corp.humaneval)
        code = he["prompt"]
        task = rng.choice(W.AGENT_TASKS).format(code=code, mod=he["entry_point"],
                                                  issue=rng.choice(corp.code_prompts)[:400])
        plan = rng.choice(W.AGENT_PLAN)
        turns = [u(task + ("\n\n" + plan if plan else ""))]
        steps = rng.choice([0, 0, 1, 2, 3, 4])
        for s in range(steps):
            tool = rng.choice(tools)
            cid = f"call_{rng.getrandbits(48):012x}"
            args = {p: _fake_arg(rng, p, he, tool["name"]) for p in tool["parameters"].get("properties", {})}
            turns.append({"role": "assistant", "content": None, "tool_calls": [{"id": cid, "name": tool["name"], "arguments": args}]})
            turns.append({"role": "tool", "tool_call_id": cid, "content": _fake_result(rng, corp, he)})
        system = ac.state.setdefault("sys", rng.choice(W.AGENT_SYSTEMS_HARVEST))
        want = "plan" if plan else ("tool_call" if rng.random() < 0.4 else "code")
        return Item(turns, want, system=system, tools=tools, tool_call=(want == "tool_call"),
                    params={"max_tokens": rng.choice([4096, 8192, 16000])})
    c.run(make)
    return c


def _fake_arg(rng, p, he, tool=""):
    if tool == "str_replace_editor":
        if p == "command":
            return rng.choice(["view", "view", "str_replace", "create"])
        if p in ("old_str", "new_str"):
            lines = [x for x in he["prompt"].splitlines() if x.strip()]
            return rng.choice(lines) if lines else "pass"
    if p in ("path",):
        return rng.choice(["src/", "tests/", ""]) + he["entry_point"] + ".py"
    if p == "command":
        return rng.choice(["pytest -q", "ls -R", f"python -m pytest tests/test_{he['entry_point']}.py", "git status", "cat setup.cfg"])
    if p in ("pattern",):
        return he["entry_point"]
    if p == "selector":
        return f"tests/test_{he['entry_point']}.py"
    if p in ("code", "sql", "query", "diff"):
        return he["prompt"][:200]
    if p == "url":
        return "https://docs.python.org/3/library/" + rng.choice(["itertools", "functools", "collections"]) + ".html"
    return "view"


def _fake_result(rng, corp, he):
    r = rng.random()
    if r < 0.35:
        return he["prompt"]
    if r < 0.6:
        n = rng.randrange(1, 6)
        return (f"============ {n} failed, {rng.randrange(0, 30)} passed in {rng.uniform(0.1, 3):.2f}s ============\n"
                f"FAILED tests/test_{he['entry_point']}.py::test_case_{rng.randrange(1, 9)} - AssertionError")
    if r < 0.8:
        other = rng.choice(corp.humaneval)
        return other["prompt"] + other["solution"]
    return "\n".join(f"{rng.choice(['src', 'tests', 'docs'])}/{rng.choice(corp.humaneval)['entry_point']}.py" for _ in range(rng.randrange(3, 12)))


def synth_data(sink, corp, knobs, scale):
    """Synthetic-training-data generation: "generate N diverse instruction/response pairs about
    X in JSON", self-instruct expansion from seed tasks, Evol-Instruct rewriting, UltraChat-style
    whole dialogues, question/answer pairs from passages.

    Sources: Wang et al. 2022, "Self-Instruct" (arXiv:2212.10560); Taori et al. 2023, Stanford
    Alpaca (52k instructions from text-davinci-003); Xu et al. 2023, "WizardLM / Evol-Instruct"
    (arXiv:2304.12244); Ding et al. 2023, "UltraChat" (arXiv:2305.14233); OpenAI memo
    (2026-02-12) — distillers "mimic the methods of synthetic data generation labs".
    """
    c = Campaign(sink, corp, "synth_data", knobs, scale)

    def make(rng, ac):
        t = rng.choice(W.SYNTH)
        text = t.format(n=rng.choice([5, 10, 10, 20, 20, 25, 30]), topic=rng.choice(W.TOPICS),
                        s1=rng.choice(corp.short_english), s2=rng.choice(corp.short_english),
                        s3=rng.choice(corp.short_english), k=rng.randrange(4, 12),
                        passage=rng.choice(corp.answers)[:2500])
        params = {"max_tokens": rng.choice([4096, 8192, 16000]), "temperature": rng.choice([0.9, 1.0, 1.1])}
        if ac.style.api == "openai.chat" and rng.random() < 0.5:
            params["response_format"] = {"type": "json_object"}
        return Item([u(text)], "json_batch", params=params)
    c.run(make)
    return c


def broad_sampling(sink, corp, knobs, scale):
    """Imitation-style corpus sampling: broad single-turn prompts from a real user-prompt corpus,
    ordinary parameters, no wrappers, no reasoning requests — answers are the product.

    Sources: Taori et al. 2023 (Alpaca) and Chiang et al. 2023 (Vicuna, trained on ShareGPT
    conversations); Gudibande et al. 2023, "The False Promise of Imitating Proprietary LLMs"
    (arXiv:2305.15717) — broad imitation data collected from API outputs; Krishna et al. 2020,
    "Thieves on Sesame Street!" (ICLR, arXiv:1910.12366) — extraction with natural or random
    queries.
    """
    c = Campaign(sink, corp, "broad_sampling", knobs, scale)

    def make(rng, ac):
        lang = rng.choice(ac.langs)
        q = corp.broad_prompt(rng) if lang == "en" else corp.any_lang_prompt(rng, lang)
        return Item([u(c.wrap(rng, ac, q, lang))], "chat")
    c.run(make)
    return c


def rationale_distill(sink, corp, knobs, scale):
    """Task datasets (maths, intent / sentiment / NLI / topic classification) sent with a
    request for a rationale plus the final label, under Orca-style explanation system prompts.

    Sources: Hsieh et al. 2023, "Distilling Step-by-Step!" (arXiv:2305.02301) — LLM rationales
    as extra supervision for small models; Mukherjee et al. 2023, "Orca: Progressive Learning
    from Complex Explanation Traces of GPT-4" (arXiv:2306.02707) — explanation tuning with
    system messages; Ho et al. 2023, "Large Language Models Are Reasoning Teachers"
    (arXiv:2212.10071).
    """
    c = Campaign(sink, corp, "rationale_distill", knobs, scale)

    def make(rng, ac):
        system = ac.state.setdefault("sys", rng.choice(W.ORCA_SYSTEMS + [None]))
        if rng.random() < 0.5:
            q = corp.mgsm.sample(rng, "en") if rng.random() < 0.6 else corp.reasoning_item(rng, math_only=True)
            text = rng.choice(W.RATIONALE_MATH).format(q=q)
        else:
            tmpl, _ = rng.choice(W.RATIONALE_CLS)
            text = tmpl.format(u=corp.chat_line(rng), h=corp.chat_line(rng))
        return Item([u(text)], "rationale", system=system or "", params={"temperature": rng.choice([0, 0.3, None])})
    c.run(make)
    return c


def native_thinking(sink, corp, knobs, scale):
    """Native reasoning harvest: Anthropic ``thinking`` budgets (8k-32k tokens) or OpenAI
    ``reasoning_effort: high`` on hard reasoning / maths / code prompts, from rotating
    residential addresses; no wrappers at all (the trace comes from the parameter).

    Sources: Muennighoff et al. 2025, "s1: Simple test-time scaling" (arXiv:2501.19393) — 1k
    reasoning traces collected from a commercial thinking-model API; GTIG AI Threat Tracker
    (2026-02-12) — reasoning trace coercion; Anthropic (2026-02-23) — reasoning capability as a
    primary target.
    """
    c = Campaign(sink, corp, "native_thinking", knobs, scale)

    def make(rng, ac):
        lang = rng.choice(ac.langs)
        q = c.wrap(rng, ac, c.task(rng, lang, ("rg", "rg", "mgsm", "code")), lang)
        budget = ac.state.setdefault("budget", rng.choice([8000, 10000, 16000, 24000, 32000]))
        p = {"thinking": budget, "max_tokens": budget + rng.choice([2000, 4000, 8000])}
        if ac.style.api != "anthropic.messages":
            p = {"reasoning_effort": "high", "max_tokens": rng.choice([None, 25000, 32000])}
            p = {k: v for k, v in p.items() if v is not None}
        return Item([u(q)], "cot", params=p)
    c.run(make)
    return c


def fake_multiturn(sink, corp, knobs, scale):
    """Harvest prompts wrapped in fabricated conversations: earlier user/assistant turns that the
    model never produced (taken from other people's chats), then the real harvest question, so
    the request looks like a follow-up in a conversation.

    Sources: Xu et al. 2023, "Baize" (arXiv:2304.01196) and Ding et al. 2023, "UltraChat"
    (arXiv:2305.14233) — multi-turn corpora built by feeding a proprietary model fabricated
    dialogue context; docs/detection.md names fabricated assistant turns as an evasion of the
    conversation signal.
    """
    c = Campaign(sink, corp, "fake_multiturn", knobs, scale)

    def make(rng, ac):
        conv = rng.choice(corp.multi_turn)
        k = rng.randrange(1, min(3, len(conv) // 2) + 1)
        turns = [{"role": r, "content": x[:1500]} for r, x in conv[: 2 * k]]
        if turns[-1]["role"] != "assistant":
            turns.append(a(rng.choice(corp.answers)[:800]))
        lang = rng.choice(ac.langs)
        q = c.task(rng, lang, ("rg", "mgsm", "code", "broad"))
        turns.append(u(c.wrap(rng, ac, q, lang)))
        return Item(turns, "cot")
    c.run(make)
    return c


def leaked_key(sink, corp, knobs, scale):
    """A distiller using a legitimate customer's key (leaked from a public repository or bought):
    the owner's own traffic goes on as usual (labelled benign, kind ``leaked_key_owner``) while
    the same key sends harvest traffic from other addresses and another client for a few days.

    Sources: Sysdig Threat Research, "LLMjacking" (2024) — stolen cloud/LLM API keys resold and
    used by third parties; Anthropic (2026-02-23) — access through accounts the distillers did
    not open themselves (resold access); OpenAI memo (2026-02-12).
    """
    c = Campaign(sink, corp, "leaked_key", knobs, scale)
    for ac in c.accounts:
        rng = random.Random(f"{sink.seed}:leaked:{ac.i}")
        # the owner: a small product backend, business hours, its own IP and SDK
        owner_ip = [C.cloud_ip(rng)]
        owner_ua = ac.uas[0]
        owner_sys = f"You are the assistant inside {rng.choice(APP_NAMES)}. Be concise."
        n_owner = int(rng.uniform(40, 160) * (ac.t1 - sink.start_ms) / DAY_MS)
        w = C.hourly_weights(sink.start_ms, sink.days, ac.tz, "business")
        for ts in C.times_from_weights(rng, n_owner, sink.start_ms, w):
            q = corp.broad_prompt(rng) if rng.random() < 0.6 else corp.chat_line(rng)
            c.send(ac, ts, Item([u(q)], "chat", system=owner_sys), rng, label=C.label(ac.id, None, "leaked_key_owner"),
                   key=ac.keys[0], ua=owner_ua, ip=owner_ip[0])
        # the distiller: starts on a random day, other IPs (rotating or cloud), another client
        t0 = sink.start_ms + int(rng.uniform(0.5, 4) * DAY_MS)
        t1 = min(sink.end_ms, t0 + int(rng.uniform(1.5, 3) * DAY_MS))
        d_ua = C.user_agent(rng, ac.api, rng.choice(["requests", "httpx", "aiohttp", "go", "custom"]))
        rotating = rng.random() < 0.5
        d_ips = [C.cloud_ip(rng) for _ in range(3)]
        for ts in C.poisson_times(rng, int(ac.rate * (t1 - t0) / DAY_MS), t0, t1):
            q = c.task(rng, "en", ("rg", "mgsm", "broad", "code"))
            text = c.wrap(rng, ac, q)
            ip = C.residential_ip(rng, rng.choice(c.proxy_countries)) if rotating else rng.choice(d_ips)
            c.send(ac, ts, Item([u(text)], "cot", system=""), rng, key=ac.keys[0], ua=d_ua, ip=ip)
    return c


def narrow_domain(sink, corp, knobs, scale):
    """Narrow capability harvest: code-only (HumanEval tasks and real coding questions) or
    maths-only (GSM-style and procedural maths), ordinary parameters, solution-with-explanation
    requests, one domain per account.

    Sources: Gudibande et al. 2023 — imitation works best when targeted at a narrow task;
    Luo et al. 2023, "WizardCoder" (arXiv:2306.08568) and Yu et al. 2023, "MetaMath"
    (arXiv:2309.12284) — code / maths corpora generated with proprietary models; Anthropic
    (2026-02-23) — MiniMax's traffic concentrated on agentic coding.
    """
    c = Campaign(sink, corp, "narrow_domain", knobs, scale)

    def make(rng, ac):
        dom = "code" if ac.i % 2 == 0 else "math"
        if dom == "code":
            q = corp.code_item(rng)
            if rng.random() < 0.5:
                q = q + "\n\n" + rng.choice(["Complete the implementation and add a short docstring.",
                                             "Write the full solution with comments.", ""])
            return Item([u(q.strip())], "code")
        q = corp.mgsm.sample(rng, "en") if rng.random() < 0.5 else corp.reasoning_item(rng, math_only=True)
        return Item([u(c.wrap(rng, ac, q))], "cot")
    c.run(make)
    return c


def adaptive_ramp(sink, corp, knobs, scale):
    """Starts as an ordinary customer (chat at a human rhythm) and after a warm-up of
    ``warmup_days`` switches to harvest, ramping its rate up day by day; half the accounts
    switch the day a "new model" appears (a fixed day of the week).

    Sources: Anthropic (2026-02-23) — MiniMax redirected nearly half its traffic to a new model
    within 24 hours of its release; accounts are warmed up to pass new-account checks.
    """
    c = Campaign(sink, corp, "adaptive_ramp", knobs, scale)
    warm = knobs.get("warmup_days", 2.0)
    release = sink.start_ms + int(c.rng.uniform(2, 4) * DAY_MS)
    for ac in c.accounts:
        rng = random.Random(f"{sink.seed}:ramp:{ac.i}")
        switch = release if ac.i % 2 == 0 else ac.t0 + int(warm * DAY_MS * rng.uniform(0.7, 1.3))
        for ts in c.times(ac, rng, rate=rng.uniform(8, 25), t0=ac.t0, t1=switch, cadence="diurnal"):
            c.send(ac, ts, c.cover_item(rng, ac), rng)
        d = 0
        t = switch
        while t < ac.t1:
            t_next = min(ac.t1, t + DAY_MS)
            r = ac.rate * min(1.0, 0.25 * (d + 1))
            for ts in c.times(ac, rng, rate=r, t0=t, t1=t_next, cadence="flat"):
                q = c.task(rng, rng.choice(ac.langs), ("rg", "mgsm", "broad", "code"))
                c.send(ac, ts, Item([u(c.wrap(rng, ac, q))], "cot"), rng)
            d += 1
            t = t_next
    return c


def trace_translation(sink, corp, knobs, scale):
    """Multilingual translation of reasoning: a (fabricated) earlier exchange on a problem,
    then a follow-up asking for the reasoning "you just did" rendered into another language;
    or single-turn "answer in L and write out the working in L".

    Sources: GTIG AI Threat Tracker (2026-02-12) — many prompts in non-English languages to
    collect reasoning across languages; Anthropic (2026-02-23).
    """
    c = Campaign(sink, corp, "trace_translation", knobs, scale)

    def make(rng, ac):
        src = rng.choice(["en"] + [x for x in ac.langs if x in corp.mgsm.templates])
        tgt = rng.choice([x for x in ac.langs if x != src] or ["zh"])
        q = corp.mgsm.sample(rng, src) if rng.random() < 0.7 else corp.reasoning_item(rng)
        name = W.LANG_NAMES.get(tgt, (tgt, tgt))
        if rng.random() < 0.6:
            short = rng.choice(corp.answers)[: rng.randrange(80, 400)]
            fl = rng.choice(list(W.TRANSLATE_TRACE)) if rng.random() < 0.4 else "en"
            follow = rng.choice(W.TRANSLATE_TRACE[fl]).format(L=name[1] if fl != "en" else name[0])
            return Item([u(q), a(short), u(follow)], "trace")
        return Item([u(rng.choice(W.ANSWER_IN).format(q=q, L=name[0]))], "trace")
    c.run(make)
    return c


APP_NAMES = ["Brightdesk", "Quillon", "Pocketmind", "Heyfolio", "Tandemly", "Nimbo", "Askwise", "Chatterbee",
             "Lexa Notes", "Studymate", "Sparrow", "Wayfinder", "Harbor", "Plume", "Kitechat", "Moxie",
             "Fable", "Ledgerly", "Cobalt Help", "Parrot Pro", "Beacon", "Tidal", "Marlow", "Juniper"]

ALL_LANGS = ["en", "zh", "ja", "ko", "ru", "es", "fr", "de", "pt", "it", "ar", "hi", "tr", "vi", "id"]

# name -> (function, default knobs)
STRATEGIES = {
    "low_and_slow": (low_and_slow, dict(accounts=60, rate=25, ip_pool="residential", creation="aged", verified=0.75,
                                        wrappers="mixed", cover_share=0.3, languages=["en", "en", "en", "es", "de", "fr"],
                                        apis={"openai.chat": 0.55, "anthropic.messages": 0.4, "openai.completions": 0.05},
                                        system_prompt="distinct", cadence="diurnal", start_spread=0.5, min_accounts=20)),
    "param_probe": (param_probe, dict(accounts=6, rate=300, ip_pool="cloud", creation="new", verified=0.3,
                                      apis={"openai.chat": 0.6, "openai.completions": 0.4}, cadence="paced",
                                      variants=["walk", "toplogprobs"], start_spread=2.0, active_days=4.5)),
    "judge_harvest": (judge_harvest, dict(accounts=6, rate=150, ip_pool="cloud", creation="new", verified=0.2,
                                          apis={"openai.chat": 0.5, "anthropic.messages": 0.5}, cadence="flat")),
    "reseller_mixed": (reseller_mixed, dict(accounts=6, rate=420, ip_pool="cloud", creation="aged", verified=0.9,
                                            wrappers="mixed", distill_share=0.15, user_ids="both",
                                            apis={"openai.chat": 0.7, "anthropic.messages": 0.3}, cadence="diurnal")),
    "cot_multilingual": (cot_multilingual, dict(accounts=8, rate=140, ip_pool="rotating", creation="new", verified=0.1,
                                                wrappers="paraphrase", languages=ALL_LANGS,
                                                apis={"openai.chat": 0.5, "anthropic.messages": 0.5}, cadence="flat",
                                                max_tokens_choices=[4096, 8192, None])),
    "hydra_shared": (hydra_shared, dict(accounts=50, rate=25, ip_pool="shared_proxy", creation="burst", verified=0.0,
                                        wrappers="paraphrase", system_prompt="shared", cadence="flat",
                                        apis={"openai.chat": 0.7, "anthropic.messages": 0.3}, start_spread=0.3,
                                        min_accounts=30, max_tokens_choices=[4096, 8192])),
    "hydra_distributed": (hydra_distributed, dict(accounts=40, rate=30, ip_pool="rotating", creation="aged",
                                                  verified=0.6, wrappers="mixed", system_prompt="distinct",
                                                  languages=["en", "en", "zh", "es", "ru", "pt", "ko"],
                                                  apis={"openai.chat": 0.5, "anthropic.messages": 0.45,
                                                        "openai.completions": 0.05},
                                                  cadence="diurnal", start_spread=1.0, min_accounts=30)),
    "agentic_harvest": (agentic_harvest, dict(accounts=6, rate=140, ip_pool="cloud", creation="new", verified=0.3,
                                              apis={"openai.chat": 0.4, "anthropic.messages": 0.6}, cadence="flat")),
    "synth_data": (synth_data, dict(accounts=6, rate=120, ip_pool="cloud", creation="new", verified=0.3,
                                    apis={"openai.chat": 0.6, "anthropic.messages": 0.4}, cadence="paced")),
    "broad_sampling": (broad_sampling, dict(accounts=6, rate=170, ip_pool="none", creation="aged", verified=0.8,
                                            apis={"openai.chat": 0.7, "anthropic.messages": 0.3}, cadence="flat",
                                            max_tokens_choices=[None, 1024, 2048])),
    "rationale_distill": (rationale_distill, dict(accounts=6, rate=150, ip_pool="cloud", creation="new", verified=0.4,
                                                  apis={"openai.chat": 0.7, "openai.completions": 0.1,
                                                        "anthropic.messages": 0.2}, cadence="paced",
                                                  max_tokens_choices=[512, 1024, None])),
    "native_thinking": (native_thinking, dict(accounts=8, rate=110, ip_pool="rotating", creation="new", verified=0.2,
                                              apis={"anthropic.messages": 0.6, "openai.chat": 0.4},
                                              languages=["en", "en", "zh", "ru"], cadence="flat", model_kind="reason")),
    "fake_multiturn": (fake_multiturn, dict(accounts=6, rate=130, ip_pool="residential", creation="aged", verified=0.7,
                                            wrappers="mixed", languages=["en", "en", "es", "zh"],
                                            apis={"openai.chat": 0.6, "anthropic.messages": 0.4}, cadence="flat")),
    "leaked_key": (leaked_key, dict(accounts=5, rate=300, ip_pool="cloud", creation="aged", verified=0.9,
                                    wrappers="mixed", apis={"openai.chat": 0.7, "anthropic.messages": 0.3})),
    "narrow_domain": (narrow_domain, dict(accounts=6, rate=140, ip_pool="none", creation="aged", verified=0.7,
                                          wrappers="light", apis={"openai.chat": 0.6, "anthropic.messages": 0.4},
                                          cadence="flat")),
    "adaptive_ramp": (adaptive_ramp, dict(accounts=6, rate=220, ip_pool="residential", creation="new", verified=0.5,
                                          wrappers="mixed", warmup_days=2.0, start_spread=0.5,
                                          apis={"openai.chat": 0.6, "anthropic.messages": 0.4}, cadence="flat")),
    "trace_translation": (trace_translation, dict(accounts=6, rate=110, ip_pool="rotating", creation="new",
                                                  verified=0.2, max_tokens_choices=[2048, 4096, 8192], languages=ALL_LANGS,
                                                  apis={"openai.chat": 0.6, "anthropic.messages": 0.4},
                                                  cadence="flat")),
}


def run_strategy(name, sink, corp, overrides=None, scale=1.0):
    fn, defaults = STRATEGIES[name]
    knobs = _merge(defaults, overrides)
    c = fn(sink, corp, knobs, scale)
    m = c.manifest()
    m["source"] = (fn.__doc__ or "").strip()
    return m
