//! Curated sets of interchangeable words.
//!
//! Every member of a set must be replaceable by every other member *in every eligible
//! position* without changing meaning or grammar. That rules out most textbook synonyms
//! (noun/verb ambiguity: "a fresh start" ≠ "a fresh begin"; participles: "has started" ≠
//! "has began"), so the table is deliberately small and each set carries constraints that
//! exclude known idioms ("by and large", "every so often", "not nearly").
//!
//! Deliberately excluded (see `docs/watermark.md`): British/American spelling variants
//! (colour/color — some users and style guides treat the switch as an error), ambiguous
//! contractions (`he's`, `'d`, `'ve`, `let's`), and any word whose set membership depends on
//! part of speech. Positive contractions (`it's`/`it is`) are only eligible when a word follows
//! (a contraction cannot end a clause: "Here you are."), not before `not`, and not before a
//! participle that would make `'s` mean "has" ("it's been").
//!
//! **Changing this table changes detection for already-marked text.** Set ids are part of the
//! PRF input; append new sets at the end and bump [`TABLE_VERSION`] if a set is altered.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Version of the synonym table; recorded in docs, bump when sets change.
pub const TABLE_VERSION: u32 = 1;

/// Extra conditions under which a set member is eligible.
#[derive(Debug, Clone, Copy, Default)]
pub struct Constraints {
    /// Ineligible if the adjacent previous word (last word of its canonical form) is one of these.
    pub prev_block: &'static [&'static str],
    /// Ineligible if the adjacent next word (first word of its canonical form) is one of these.
    pub next_block: &'static [&'static str],
    /// Eligible only if the adjacent previous word is exactly this.
    pub need_prev: Option<&'static str>,
    /// Eligible only if the adjacent next word is exactly this.
    pub need_next: Option<&'static str>,
    /// Eligible only as the first word of a sentence.
    pub sentence_initial: bool,
    /// If non-empty, the character right after the word must be one of these
    /// ("Moreover," / "Sure!").
    pub next_chars: &'static str,
    /// Eligible only if another word follows on the same line (contractions cannot end a
    /// clause).
    pub need_next_word: bool,
    /// Set is a contraction pair (`do not`/`don't`): uses the apostrophe style of the text and
    /// is controlled by [`crate::MarkConfig::contractions`].
    pub contraction: bool,
    /// Positive contraction (`it is`/`it's`): the two-word form is not recognised when followed
    /// by `not` (so `it is not` parses as `it` + `is not`, the same as `it isn't`).
    pub positive: bool,
    /// Eligible only before a quantity: a number (`30`, `$5`) or one of [`QUANTITY_WORDS`].
    pub next_quantity: bool,
}

/// Words that may follow "approximately"/"roughly" as a quantity.
pub const QUANTITY_WORDS: &[&str] = &[
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "fifteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
    "million",
    "billion",
    "half",
    "a",
    "an",
    "the",
    "equal",
    "equivalent",
    "once",
    "twice",
    "double",
    "every",
    "per",
];

/// A set of interchangeable words. `members[0]` is the canonical form.
#[derive(Debug, Clone, Copy)]
pub struct SynSet {
    /// Members, lowercase, straight apostrophes; multi-word members use one space.
    pub members: &'static [&'static str],
    /// Eligibility constraints.
    pub c: Constraints,
}

const NONE: Constraints = Constraints {
    prev_block: &[],
    next_block: &[],
    need_prev: None,
    need_next: None,
    sentence_initial: false,
    next_chars: "",
    need_next_word: false,
    contraction: false,
    positive: false,
    next_quantity: false,
};

/// Subjects/determiners after which a negative contraction is likely a question inversion
/// ("Don't you think", "Isn't it") — expanding there would be ungrammatical.
const INVERSION: &[&str] = &[
    "i",
    "you",
    "he",
    "she",
    "it",
    "we",
    "they",
    "this",
    "that",
    "these",
    "those",
    "there",
    "the",
    "a",
    "an",
    "my",
    "your",
    "his",
    "her",
    "its",
    "our",
    "their",
    "anyone",
    "everyone",
    "someone",
    "one",
    "any",
    "all",
    "each",
    "every",
    "some",
    "anybody",
    "everybody",
    "somebody",
    "not",
];

const fn neg() -> Constraints {
    Constraints {
        next_block: INVERSION,
        contraction: true,
        ..NONE
    }
}

/// Sentence adverb followed by a comma: "Moreover, ...".
const fn adverb() -> Constraints {
    Constraints {
        sentence_initial: true,
        next_chars: ",",
        ..NONE
    }
}

/// Words after which `'s` would mean "has" or the contraction is otherwise unsafe.
const POS_BLOCK: &[&str] = &[
    "not", "been", "got", "gotten", "had", "become", "come", "gone", "taken", "shown", "grown",
    "given", "seen", "done", "went", "never",
];

/// Positive contraction ("it is"/"it's").
const fn pos() -> Constraints {
    Constraints {
        next_block: POS_BLOCK,
        need_next_word: true,
        contraction: true,
        positive: true,
        ..NONE
    }
}

const BIG_NEXT: &[&str] = &[
    "deal",
    "picture",
    "brother",
    "bang",
    "data",
    "o",
    "tech",
    "name",
    "names",
    "shot",
    "apple",
    "five",
    "four",
    "ten",
    "league",
    "leagues",
    "language",
    "scale",
    "cat",
    "cats",
    "toe",
    "wig",
    "wigs",
    "top",
    "mouth",
    "hearted",
    "print",
    "intestine",
    "amount",
    "amounts",
    "number",
    "numbers",
    "volume",
    "volumes",
    "quantity",
    "quantities",
    "extent",
    "portion",
    "proportion",
    "majority",
    "percentage",
    "variety",
    "range",
    "sample",
    "samples",
    "datasets",
    "dataset",
    "enough",
];

/// The table. Order is significant: the index is the set id used in the PRF.
pub static SETS: &[SynSet] = &[
    // 0
    SynSet {
        members: &["big", "large"],
        c: Constraints {
            prev_block: &["at", "and", "too", "so", "as"],
            next_block: BIG_NEXT,
            ..NONE
        },
    },
    SynSet {
        members: &["bigger", "larger"],
        c: Constraints {
            next_block: BIG_NEXT,
            ..NONE
        },
    },
    SynSet {
        members: &["biggest", "largest"],
        c: Constraints {
            next_block: BIG_NEXT,
            ..NONE
        },
    },
    SynSet {
        members: &["anyone", "anybody"],
        c: NONE,
    },
    SynSet {
        members: &["everyone", "everybody"],
        c: NONE,
    },
    // 5
    SynSet {
        members: &["someone", "somebody"],
        c: NONE,
    },
    SynSet {
        members: &["toward", "towards"],
        c: NONE,
    },
    SynSet {
        members: &["afterward", "afterwards"],
        c: NONE,
    },
    SynSet {
        members: &["often", "frequently"],
        c: Constraints {
            prev_block: &["so", "how"],
            ..NONE
        },
    },
    SynSet {
        members: &["usually", "typically"],
        c: NONE,
    },
    // 10
    SynSet {
        members: &["perhaps", "maybe"],
        c: NONE,
    },
    SynSet {
        members: &["nearly", "almost"],
        c: Constraints {
            prev_block: &["not"],
            ..NONE
        },
    },
    SynSet {
        members: &["approximately", "roughly"],
        c: Constraints {
            // "roughly" is also a manner adverb ("roughly grabbed"): only before quantities.
            next_quantity: true,
            ..NONE
        },
    },
    SynSet {
        members: &["exactly", "precisely"],
        c: NONE,
    },
    SynSet {
        members: &["rarely", "seldom"],
        c: NONE,
    },
    // 15
    SynSet {
        members: &["mainly", "primarily"],
        c: NONE,
    },
    SynSet {
        members: &["particularly", "especially"],
        c: NONE,
    },
    SynSet {
        members: &["entirely", "completely"],
        c: NONE,
    },
    SynSet {
        members: &["nevertheless", "nonetheless"],
        c: NONE,
    },
    SynSet {
        members: &["similarly", "likewise"],
        c: adverb(),
    },
    // 20
    SynSet {
        members: &[
            "additionally",
            "furthermore",
            "moreover",
            "also",
            "in addition",
        ],
        c: adverb(),
    },
    SynSet {
        members: &["therefore", "thus"],
        c: Constraints {
            next_block: &["far"],
            ..NONE
        },
    },
    SynSet {
        members: &["finally", "lastly"],
        c: adverb(),
    },
    SynSet {
        members: &["example", "instance"],
        c: Constraints {
            need_prev: Some("for"),
            ..NONE
        },
    },
    SynSet {
        members: &["kinds", "types", "sorts"],
        c: Constraints {
            need_next: Some("of"),
            prev_block: &["blood", "data", "font", "file", "return"],
            ..NONE
        },
    },
    // 25
    SynSet {
        members: &["choose", "select"],
        c: Constraints {
            next_block: &["few", "group", "committee", "from", "*", "distinct"],
            ..NONE
        },
    },
    SynSet {
        members: &["modify", "alter"],
        c: Constraints {
            next_block: &["ego", "egos", "table"],
            ..NONE
        },
    },
    SynSet {
        members: &["modified", "altered"],
        c: Constraints {
            next_block: &["ego", "egos", "table", "date", "time", "timestamp"],
            ..NONE
        },
    },
    SynSet {
        members: &["modifies", "alters"],
        c: NONE,
    },
    SynSet {
        members: &["modifying", "altering"],
        c: NONE,
    },
    // 30
    SynSet {
        members: &["sure", "certainly", "absolutely"],
        c: Constraints {
            sentence_initial: true,
            next_chars: "!,",
            ..NONE
        },
    },
    SynSet {
        members: &["amid", "amidst"],
        c: NONE,
    },
    SynSet {
        members: &["do not", "don't"],
        c: neg(),
    },
    SynSet {
        members: &["does not", "doesn't"],
        c: neg(),
    },
    SynSet {
        members: &["did not", "didn't"],
        c: neg(),
    },
    // 35
    SynSet {
        members: &["is not", "isn't"],
        c: neg(),
    },
    SynSet {
        members: &["are not", "aren't"],
        c: neg(),
    },
    SynSet {
        members: &["was not", "wasn't"],
        c: neg(),
    },
    SynSet {
        members: &["were not", "weren't"],
        c: neg(),
    },
    SynSet {
        members: &["will not", "won't"],
        c: neg(),
    },
    // 40
    SynSet {
        members: &["cannot", "can't"],
        c: neg(),
    },
    SynSet {
        members: &["would not", "wouldn't"],
        c: neg(),
    },
    SynSet {
        members: &["should not", "shouldn't"],
        c: neg(),
    },
    SynSet {
        members: &["could not", "couldn't"],
        c: neg(),
    },
    // 44
    SynSet {
        members: &["it is", "it's"],
        c: pos(),
    },
    SynSet {
        members: &["here is", "here's"],
        c: pos(),
    },
    SynSet {
        members: &["there is", "there's"],
        c: pos(),
    },
    SynSet {
        members: &["that is", "that's"],
        c: pos(),
    },
    SynSet {
        members: &["i am", "i'm"],
        c: pos(),
    },
    // 49
    SynSet {
        members: &["you are", "you're"],
        c: pos(),
    },
    SynSet {
        members: &["we are", "we're"],
        c: pos(),
    },
    SynSet {
        members: &["they are", "they're"],
        c: pos(),
    },
    SynSet {
        members: &["i will", "i'll"],
        c: pos(),
    },
    SynSet {
        members: &["you will", "you'll"],
        c: pos(),
    },
    // 54
    SynSet {
        members: &["we will", "we'll"],
        c: pos(),
    },
    SynSet {
        members: &["first", "firstly"],
        c: adverb(),
    },
    SynSet {
        members: &["second", "secondly"],
        c: adverb(),
    },
    SynSet {
        members: &["third", "thirdly"],
        c: adverb(),
    },
    // 59
    SynSet {
        members: &["conclusion", "summary"],
        c: Constraints {
            need_prev: Some("in"),
            next_chars: ",",
            ..NONE
        },
    },
    SynSet {
        members: &["using", "utilizing"],
        c: NONE,
    },
    SynSet {
        members: &["have not", "haven't"],
        c: neg(),
    },
    // 62
    SynSet {
        members: &["has not", "hasn't"],
        c: neg(),
    },
    SynSet {
        members: &["had not", "hadn't"],
        c: neg(),
    },
    SynSet {
        members: &["they will", "they'll"],
        c: pos(),
    },
    SynSet {
        members: &["what is", "what's"],
        c: pos(),
    },
];

/// Where a lowercase surface form sits in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub set: u16,
    pub idx: u8,
}

struct Index {
    /// Single-word members → position.
    words: HashMap<&'static str, Member>,
    /// Two-word members ("do not") → position.
    phrases: HashMap<&'static str, Member>,
    /// First words of two-word members ("do", "is", ...).
    phrase_first: Vec<&'static str>,
}

fn index() -> &'static Index {
    static IDX: OnceLock<Index> = OnceLock::new();
    IDX.get_or_init(|| {
        let mut words = HashMap::new();
        let mut phrases = HashMap::new();
        let mut phrase_first = Vec::new();
        for (s, set) in SETS.iter().enumerate() {
            for (i, m) in set.members.iter().enumerate() {
                let pos = Member {
                    set: s as u16,
                    idx: i as u8,
                };
                if let Some((first, _)) = m.split_once(' ') {
                    phrases.insert(*m, pos);
                    if !phrase_first.contains(&first) {
                        phrase_first.push(first);
                    }
                } else {
                    let prev = words.insert(*m, pos);
                    assert!(prev.is_none(), "word {m} in two sets");
                }
            }
        }
        Index {
            words,
            phrases,
            phrase_first,
        }
    })
}

/// Looks up a single lowercase word (straight apostrophes).
pub(crate) fn lookup_word(lower: &str) -> Option<Member> {
    index().words.get(lower).copied()
}

/// Looks up a two-word phrase `"a b"` (lowercase, single space).
pub(crate) fn lookup_phrase(lower: &str) -> Option<Member> {
    index().phrases.get(lower).copied()
}

/// Whether a lowercase word can start a two-word member.
pub(crate) fn is_phrase_first(lower: &str) -> bool {
    index().phrase_first.contains(&lower)
}

/// Canonical form of a lowercase word or phrase: the set's first member, else itself.
pub(crate) fn canonical(lower: &str) -> &str {
    let m = if lower.contains(' ') {
        lookup_phrase(lower)
    } else {
        lookup_word(lower)
    };
    match m {
        Some(m) => SETS[m.set as usize].members[0],
        None => lower,
    }
}

/// Number of distinct words that belong to some set (for docs / tests).
pub fn vocabulary_size() -> usize {
    SETS.iter().map(|s| s.members.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let idx = index();
        assert_eq!(idx.words.len() + idx.phrases.len(), vocabulary_size());
        for s in SETS {
            assert!(s.members.len() >= 2 && s.members.len() <= 5);
            for m in s.members {
                assert_eq!(*m, m.to_lowercase());
                assert!(!m.contains('’'));
            }
        }
        assert_eq!(canonical("don't"), "do not");
        assert_eq!(canonical("do not"), "do not");
        assert_eq!(canonical("large"), "big");
        assert_eq!(canonical("table"), "table");
        assert!(is_phrase_first("do"));
        assert!(is_phrase_first("it"));
        assert!(!is_phrase_first("big"));
    }
}
