//! One Aho–Corasick automaton over all phrase lists (reasoning tiers, grader phrases,
//! topic keywords), so each text is scanned once.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::topics::{self, TOPICS};
use super::{grader, reasoning};

/// Topic keywords only count when they start within this many bytes of the text.
pub const TOPIC_PREFIX_BYTES: usize = 2000;

#[derive(Clone, Copy)]
enum Pat {
    Reasoning(f32),
    Grader(u8),
    Topic(u8),
}

struct Lexicon {
    ac: AhoCorasick,
    pats: Vec<Pat>,
}

fn lexicon() -> &'static Lexicon {
    static L: OnceLock<Lexicon> = OnceLock::new();
    L.get_or_init(|| {
        let mut words: Vec<String> = Vec::new();
        let mut pats = Vec::new();
        for (p, w) in reasoning::PHRASES {
            words.push(p.to_lowercase());
            pats.push(Pat::Reasoning(*w));
        }
        for (i, p) in grader::PHRASES.iter().enumerate() {
            words.push(p.to_lowercase());
            pats.push(Pat::Grader(i as u8));
        }
        for (p, t) in topics::LEXICON {
            words.push(p.to_lowercase());
            pats.push(Pat::Topic(*t));
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::Standard)
            .build(&words)
            .expect("phrase lists compile");
        Lexicon { ac, pats }
    })
}

/// What one scan of a text found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scan {
    /// Highest reasoning-phrase weight.
    pub reasoning: f32,
    /// Number of distinct grader phrases.
    pub grader_phrases: u32,
    /// Topic bin (only when topics were requested; otherwise [`topics::OTHER`]).
    pub topic: u8,
}

fn boundary(b: Option<&u8>) -> bool {
    b.is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// Scans `text` once (case-insensitively) for all phrase lists; `with_topics` also
/// classifies its topic.
pub fn scan(text: &str, with_topics: bool) -> Scan {
    if text.is_ascii() {
        scan_lower(text, with_topics)
    } else {
        scan_lower(&text.to_lowercase(), with_topics)
    }
}

fn scan_lower(text: &str, with_topics: bool) -> Scan {
    let lx = lexicon();
    let bytes = text.as_bytes();
    let mut reasoning = 0.0f32;
    let mut grader_bits = 0u32;
    let mut hits = [0u8; TOPICS];
    for m in lx.ac.find_overlapping_iter(text) {
        match lx.pats[m.pattern().as_usize()] {
            Pat::Reasoning(w) => reasoning = reasoning.max(w),
            Pat::Grader(i) => grader_bits |= 1 << i,
            Pat::Topic(t) => {
                if with_topics
                    && m.start() < TOPIC_PREFIX_BYTES
                    && boundary(m.start().checked_sub(1).and_then(|i| bytes.get(i)))
                    && boundary(bytes.get(m.end()))
                {
                    hits[t as usize] = hits[t as usize].saturating_add(1);
                }
            }
        }
    }
    Scan {
        reasoning,
        grader_phrases: grader_bits.count_ones(),
        topic: if with_topics {
            topics::winner(&hits)
        } else {
            topics::OTHER
        },
    }
}
