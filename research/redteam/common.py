"""Shared machinery: ids, addresses, user agents, account metadata, arrival times, request
bodies for the three APIs, realistic responses, and the event sink.

Everything draws from ``random.Random`` instances seeded from the run seed and a component
name, so a run is a pure function of (seed, knobs).  Nothing iterates over a ``set``.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIN_MS = 60_000

# ----------------------------------------------------------------------------- models

MODELS = {
    "large": ["orbit-large", "orbit-large-2026-01"],
    "small": ["orbit-mini", "orbit-mini-latest"],
    "reason": ["orbit-reasoner", "orbit-large-thinking"],
}


def pick_model(rng, kind="large"):
    return rng.choice(MODELS[kind])


# ----------------------------------------------------------------------------- countries & IPs

# First octets of address space each registry region announces for consumer ISPs (a coarse,
# public picture; the remaining octets are random).  Hosting/cloud ranges are listed apart.
RESIDENTIAL = {
    "US": [24, 47, 50, 63, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 96, 97, 98, 99, 107, 108, 173, 174],
    "CA": [24, 70, 99, 142, 174, 184, 206],
    "GB": [2, 5, 31, 51, 62, 77, 78, 81, 82, 86, 90, 92, 94, 109],
    "DE": [2, 31, 37, 46, 77, 79, 84, 87, 88, 89, 91, 93, 95],
    "FR": [2, 5, 37, 78, 80, 82, 83, 86, 88, 90, 92],
    "NL": [31, 62, 77, 80, 83, 84, 145],
    "ES": [2, 5, 37, 79, 81, 83, 88],
    "IT": [2, 5, 37, 79, 82, 87, 93, 151],
    "PL": [5, 31, 37, 46, 78, 83, 89, 91, 178, 188],
    "SE": [31, 46, 78, 81, 83, 85, 90, 94],
    "UA": [31, 37, 46, 91, 93, 176, 178],
    "RU": [5, 31, 37, 46, 77, 79, 85, 91, 95, 176, 178, 188],
    "TR": [5, 31, 78, 85, 88, 176, 178],
    "BR": [138, 143, 152, 177, 179, 186, 187, 189, 191, 200, 201],
    "MX": [148, 177, 187, 189, 200, 201],
    "AR": [181, 186, 190, 200],
    "CO": [181, 186, 190, 191],
    "IN": [14, 27, 49, 59, 103, 106, 110, 115, 117, 122, 157, 182],
    "CN": [27, 36, 42, 58, 60, 61, 101, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 123, 124, 125, 180, 183, 222, 223],
    "HK": [14, 42, 58, 61, 103, 112, 113, 116, 119, 202, 218, 219],
    "TW": [1, 36, 42, 59, 60, 61, 101, 111, 114, 118, 122, 220],
    "SG": [8, 27, 42, 101, 103, 111, 116, 118, 119, 175],
    "JP": [14, 27, 36, 42, 49, 58, 59, 60, 61, 101, 106, 110, 111, 114, 118, 119, 124, 126, 133, 153, 180, 210, 219, 220, 221],
    "KR": [14, 27, 39, 49, 58, 59, 61, 106, 110, 112, 114, 115, 118, 121, 125, 175, 180, 182, 183, 210, 211, 218, 220, 221, 222],
    "VN": [14, 27, 42, 58, 103, 113, 115, 116, 117, 118, 123, 171, 183],
    "ID": [36, 39, 103, 110, 112, 114, 180, 182],
    "PH": [49, 110, 112, 119, 120, 122, 124, 130, 175, 180],
    "TH": [1, 27, 49, 58, 110, 115, 124, 171, 182, 184],
    "NG": [41, 102, 105, 129, 154, 196, 197],
    "KE": [41, 102, 105, 154, 196, 197],
    "ZA": [41, 102, 105, 129, 154, 196, 197],
    "EG": [41, 45, 102, 154, 156, 196, 197],
    "AU": [1, 14, 27, 49, 58, 101, 110, 115, 120, 121, 124, 144, 203],
    "IL": [2, 5, 31, 37, 46, 77, 79, 84, 87, 89, 109, 212],
    "AE": [2, 5, 31, 37, 46, 80, 83, 86, 91, 94, 185],
    "SA": [2, 5, 31, 37, 46, 51, 78, 84, 86, 95, 188],
    "CH": [5, 31, 46, 62, 77, 81, 83, 85, 178, 212],
}
IPV6_PREFIX = {"US": ["2600", "2601", "2603", "2605", "2607"], "DE": ["2a02", "2003", "2a01"],
               "FR": ["2a01", "2a02"], "GB": ["2a00", "2a02", "2a05"], "JP": ["2400", "2404", "240b"],
               "IN": ["2401", "2405", "2409"], "BR": ["2804", "2801"], "CN": ["240e", "2408", "2409"],
               "KR": ["2001:2d8", "2406"], "PL": ["2a02", "2a01"], "NL": ["2a02", "2001:1c"]}
CLOUD = [3, 13, 15, 18, 20, 23, 34, 35, 40, 44, 45, 52, 54, 64, 65, 104, 129, 134, 137, 138, 139,
         141, 143, 146, 147, 149, 152, 155, 157, 158, 159, 161, 162, 164, 165, 167, 168, 170, 172,
         185, 188, 192, 193, 194, 195, 198, 199, 204, 205, 207, 208, 209]

COUNTRY_WEIGHTS = {
    "US": 24, "IN": 9, "GB": 6, "DE": 6, "BR": 5, "FR": 4, "CA": 4, "JP": 3, "KR": 3, "ES": 2.5,
    "IT": 2, "NL": 2, "PL": 2, "AU": 2, "MX": 2, "ID": 2, "VN": 2, "TR": 1.5, "SG": 1.5, "SE": 1,
    "UA": 1, "NG": 1.5, "KE": 0.7, "ZA": 0.8, "EG": 0.8, "PH": 1.2, "TH": 1, "AR": 1, "CO": 0.8,
    "IL": 0.8, "AE": 0.8, "SA": 0.6, "CH": 0.8, "TW": 1, "HK": 0.8, "RU": 0.5, "CN": 0.3,
}
TZ = {"US": -6, "CA": -5, "GB": 0, "DE": 1, "FR": 1, "NL": 1, "ES": 1, "IT": 1, "PL": 1, "SE": 1,
      "UA": 2, "RU": 3, "TR": 3, "BR": -3, "MX": -6, "AR": -3, "CO": -5, "IN": 5.5, "CN": 8,
      "HK": 8, "TW": 8, "SG": 8, "JP": 9, "KR": 9, "VN": 7, "ID": 7, "PH": 8, "TH": 7, "NG": 1,
      "KE": 3, "ZA": 2, "EG": 2, "AU": 10, "IL": 2, "AE": 4, "SA": 3, "CH": 1}
COUNTRY_LANG = {"US": "en", "CA": "en", "GB": "en", "AU": "en", "NG": "en", "KE": "en", "ZA": "en",
                "IN": "hi", "DE": "de", "FR": "fr", "NL": "nl", "ES": "es", "IT": "it", "PL": "pl",
                "SE": "sv", "UA": "uk", "RU": "ru", "TR": "tr", "BR": "pt", "MX": "es", "AR": "es",
                "CO": "es", "CN": "zh", "HK": "zh", "TW": "zh", "SG": "en", "JP": "ja", "KR": "ko",
                "VN": "vi", "ID": "id", "PH": "tl", "TH": "th", "EG": "ar", "IL": "he", "AE": "ar",
                "SA": "ar", "CH": "de"}
RESERVED_FIRST = {0, 10, 100, 127, 169, 172, 192, 198, 203, 224}


def pick_country(rng, weights=None):
    w = weights or COUNTRY_WEIGHTS
    keys = list(w)
    return rng.choices(keys, [w[k] for k in keys])[0]


def _ipv4(rng, first):
    while True:
        b, c, d = rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)
        if first == 172 and 16 <= b < 32:
            continue
        if first == 192 and b in (0, 168):
            continue
        if first == 198 and b in (18, 19, 51):
            continue
        if first == 203 and b == 0:
            continue
        if first == 100 and 64 <= b < 128:
            continue
        if first in (10, 127, 0, 169) or first >= 224:
            first = 45
        return f"{first}.{b}.{c}.{d}"


def residential_ip(rng, country, v6_share=0.08):
    if country in IPV6_PREFIX and rng.random() < v6_share:
        p = rng.choice(IPV6_PREFIX[country])
        parts = p.split(":")
        while len(parts) < 3:
            parts.append(f"{rng.randrange(1, 0xffff):x}")
        tail = ":".join(f"{rng.randrange(0x10000):x}" for _ in range(4))
        return ":".join(parts[:3]) + ":" + f"{rng.randrange(0x10000):x}:" + tail
    firsts = RESIDENTIAL.get(country) or RESIDENTIAL["US"]
    return _ipv4(rng, rng.choice(firsts))


def cloud_ip(rng):
    return _ipv4(rng, rng.choice(CLOUD))


def subnet24(rng, cloud=True, country="US"):
    ip = cloud_ip(rng) if cloud else residential_ip(rng, country, 0)
    return ip.rsplit(".", 1)[0]


def ip_in(rng, subnet):
    return f"{subnet}.{rng.randrange(2, 254)}"


# ----------------------------------------------------------------------------- user agents

_EXCLUDE_UA = {  # strings another data set uses; never emit them verbatim
    "python-requests/2.32.3", "OpenAI/Python 1.51.0", "Anthropic/JS 0.27.3", "AsyncOpenAI/Python 1.45.0",
    "Anthropic/Python 0.39.0", "OpenAI/JS 4.67.3", "OpenAI/Python 1.40.3", "OpenAI/JS 4.52.0",
    "axios/1.7.7", "langchain-openai/0.2.1", "curl/8.5.0", "Go-http-client/2.0", "okhttp/4.12.0",
    "llm/0.17 (python)", "lm-eval-harness/0.4.5",
}


def user_agent(rng, api, family=None):
    """A plausible client string for `api`; `family` forces one of the keys below."""
    fams_openai = ["openai_py", "openai_py", "openai_py", "async_openai", "openai_js", "openai_js", "requests",
                   "httpx", "curl", "axios", "go", "okhttp", "litellm", "aiohttp", "node_fetch", "custom"]
    fams_anth = ["anth_py", "anth_py", "anth_py", "anth_js", "anth_js", "requests", "httpx", "curl", "axios",
                 "go", "litellm", "custom"]
    if family is None:
        family = rng.choice(fams_anth if api == "anthropic.messages" else fams_openai)
    for _ in range(20):
        ua = _ua(rng, family)
        if ua not in _EXCLUDE_UA:
            return ua
    return ua + " (x)"


def _ua(rng, fam):
    r = rng.randrange
    if fam == "openai_py":
        return f"OpenAI/Python 1.{r(30, 110)}.{r(0, 4)}"
    if fam == "async_openai":
        return f"AsyncOpenAI/Python 1.{r(30, 110)}.{r(0, 4)}"
    if fam == "openai_js":
        return f"OpenAI/JS {rng.choice(['4', '5'])}.{r(10, 100)}.{r(0, 6)}"
    if fam == "anth_py":
        return f"Anthropic/Python 0.{r(25, 80)}.{r(0, 3)}"
    if fam == "anth_js":
        return f"Anthropic/JS 0.{r(20, 70)}.{r(0, 4)}"
    if fam == "requests":
        return f"python-requests/2.{r(25, 33)}.{r(0, 4)}"
    if fam == "httpx":
        return f"python-httpx/0.{r(24, 29)}.{r(0, 3)}"
    if fam == "curl":
        return rng.choice([f"curl/7.{r(68, 89)}.{r(0, 2)}", f"curl/8.{r(0, 13)}.{r(0, 2)}"])
    if fam == "axios":
        return f"axios/1.{r(3, 10)}.{r(0, 9)}"
    if fam == "go":
        return rng.choice(["Go-http-client/1.1", "Go-http-client/2.0", f"resty/2.{r(7, 16)}.{r(0, 3)}"])
    if fam == "okhttp":
        return f"okhttp/{rng.choice(['4', '5'])}.{r(9, 13)}.{r(0, 4)}"
    if fam == "litellm":
        return f"litellm/1.{r(30, 80)}.{r(0, 20)}"
    if fam == "aiohttp":
        return f"Python/3.{r(9, 14)} aiohttp/3.{r(8, 12)}.{r(0, 6)}"
    if fam == "node_fetch":
        return rng.choice(["node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", f"undici/{r(5, 7)}.{r(0, 20)}.0", "node"])
    if fam == "browser":
        v = r(118, 140)
        return rng.choice([
            f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
            f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
            f"Mozilla/5.0 (X11; Linux x86_64; rv:{r(115, 135)}.0) Gecko/20100101 Firefox/{r(115, 135)}.0"])
    # custom client
    names = ["acme-worker", "lighthouse", "ragkit", "evalrunner", "pipeline", "botframe", "hermes-client",
             "tessera", "quill", "relay", "ingest", "copilot-shim", "sidekick", "agentd", "scribe"]
    return f"{rng.choice(names)}/{r(0, 5)}.{r(0, 20)}.{r(0, 10)}"


# ----------------------------------------------------------------------------- email domains

WEBMAIL = ["gmail.com", "gmail.com", "gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com",
           "proton.me", "gmx.de", "web.de", "yandex.ru", "mail.ru", "qq.com", "163.com", "naver.com",
           "yahoo.co.jp", "hotmail.fr", "libero.it", "orange.fr", "t-online.de", "rediffmail.com", "uol.com.br",
           "daum.net", "live.com", "aol.com", "zoho.com", "tutanota.com"]
_SYL = ["lu", "ma", "ra", "ko", "ve", "ti", "no", "sa", "be", "qu", "zen", "dor", "lin", "pax", "tor", "vi",
        "mo", "ar", "el", "ion", "fy", "ly", "bit", "gen", "sol", "tek", "ai", "io", "ka", "ri"]
UNIS = ["mit.edu", "cs.cmu.edu", "stanford.edu", "berkeley.edu", "ox.ac.uk", "cam.ac.uk", "ethz.ch", "epfl.ch",
        "tum.de", "uni-heidelberg.de", "u-tokyo.ac.jp", "kaist.ac.kr", "tsinghua.edu.cn", "nus.edu.sg",
        "iitb.ac.in", "usp.br", "utoronto.ca", "uva.nl", "kth.se", "unimelb.edu.au", "uw.edu", "umich.edu",
        "inria.fr", "polimi.it", "uba.ar", "unam.mx", "uct.ac.za"]


def company_domain(rng):
    name = "".join(rng.choice(_SYL) for _ in range(rng.randrange(2, 4)))
    return name + rng.choice([".com", ".com", ".io", ".ai", ".co", ".dev", ".app", ".net", ".de", ".fr",
                               ".co.uk", ".in", ".com.br", ".jp", ".kr", ".tech"])


def email_domain(rng, kind="mixed"):
    if kind == "webmail":
        return rng.choice(WEBMAIL)
    if kind == "company":
        return company_domain(rng)
    if kind == "university":
        return rng.choice(UNIS)
    x = rng.random()
    return rng.choice(WEBMAIL) if x < 0.55 else company_domain(rng) if x < 0.93 else rng.choice(UNIS)


# ----------------------------------------------------------------------------- time

def iso(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# hour-of-day weights (local time) for people using an app
HUMAN = [0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.6, 0.9, 1.1, 1.2, 1.2, 1.1, 1.15, 1.2, 1.2, 1.15, 1.05,
         1.0, 1.05, 1.1, 1.0, 0.8, 0.5]
BUSINESS = [0.03, 0.02, 0.02, 0.02, 0.02, 0.04, 0.1, 0.4, 1.0, 1.3, 1.4, 1.3, 1.0, 1.2, 1.4, 1.3, 1.2, 0.9,
            0.5, 0.3, 0.25, 0.2, 0.12, 0.06]
EVENING = [0.5, 0.3, 0.15, 0.08, 0.05, 0.05, 0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8, 0.9, 1.0,
           1.2, 1.4, 1.5, 1.4, 1.1, 0.8]
PROFILES = {"human": HUMAN, "business": BUSINESS, "evening": EVENING, "flat": [1.0] * 24}


def hourly_weights(start_ms, days, tz_h, profile="human", weekend=0.7, day_from=0.0, day_to=None,
                   jitter_rng=None):
    """Weights for every UTC hour of the window (local profile shifted by tz, weekends scaled)."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    H = int(days * 24)
    w = []
    d0 = datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc)
    wd0 = d0.weekday()
    lo = int(day_from * 24)
    hi = int((day_to if day_to is not None else days) * 24)
    for h in range(H):
        if h < lo or h >= hi:
            w.append(0.0)
            continue
        local = h + tz_h
        lh = int(local) % 24
        wd = (wd0 + int(math.floor(local / 24))) % 7
        x = prof[lh] * (weekend if wd >= 5 else 1.0)
        if jitter_rng is not None:
            x *= jitter_rng.uniform(0.6, 1.4)
        w.append(x)
    return w


def times_from_weights(rng, n, start_ms, weights):
    if n <= 0 or not any(weights):
        return []
    hours = rng.choices(range(len(weights)), weights, k=n)
    return sorted(start_ms + h * HOUR_MS + int(rng.random() * HOUR_MS) for h in hours)


def poisson_times(rng, n, t0, t1):
    return sorted(t0 + int(rng.random() * (t1 - t0)) for _ in range(n))


def paced_times(rng, n, t0, t1, cv=0.15):
    if n <= 0:
        return []
    mean = (t1 - t0) / n
    out, t = [], t0 + rng.random() * mean
    for _ in range(n):
        out.append(int(t))
        t += max(50.0, rng.gauss(mean, mean * cv))
    return [x for x in out if x < t1] or [t0]


def gap_ms(rng, median_s, sigma=0.8, lo_s=0.2):
    return int(max(lo_s, rng.lognormvariate(math.log(median_s), sigma)) * 1000)


# ----------------------------------------------------------------------------- tokens & responses

def ntok(text) -> int:
    if not text:
        return 0
    if isinstance(text, str):
        return max(1, (len(text.encode("utf-8")) + 3) // 4)
    return max(1, len(json.dumps(text, ensure_ascii=False).encode("utf-8")) // 4)


# median / sigma of answer lengths (output tokens) by the kind of answer a request asks for
ANSWER = {
    "chat": (280, 0.7), "short": (60, 0.7), "casual": (45, 0.6), "code": (420, 0.6), "cot": (650, 0.5),
    "trace": (1400, 0.45), "bench_cot": (330, 0.5), "bench_short": (12, 0.8), "judge": (260, 0.45),
    "judge_short": (40, 0.6), "json_batch": (2600, 0.35), "rationale": (260, 0.45), "summary": (170, 0.45),
    "extract": (110, 0.5), "tool_call": (90, 0.5), "plan": (900, 0.45), "essay_feedback": (420, 0.4),
    "rag": (180, 0.5), "testdata": (900, 0.4), "thinking": (2200, 0.55), "moderation": (70, 0.4),
}


def out_tokens(rng, kind, in_tok=0):
    if kind in ("probe", "classify", "loglik"):
        return 1
    if kind == "ping":
        return rng.randrange(1, 6)
    if kind == "translate":
        return max(5, int(in_tok * rng.uniform(0.85, 1.35)))
    med, sig = ANSWER.get(kind, ANSWER["chat"])
    return max(1, int(rng.lognormvariate(math.log(med), sig)))


def response(rng, api, in_tok, want_out, max_tokens=None, tool_call=False, error_rate=0.002):
    if rng.random() < error_rate:
        st = rng.choice([429, 429, 429, 500, 503, 400, 529 if api == "anthropic.messages" else 502])
        return {"status": st, "finish_reason": None, "usage": {"input_tokens": 0 if st != 400 else in_tok,
                                                                 "output_tokens": 0}}
    out = want_out
    anth = api == "anthropic.messages"
    if tool_call:
        fr = "tool_use" if anth else "tool_calls"
    else:
        fr = "end_turn" if anth else "stop"
    if max_tokens is not None and max_tokens >= 0 and out >= max_tokens:
        out = max_tokens
        if not tool_call:
            fr = "max_tokens" if anth else "length"
    return {"status": 200, "finish_reason": fr, "usage": {"input_tokens": in_tok, "output_tokens": out}}


# ----------------------------------------------------------------------------- requests

@dataclass
class Style:
    """How one client writes requests (fixed per account or per app)."""
    api: str = "openai.chat"
    model: str = "orbit-large"
    max_key: str = "max_tokens"          # or max_completion_tokens (openai.chat)
    system_role: str = "system"          # or developer
    anth_blocks: bool = False            # anthropic content as [{"type":"text",...}]
    stream: bool = False
    user_field: str = "user"             # user | safety_identifier (openai.chat)
    extra: dict = field(default_factory=dict)


def make_style(rng, api, model_kind="large", **kw):
    st = Style(api=api, model=pick_model(rng, model_kind))
    if api == "openai.chat":
        st.max_key = "max_completion_tokens" if rng.random() < 0.3 else "max_tokens"
        st.system_role = "developer" if rng.random() < 0.12 else "system"
        st.user_field = "safety_identifier" if rng.random() < 0.3 else "user"
    if api == "anthropic.messages":
        st.anth_blocks = rng.random() < 0.35
    st.stream = rng.random() < 0.25
    for k, v in kw.items():
        setattr(st, k, v)
    return st


def build_request(style: Style, system, turns, *, max_tokens=None, temperature=None, top_p=None, n=None,
                  logprobs=None, top_logprobs=None, logit_bias=None, user_id=None, thinking=None,
                  reasoning_effort=None, tools=None, stop=None, response_format=None, seed=None, echo=None,
                  stream=None, extra=None):
    """Builds the wire body.  `turns`: [{"role": "user"|"assistant"|"tool", "content": str,
    "tool_calls": [...], "tool_call_id": ...}] in a neutral form; `tools`: [{"name","description","parameters"}]."""
    api = style.api
    stream = style.stream if stream is None else stream
    if api == "openai.completions":
        prompt = _flatten(system, turns)
        req = {"model": style.model, "prompt": prompt}
        if max_tokens is not None:
            req["max_tokens"] = max_tokens
        if temperature is not None:
            req["temperature"] = temperature
        if top_p is not None:
            req["top_p"] = top_p
        if n is not None:
            req["n"] = n
        if logprobs or top_logprobs:
            req["logprobs"] = top_logprobs if top_logprobs is not None else 5
        if echo:
            req["echo"] = True
        if logit_bias:
            req["logit_bias"] = {str(k): v for k, v in logit_bias.items()}
        if stop:
            req["stop"] = stop
        if user_id:
            req["user"] = user_id
        if seed is not None:
            req["seed"] = seed
        if stream:
            req["stream"] = True
    elif api == "openai.chat":
        msgs = []
        if system:
            msgs.append({"role": style.system_role, "content": system})
        for t in turns:
            if t["role"] == "assistant" and t.get("tool_calls"):
                msgs.append({"role": "assistant", "content": t.get("content"),
                             "tool_calls": [{"id": c["id"], "type": "function",
                                             "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                                            for c in t["tool_calls"]]})
            elif t["role"] == "tool":
                msgs.append({"role": "tool", "tool_call_id": t["tool_call_id"], "content": t["content"]})
            else:
                msgs.append({"role": t["role"], "content": t["content"]})
        req = {"model": style.model, "messages": msgs}
        if max_tokens is not None:
            req[style.max_key] = max_tokens
        if temperature is not None:
            req["temperature"] = temperature
        if top_p is not None:
            req["top_p"] = top_p
        if n is not None:
            req["n"] = n
        if logprobs:
            req["logprobs"] = True
        if top_logprobs is not None:
            req["logprobs"] = True
            req["top_logprobs"] = top_logprobs
        if logit_bias:
            req["logit_bias"] = {str(k): v for k, v in logit_bias.items()}
        if tools:
            req["tools"] = [{"type": "function", "function": {"name": x["name"], "description": x["description"],
                                                              "parameters": x["parameters"]}} for x in tools]
            req["tool_choice"] = "auto"
        if reasoning_effort:
            req["reasoning_effort"] = reasoning_effort
        if stop:
            req["stop"] = stop
        if response_format:
            req["response_format"] = response_format
        if seed is not None:
            req["seed"] = seed
        if user_id:
            req[style.user_field] = user_id
        if stream:
            req["stream"] = True
            req["stream_options"] = {"include_usage": True}
    else:  # anthropic.messages
        msgs = []
        for t in turns:
            if t["role"] == "assistant" and t.get("tool_calls"):
                blocks = []
                if t.get("content"):
                    blocks.append({"type": "text", "text": t["content"]})
                for c in t["tool_calls"]:
                    blocks.append({"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["arguments"]})
                msgs.append({"role": "assistant", "content": blocks})
            elif t["role"] == "tool":
                block = {"type": "tool_result", "tool_use_id": t["tool_call_id"], "content": t["content"]}
                if msgs and msgs[-1]["role"] == "user" and isinstance(msgs[-1]["content"], list) and \
                        msgs[-1]["content"] and msgs[-1]["content"][0].get("type") == "tool_result":
                    msgs[-1]["content"].append(block)
                else:
                    msgs.append({"role": "user", "content": [block]})
            else:
                c = t["content"]
                if style.anth_blocks:
                    c = [{"type": "text", "text": c}]
                msgs.append({"role": t["role"], "content": c})
        req = {"model": style.model, "max_tokens": max_tokens if max_tokens is not None else 1024, "messages": msgs}
        if system:
            req["system"] = [{"type": "text", "text": system}] if style.anth_blocks else system
        if temperature is not None:
            req["temperature"] = temperature
        if top_p is not None:
            req["top_p"] = top_p
        if tools:
            req["tools"] = [{"name": x["name"], "description": x["description"], "input_schema": x["parameters"]}
                            for x in tools]
        if thinking:
            req["thinking"] = {"type": "enabled", "budget_tokens": thinking}
            if req["max_tokens"] <= thinking:
                req["max_tokens"] = thinking + rng_free_margin(thinking)
        if stop:
            req["stop_sequences"] = stop if isinstance(stop, list) else [stop]
        if user_id:
            req["metadata"] = {"user_id": user_id}
        if stream:
            req["stream"] = True
    if extra:
        req.update(extra)
    if style.extra:
        req.update(style.extra)
    return req


def rng_free_margin(thinking):
    return 4096 if thinking >= 4096 else 2048


def _flatten(system, turns):
    if len(turns) == 1 and turns[0]["role"] == "user" and not system:
        return turns[0]["content"]
    parts = []
    if system:
        parts.append(system.strip() + "\n")
    for t in turns:
        who = "User" if t["role"] == "user" else "Assistant" if t["role"] == "assistant" else "Tool"
        parts.append(f"{who}: {t.get('content') or ''}")
    parts.append("Assistant:")
    return "\n\n".join(parts)


def input_tokens(system, turns, tools=None):
    n = ntok(system) + 3 * len(turns) + 4
    for t in turns:
        n += ntok(t.get("content") or "")
        if t.get("tool_calls"):
            n += ntok(t["tool_calls"])
    if tools:
        n += ntok(tools)
    return n


def u(content):
    return {"role": "user", "content": content}


def a(content):
    return {"role": "assistant", "content": content}


# ----------------------------------------------------------------------------- the sink

class Sink:
    """Collects accounts and exchanges; everything else writes through it."""

    def __init__(self, seed, start_ms, days):
        self.seed = seed
        self.start_ms = start_ms
        self.days = days
        self.end_ms = start_ms + int(days * DAY_MS)
        self.events = []        # (ts, seq, line_without_ts, label)
        self.accounts = {}      # id -> metadata dict
        self._ids = set()
        self._seq = 0
        self.id_rng = random.Random(f"{seed}:ids")

    def rng(self, name):
        return random.Random(f"{self.seed}:{name}")

    def new_id(self, prefix, nhex=8):
        while True:
            x = prefix + "".join(self.id_rng.choice("0123456789abcdef") for _ in range(nhex))
            if x not in self._ids:
                self._ids.add(x)
                return x

    def add_account(self, rng, *, created_ms, tier, domain, country, verified, group=None):
        acct = self.new_id("acct_")
        self.accounts[acct] = {"account": acct, "created": iso(int(created_ms)), "tier": tier,
                               "email_domain": domain, "country": country, "verified": bool(verified)}
        return acct

    def emit(self, ts, account, key, ip, ua, api, request, resp, label):
        ts = int(ts)
        if ts < self.start_ms or ts >= self.end_ms:
            return False
        self._seq += 1
        self.events.append((ts, self._seq, {"account": account, "key": key, "ip": ip, "user_agent": ua,
                                            "api": api, "request": request, "response": resp}, label))
        return True


def label(account, campaign=None, kind=None, cover=False):
    d = {"account": account, "campaign": campaign, "strategy": campaign, "kind": kind or campaign}
    if cover:
        d["cover"] = True
    return d


def aged_created(rng, start_ms, min_days=30, max_days=900):
    return start_ms - int(rng.uniform(min_days, max_days) * DAY_MS) - rng.randrange(DAY_MS)


def tier_for(rng, weights=None):
    w = weights or {"free": 0.55, "build": 0.3, "pro": 0.1, "scale": 0.04, "enterprise": 0.01}
    ks = list(w)
    return rng.choices(ks, [w[k] for k in ks])[0]


# ----------------------------------------------------------------------------- one exchange

class Item:
    __slots__ = ("system", "turns", "params", "answer", "tools", "tool_call", "cover", "user_id", "api")

    def __init__(self, turns, answer="chat", system=None, params=None, tools=None, tool_call=False,
                 cover=False, user_id=None, api=None):
        self.turns, self.answer, self.system = turns, answer, system
        self.params = params or {}
        self.tools, self.tool_call, self.cover, self.user_id, self.api = tools, tool_call, cover, user_id, api


def emit_item(sink, ac, ts, item, rng, lab, *, key, ua, ip, style=None):
    """Turns an Item into a wire request + response for account `ac` (needs .id, .style,
    .max_tokens, .temperature, .system) and emits it."""
    style = style or ac.style
    if item.api and item.api != style.api:
        style = make_style(rng, item.api)
    p = dict(item.params)
    if "max_tokens" not in p and ac.max_tokens is not None and not item.cover:
        p["max_tokens"] = ac.max_tokens
    if "temperature" not in p and ac.temperature is not None:
        p["temperature"] = ac.temperature
    system = item.system if item.system is not None else ac.system
    if item.system == "":
        system = None
    if style.api == "anthropic.messages":
        for k in ("logprobs", "top_logprobs", "logit_bias", "n", "response_format", "seed", "echo"):
            p.pop(k, None)
        if p.get("reasoning_effort"):
            eff = p.pop("reasoning_effort")
            p["thinking"] = {"high": 16000, "medium": 4096, "low": 1024}.get(eff, 8000)
    else:
        if p.get("thinking"):
            b = p.pop("thinking")
            p["reasoning_effort"] = "high" if b >= 8000 else "medium"
        if style.api == "openai.completions":
            p.pop("reasoning_effort", None)
            p.pop("response_format", None)
    if item.user_id:
        p["user_id"] = item.user_id
    tools = item.tools if style.api != "openai.completions" else None
    turns = item.turns
    if style.api == "openai.completions" and any(t.get("tool_calls") or t["role"] == "tool" for t in turns):
        turns = [t if not (t.get("tool_calls") or t["role"] == "tool") else
                 {"role": "user", "content": t.get("content") or json.dumps(t.get("tool_calls"))} for t in turns]
    req = build_request(style, system, turns, tools=tools, **p)
    in_tok = input_tokens(system, turns, tools)
    want = out_tokens(rng, item.answer, in_tok)
    # thinking tokens actually spent: usually far below the budget (lognormal around a few
    # thousand for hard tasks), never above it
    if p.get("thinking"):
        b = p["thinking"]
        want += min(b, int(rng.lognormvariate(math.log(min(0.3 * b, 3500)), 0.7)))
    elif p.get("reasoning_effort") in ("high", "xhigh"):
        want += min(30000, int(rng.lognormvariate(math.log(3000), 0.7)))
    elif p.get("reasoning_effort") == "medium":
        want += int(rng.lognormvariate(math.log(900), 0.6))
    elif p.get("reasoning_effort") == "low":
        want += int(rng.lognormvariate(math.log(250), 0.6))
    mt = req.get("max_tokens", req.get("max_completion_tokens"))
    nn = req.get("n") or 1
    if nn > 1:
        want *= nn
        mt = mt * nn if mt else None
    resp = response(rng, style.api, in_tok, want, mt, tool_call=item.tool_call)
    return sink.emit(ts, ac.id, key, ip, ua, style.api, req, resp, lab)
