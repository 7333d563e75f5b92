//! Topic breadth: what an account asks about, compared with ordinary use.
//!
//! Each prompt is mapped to one of [`TOPICS`] coarse subject areas by a small keyword
//! lexicon (whole-word matches, the area with most hits wins; [`OTHER`] when none).
//! An account's breadth is the normalised entropy of its topic histogram: a tutoring app
//! or a one-task pipeline stays in one or two areas (breadth ≈ 0.2–0.4), while a harvester
//! sampling a broad prompt corpus covers them all (≈ 0.8–0.9). Breadth scales the
//! single-turn harvesting signal so that a narrow high-volume product is not mistaken for
//! corpus sampling.

/// Number of topic bins (the last one is [`OTHER`]).
pub const TOPICS: usize = 16;
/// Bin of prompts that match no keyword.
pub const OTHER: u8 = 15;

pub(crate) const LEXICON: &[(&str, u8)] = &[
    // 0 programming
    ("python", 0),
    ("javascript", 0),
    ("typescript", 0),
    ("function", 0),
    ("code", 0),
    ("sql", 0),
    ("java", 0),
    ("compile", 0),
    ("debug", 0),
    ("regex", 0),
    ("html", 0),
    ("css", 0),
    ("docker", 0),
    ("linux", 0),
    ("git", 0),
    ("database", 0),
    ("algorithm", 0),
    ("def", 0),
    ("class", 0),
    ("bug", 0),
    ("script", 0),
    ("react", 0),
    ("api", 0),
    ("c++", 0),
    ("rust", 0),
    ("array", 0),
    ("string", 0),
    // 1 mathematics
    ("solve", 1),
    ("equation", 1),
    ("integer", 1),
    ("probability", 1),
    ("calculate", 1),
    ("fraction", 1),
    ("percent", 1),
    ("multiply", 1),
    ("divide", 1),
    ("triangle", 1),
    ("how many", 1),
    ("how much", 1),
    ("math", 1),
    ("sum", 1),
    ("total", 1),
    ("average", 1),
    ("polynomial", 1),
    ("derivative", 1),
    ("integral", 1),
    ("matrix", 1),
    ("prime", 1),
    ("dollars", 1),
    // 2 writing
    ("write", 2),
    ("essay", 2),
    ("poem", 2),
    ("story", 2),
    ("rewrite", 2),
    ("paraphrase", 2),
    ("summarize", 2),
    ("summary", 2),
    ("article", 2),
    ("blog", 2),
    ("letter", 2),
    ("email", 2),
    ("tone", 2),
    ("grammar", 2),
    ("paragraph", 2),
    ("outline", 2),
    // 3 business & marketing
    ("marketing", 3),
    ("business", 3),
    ("startup", 3),
    ("sales", 3),
    ("customer", 3),
    ("product", 3),
    ("brand", 3),
    ("strategy", 3),
    ("company", 3),
    ("revenue", 3),
    ("market", 3),
    ("seo", 3),
    ("linkedin", 3),
    ("management", 3),
    // 4 science
    ("physics", 4),
    ("chemistry", 4),
    ("biology", 4),
    ("molecule", 4),
    ("energy", 4),
    ("quantum", 4),
    ("cell", 4),
    ("experiment", 4),
    ("climate", 4),
    ("planet", 4),
    ("fluid", 4),
    ("species", 4),
    // 5 health
    ("health", 5),
    ("diet", 5),
    ("exercise", 5),
    ("symptom", 5),
    ("disease", 5),
    ("doctor", 5),
    ("medical", 5),
    ("sleep", 5),
    ("weight", 5),
    ("mental", 5),
    ("patient", 5),
    // 6 history, politics, law
    ("history", 6),
    ("war", 6),
    ("president", 6),
    ("government", 6),
    ("election", 6),
    ("century", 6),
    ("empire", 6),
    ("law", 6),
    ("legal", 6),
    ("policy", 6),
    // 7 entertainment
    ("movie", 7),
    ("song", 7),
    ("music", 7),
    ("game", 7),
    ("character", 7),
    ("anime", 7),
    ("book", 7),
    ("novel", 7),
    ("film", 7),
    ("series", 7),
    ("lyrics", 7),
    // 8 travel & food
    ("travel", 8),
    ("trip", 8),
    ("city", 8),
    ("recipe", 8),
    ("cook", 8),
    ("food", 8),
    ("restaurant", 8),
    ("hotel", 8),
    ("visit", 8),
    // 9 education & career
    ("student", 9),
    ("teacher", 9),
    ("course", 9),
    ("exam", 9),
    ("resume", 9),
    ("interview", 9),
    ("job", 9),
    ("career", 9),
    ("university", 9),
    ("learn", 9),
    // 10 finance
    ("invest", 10),
    ("investment", 10),
    ("stock", 10),
    ("money", 10),
    ("tax", 10),
    ("loan", 10),
    ("bank", 10),
    ("crypto", 10),
    ("budget", 10),
    // 11 language
    ("translate", 11),
    ("english", 11),
    ("spanish", 11),
    ("french", 11),
    ("chinese", 11),
    ("meaning", 11),
    ("word", 11),
    ("words", 11),
    ("sentence", 11),
    // 12 personal life
    ("friend", 12),
    ("girlfriend", 12),
    ("boyfriend", 12),
    ("family", 12),
    ("feel", 12),
    ("love", 12),
    ("advice", 12),
    ("relationship", 12),
    // 13 technology & AI
    ("ai", 13),
    ("machine learning", 13),
    ("neural", 13),
    ("model", 13),
    ("chatgpt", 13),
    ("data", 13),
    ("cloud", 13),
    ("software", 13),
    ("app", 13),
    ("azure", 13),
    ("aws", 13),
    // 14 philosophy & religion
    ("philosophy", 14),
    ("god", 14),
    ("religion", 14),
    ("ethics", 14),
    ("moral", 14),
];

/// Topic bin of a prompt (only matches starting in its first 2,000 bytes count).
pub fn topic(text: &str) -> u8 {
    super::lexicon::scan(text, true).topic
}

/// The winning bin of a topic hit histogram ([`OTHER`] when empty; ties go to the lower bin).
pub fn winner(hits: &[u8; TOPICS]) -> u8 {
    let mut best = OTHER as usize;
    for (t, &h) in hits.iter().enumerate().take(TOPICS - 1) {
        if h > 0 && (best == OTHER as usize || h > hits[best]) {
            best = t;
        }
    }
    best as u8
}

/// Normalised entropy (0 = one topic, 1 = all topics equally) of a topic histogram,
/// over the prompts the lexicon could classify ([`OTHER`] excluded). `None` when fewer
/// than 30 % of the prompts were classified (e.g. prompts in a language the lexicon does
/// not cover): breadth is then unknown, not narrow.
pub fn breadth(hist: &[u16; TOPICS]) -> Option<f64> {
    let all: f64 = hist.iter().map(|&x| f64::from(x)).sum();
    let n: f64 = hist[..TOPICS - 1].iter().map(|&x| f64::from(x)).sum();
    if all == 0.0 || n < 0.3 * all {
        return None;
    }
    let mut h = 0.0;
    for &c in &hist[..TOPICS - 1] {
        if c > 0 {
            let p = f64::from(c) / n;
            h -= p * p.ln();
        }
    }
    Some(h / ((TOPICS - 1) as f64).ln())
}
