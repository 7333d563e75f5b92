//! Model-as-grader / reward-model use: prompts that ask the model to score, rank or
//! compare candidate answers (the labels a distiller needs for preference training).

pub(crate) const PHRASES: &[&str] = &[
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

/// Number of distinct grader phrases in `text` (two or more make a grader request).
pub fn grader_hits(text: &str) -> u32 {
    super::lexicon::scan(text, false).grader_phrases
}

/// Whether `text` reads like a model-as-grader prompt (case-insensitive).
pub fn is_grader(text: &str) -> bool {
    grader_hits(text) >= 2
}
