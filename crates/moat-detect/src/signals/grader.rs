//! Model-as-grader / reward-model use: prompts that ask the model to score, rank or
//! compare candidate answers (the labels a distiller needs for preference training).

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

const PHRASES: &[&str] = &[
    "rate the following response",
    "rate the response",
    "rate this response",
    "score the following response",
    "score the response",
    "on a scale of 1 to 10",
    "on a scale from 1 to 10",
    "on a scale of 1-10",
    "which response is better",
    "which of the two responses",
    "which answer is better",
    "response a",
    "assistant a",
    "compare the two responses",
    "grade the following answer",
    "grade the answer",
    "as an impartial judge",
    "reward score",
    "preference between",
    "rank the following responses",
];

fn matcher() -> &'static AhoCorasick {
    static M: OnceLock<AhoCorasick> = OnceLock::new();
    M.get_or_init(|| {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::LeftmostFirst)
            .build(PHRASES)
            .expect("grader phrases compile")
    })
}

/// Number of distinct grader phrases in `text` (two or more make a grader request).
pub fn grader_hits(text: &str) -> u32 {
    let mut seen = 0u32;
    for m in matcher().find_iter(text) {
        seen |= 1 << m.pattern().as_usize();
    }
    seen.count_ones()
}

/// Whether `text` reads like a model-as-grader prompt (case-insensitive).
pub fn is_grader(text: &str) -> bool {
    grader_hits(text) >= 2
}
