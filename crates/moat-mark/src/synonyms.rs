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

/// Most members any set has.
pub const MAX_MEMBERS: usize = 5;

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

/// Everything the pipeline needs to know about one lowercase word, found with one lookup.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub word: &'static str,
    /// The single-word member this word is.
    pub member: Option<Member>,
    /// Two-word members starting with this word: (second word, its key, member).
    pub phrases: Vec<(&'static str, Key, Member)>,
    /// A context stop word ([`crate::context`]).
    pub stop: bool,
}

/// Lookup table of every word the pipeline cares about: single-word members, first words of
/// two-word members, and context stop words. Open addressing over a small power-of-two table
/// with a multiplicative hash of the (at most 16) word bytes; words longer than the longest
/// entry are rejected by length alone.
pub(crate) struct Vocab {
    entries: Vec<Entry>,
    /// Per entry: the word as [`key16`] and its length.
    keys: Vec<([u64; 2], usize)>,
    /// Slot → entry index + 1 (0 = empty).
    slots: Vec<u16>,
    max_len: usize,
    /// Per set: whether its canonical form (`members[0]`) is a stop word.
    canon_stop: Vec<bool>,
}

const VOCAB_BITS: u32 = 10;

/// A word's lookup key: [`key16`] and the length.
pub(crate) type Key = ([u64; 2], usize);

/// A key of a word of at most 16 bytes: two (possibly overlapping) little-endian loads.
/// Together with the length it identifies the word.
#[inline]
pub(crate) fn key16(w: &[u8]) -> [u64; 2] {
    let n = w.len();
    debug_assert!(n <= 16);
    let u64_at = |i: usize| u64::from_le_bytes(w[i..i + 8].try_into().expect("8 bytes"));
    let u32_at = |i: usize| u64::from(u32::from_le_bytes(w[i..i + 4].try_into().expect("4")));
    if n >= 8 {
        [u64_at(0), u64_at(n - 8)]
    } else if n >= 4 {
        [u32_at(0) | (u32_at(n - 4) << 32), 0]
    } else if n > 0 {
        [
            u64::from(w[0]) | (u64::from(w[n / 2]) << 8) | (u64::from(w[n - 1]) << 16),
            0,
        ]
    } else {
        [0, 0]
    }
}

#[inline]
fn vocab_hash(k: [u64; 2], len: usize) -> usize {
    let h = (k[0] ^ (len as u64).rotate_left(56)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ k[1].wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let h = h ^ (h >> 29);
    (h.wrapping_mul(0x1656_67B1_9E37_79F9) >> (64 - VOCAB_BITS)) as usize
}

impl Vocab {
    fn build() -> Self {
        let mut entries: Vec<Entry> = Vec::new();
        fn slot(entries: &mut Vec<Entry>, w: &'static str) -> usize {
            if let Some(i) = entries.iter().position(|e| e.word == w) {
                return i;
            }
            entries.push(Entry {
                word: w,
                member: None,
                phrases: Vec::new(),
                stop: false,
            });
            entries.len() - 1
        }
        for (s, set) in SETS.iter().enumerate() {
            for (i, m) in set.members.iter().enumerate() {
                let pos = Member {
                    set: s as u16,
                    idx: i as u8,
                };
                if let Some((first, second)) = m.split_once(' ') {
                    let e = slot(&mut entries, first);
                    assert!(!second.contains(' '), "member {m} has more than two words");
                    assert!(
                        !entries[e].phrases.iter().any(|p| p.0 == second),
                        "phrase {m} in two sets"
                    );
                    let k = (key16(second.as_bytes()), second.len());
                    entries[e].phrases.push((second, k, pos));
                } else {
                    let e = slot(&mut entries, m);
                    assert!(entries[e].member.is_none(), "word {m} in two sets");
                    entries[e].member = Some(pos);
                }
            }
        }
        for w in crate::context::STOPWORDS {
            let e = slot(&mut entries, w);
            entries[e].stop = true;
        }
        // Longest entry or phrase second word: longer words are in no entry and end no phrase.
        let max_len = entries
            .iter()
            .flat_map(|e| std::iter::once(e.word).chain(e.phrases.iter().map(|p| p.0)))
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(max_len <= 16 && entries.len() < (1 << VOCAB_BITS) / 2);
        let keys: Vec<([u64; 2], usize)> = entries
            .iter()
            .map(|e| (key16(e.word.as_bytes()), e.word.len()))
            .collect();
        let mut slots = vec![0u16; 1 << VOCAB_BITS];
        for (i, &(k, len)) in keys.iter().enumerate() {
            let mut h = vocab_hash(k, len);
            while slots[h] != 0 {
                h = (h + 1) & ((1 << VOCAB_BITS) - 1);
            }
            slots[h] = i as u16 + 1;
        }
        let canon_stop = SETS
            .iter()
            .map(|s| crate::context::STOPWORDS.contains(&s.members[0]))
            .collect();
        Self {
            entries,
            keys,
            slots,
            max_len,
            canon_stop,
        }
    }

    /// The entry of a lowercase word (straight apostrophes), if it has one.
    #[inline]
    pub fn get(&self, lower: &str) -> Option<&Entry> {
        let w = lower.as_bytes();
        if w.is_empty() || w.len() > self.max_len {
            return None;
        }
        self.get_key((key16(w), w.len()))
    }

    /// The key of the normalised form of a lexer word (letters and apostrophes), or `None`
    /// if it is longer than every table word. ASCII words are lowercased inside the key (every
    /// byte of a lowercase letter or `'` has bit 0x20 set); other words are normalised into
    /// `scratch` first.
    #[inline]
    pub fn key_of_word(&self, word: &str, scratch: &mut String) -> Option<Key> {
        let w = if word.is_ascii() {
            word.as_bytes()
        } else {
            crate::engine::norm_into(word, scratch);
            scratch.as_bytes()
        };
        let n = w.len();
        if n == 0 || n > self.max_len {
            return None;
        }
        let k = key16(w);
        const M: u64 = 0x2020_2020_2020_2020;
        let k = match n {
            8.. => [k[0] | M, k[1] | M],
            4..=7 => [k[0] | M, 0],
            _ => [k[0] | 0x20_2020, 0],
        };
        Some((k, n))
    }

    /// [`get`](Self::get) by [`key16`] and length (`1..=max_len` bytes).
    #[inline]
    pub fn get_key(&self, key: Key) -> Option<&Entry> {
        let (k, len) = key;
        let mut h = vocab_hash(k, len);
        loop {
            let e = self.slots[h];
            if e == 0 {
                return None;
            }
            if self.keys[e as usize - 1] == key {
                return Some(&self.entries[e as usize - 1]);
            }
            h = (h + 1) & ((1 << VOCAB_BITS) - 1);
        }
    }

    /// Whether the canonical form of a set is a stop word.
    #[inline]
    pub fn canon_stop(&self, set: u16) -> bool {
        self.canon_stop[set as usize]
    }
}

/// The shared lookup table.
pub(crate) fn vocab() -> &'static Vocab {
    static V: OnceLock<Vocab> = OnceLock::new();
    V.get_or_init(Vocab::build)
}

/// Looks up a single lowercase word (straight apostrophes).
#[cfg(test)]
pub(crate) fn lookup_word(lower: &str) -> Option<Member> {
    vocab().get(lower).and_then(|e| e.member)
}

/// Looks up a two-word phrase `"a b"` (lowercase, single space).
#[cfg(test)]
pub(crate) fn lookup_phrase(lower: &str) -> Option<Member> {
    let (a, b) = lower.split_once(' ')?;
    let e = vocab().get(a)?;
    e.phrases.iter().find(|p| p.0 == b).map(|p| p.2)
}

/// Whether a lowercase word can start a two-word member.
#[cfg(test)]
pub(crate) fn is_phrase_first(lower: &str) -> bool {
    vocab().get(lower).is_some_and(|e| !e.phrases.is_empty())
}

/// Canonical form of a lowercase word or phrase: the set's first member, else itself.
#[cfg(test)]
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
        let v = vocab();
        let members: usize = v
            .entries
            .iter()
            .map(|e| usize::from(e.member.is_some()) + e.phrases.len())
            .sum();
        assert_eq!(members, vocabulary_size());
        for s in SETS {
            assert!(s.members.len() >= 2 && s.members.len() <= MAX_MEMBERS);
            for m in s.members {
                assert_eq!(*m, m.to_lowercase());
                assert!(!m.contains('’'));
            }
        }
        for (i, s) in SETS.iter().enumerate() {
            for (j, m) in s.members.iter().enumerate() {
                let want = Some(Member {
                    set: i as u16,
                    idx: j as u8,
                });
                if m.contains(' ') {
                    assert_eq!(lookup_phrase(m), want);
                } else {
                    assert_eq!(lookup_word(m), want);
                }
            }
        }
        for w in crate::context::STOPWORDS {
            assert!(v.get(w).unwrap().stop);
        }
        assert!(v.get("").is_none() && v.get("bigg").is_none());
        // Lookup by raw word equals lookup of the normalised word.
        let mut words: Vec<String> = v.entries.iter().map(|e| e.word.to_string()).collect();
        words.extend(
            [
                "x",
                "xyz",
                "abcdefgh",
                "Kinds",
                "\u{212A}inds",
                "İt",
                "DON’T",
                "ẞig",
            ]
            .map(String::from),
        );
        let mut scratch = String::new();
        for w in words.clone() {
            for w in [
                w.clone(),
                w.to_uppercase(),
                w.replace('\'', "’"),
                format!("{w}s"),
                w.chars().skip(1).collect(),
            ] {
                let got = v.key_of_word(&w, &mut scratch).and_then(|k| v.get_key(k));
                let want = v.get(&crate::engine::norm(&w));
                assert_eq!(got.map(|e| e.word), want.map(|e| e.word), "{w:?}");
            }
        }
        assert!(v.get("approximatelyyyyyyyyy").is_none());
        assert_eq!(canonical("don't"), "do not");
        assert_eq!(canonical("do not"), "do not");
        assert_eq!(canonical("large"), "big");
        assert_eq!(canonical("table"), "table");
        assert!(is_phrase_first("do"));
        assert!(is_phrase_first("it"));
        assert!(!is_phrase_first("big"));
    }
}
