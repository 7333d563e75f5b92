//! The shared token pipeline used by marking (rewrite eligible positions) and detection
//! (record eligible positions). Both run exactly the same eligibility logic, which is what
//! makes the detector see the positions and contexts the marker used.

use crate::context::Context;
use crate::synonyms::{vocab, Key, Member, SynSet, QUANTITY_WORDS, SETS};
use crate::tokenize::{char_at, Kind, Lexer, Tok};
use crate::{MarkConfig, MarkStats};
use std::collections::VecDeque;

/// An eligible position: which set, which member the text has, and the context fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub set: u16,
    pub member: u8,
    pub ctx: u128,
}

/// Decides which member to output at an eligible position.
pub(crate) trait Decide {
    fn decide(&mut self, pos: &Position) -> usize;
}

/// Lowercases and normalises curly apostrophes into `out` (replacing its contents).
#[inline]
pub(crate) fn norm_into(word: &str, out: &mut String) {
    out.clear();
    if word.is_ascii() {
        out.reserve(word.len());
        for &b in word.as_bytes() {
            out.push(char::from(b.to_ascii_lowercase()));
        }
    } else {
        out.extend(
            word.chars()
                .map(|c| if c == '’' { '\'' } else { c })
                .flat_map(char::to_lowercase),
        );
    }
}

/// Lowercases and normalises curly apostrophes.
#[cfg(test)]
pub(crate) fn norm(word: &str) -> String {
    let mut s = String::new();
    norm_into(word, &mut s);
    s
}

/// The key of "not".
#[inline]
fn not_key() -> Key {
    (
        [
            u64::from(b'n') | (u64::from(b'o') << 8) | (u64::from(b't') << 16),
            0,
        ],
        3,
    )
}

/// Whether marking `text` may change anything: some word of it (split exactly like the
/// lexer splits words) is a single-word set member, or starts a two-word member together with
/// the next word. When false, every position is ineligible and the output is the input.
pub(crate) fn may_rewrite(text: &str) -> bool {
    let voc = vocab();
    let mut scratch = String::new();
    // Phrases the previous word can start.
    let mut phrases: &[(&str, Key, Member)] = &[];
    let n = text.len();
    let mut i = 0;
    while i < n {
        let (c, cl) = char_at(text, i);
        if !c.is_alphabetic() {
            i += cl;
            continue;
        }
        let mut j = i + cl;
        while j < n {
            let (cj, lj) = char_at(text, j);
            if cj.is_alphabetic()
                || ((cj == '\'' || cj == '’')
                    && j + lj < n
                    && char_at(text, j + lj).0.is_alphabetic())
            {
                j += lj;
            } else {
                break;
            }
        }
        let key = voc.key_of_word(&text[i..j], &mut scratch);
        i = j;
        let Some(key) = key else {
            phrases = &[];
            continue;
        };
        if phrases.iter().any(|p| p.1 == key) {
            return true;
        }
        match voc.get_key(key) {
            Some(e) if e.member.is_some() => return true,
            Some(e) => phrases = &e.phrases,
            None => phrases = &[],
        }
    }
    false
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Lower,
    Title,
    Other,
}

fn case_of(word: &str) -> Case {
    let mut cs = word.chars();
    let first = cs.next().unwrap_or(' ');
    let rest_upper = cs.any(char::is_uppercase);
    if rest_upper {
        Case::Other
    } else if first.is_uppercase() {
        Case::Title
    } else {
        Case::Lower
    }
}

/// The last apostrophe (`'` or `’`) in `s`.
#[inline]
fn last_apostrophe(s: &str) -> Option<char> {
    let b = s.as_bytes();
    let mut i = b.len();
    while i > 0 {
        i -= 1;
        match b[i] {
            b'\'' => return Some('\''),
            // '’' is E2 80 99; 0x99 also ends other characters.
            0x99 if i >= 2 && b[i - 2] == 0xE2 && b[i - 1] == 0x80 => return Some('’'),
            _ => {}
        }
    }
    None
}

fn first_word(s: &str) -> &str {
    s.split(' ').next().unwrap_or(s)
}

fn last_word(s: &str) -> &str {
    s.rsplit(' ').next().unwrap_or(s)
}

fn starts_vowel(s: &str) -> bool {
    matches!(s.chars().next(), Some('a' | 'e' | 'i' | 'o' | 'u'))
}

/// The streaming pipeline: lexer → token queue → per-unit decisions → output text.
pub(crate) struct Engine<D> {
    cfg: MarkConfig,
    lexer: Lexer,
    queue: VecDeque<Tok>,
    ctx: Context,
    prev_char: Option<char>,
    /// Canonical form of the last word/unit (meaningful when `adjacent`) and whether only
    /// horizontal space followed it.
    prev_word: String,
    adjacent: bool,
    apos: char,
    /// Scratch: normalised front word, phrase second word, lookahead word.
    low0: String,
    low2: String,
    low_n: String,
    /// `low0` holds the normalised front word.
    low0_ok: bool,
    pub stats: MarkStats,
    pub decider: D,
}

/// Canonical form of a planned unit.
#[derive(Clone, Copy)]
enum Canon {
    /// A table word (`SETS[set].members[0]`, or the word itself when it is in the table).
    Static(&'static str),
    /// The normalised front word itself (in `Engine::low0` once `low0_ok`).
    Low0,
}

struct Plan {
    /// Tokens consumed (1 = word, 3 = word, space, word).
    len: usize,
    canon: Canon,
    /// The canonical form is a context stop word.
    stop: bool,
    /// Eligible position (set, member present, case of the text's word).
    pos: Option<(u16, u8, Case)>,
}

impl<D: Decide> Engine<D> {
    pub fn new(cfg: MarkConfig, decider: D) -> Self {
        Self::with_capacity(cfg, decider, 0)
    }

    /// An engine whose input buffer takes `cap` bytes without reallocating.
    pub fn with_capacity(cfg: MarkConfig, decider: D, cap: usize) -> Self {
        Self {
            ctx: Context::new(
                cfg.context_words,
                cfg.context_stop_words,
                cfg.context_buckets,
            ),
            cfg,
            lexer: Lexer::with_capacity(cap),
            queue: VecDeque::new(),
            prev_char: None,
            prev_word: String::new(),
            adjacent: false,
            apos: '\'',
            low0: String::new(),
            low2: String::new(),
            low_n: String::new(),
            low0_ok: false,
            stats: MarkStats::default(),
            decider,
        }
    }

    /// Bytes received but not yet emitted.
    pub fn held_back(&self) -> usize {
        self.lexer.pending() + self.queue.iter().map(Tok::len).sum::<usize>()
    }

    /// Feeds input and appends all decided output to `out`.
    pub fn push(&mut self, chunk: &str, out: &mut String) {
        self.lexer.feed(chunk, self.queue.front().map(|t| t.start));
        self.run(false, out);
    }

    /// Flushes everything.
    pub fn finish(&mut self, out: &mut String) {
        self.run(true, out);
    }

    fn run(&mut self, eof: bool, out: &mut String) {
        self.lexer.lex(eof, &mut self.queue);
        // Unchanged text is copied lazily: `copied` is the stream offset up to which output
        // has been written; tokens emitted as they are just advance `done`.
        let Some(first) = self.queue.front() else {
            return;
        };
        let mut done = first.start;
        let mut copied = done;
        while let Some(&front) = self.queue.front() {
            if front.kind != Kind::Word {
                self.queue.pop_front();
                self.emit_other(&front);
                done = front.end;
                continue;
            }
            let Some(plan) = self.plan(eof) else { break };
            let end = self.queue[plan.len - 1].end;
            if plan.pos.is_some() {
                // May be rewritten: flush the unchanged text before it.
                out.push_str(self.lexer.range(copied, front.start));
                copied = front.start;
            }
            if self.apply(plan, out) {
                copied = end;
            }
            done = end;
        }
        out.push_str(self.lexer.range(copied, done));
    }

    fn emit_other(&mut self, t: &Tok) {
        let text = self.lexer.text(t);
        if t.kind != Kind::Space || text.bytes().any(|b| b == b'\n') {
            self.adjacent = false;
        }
        if let Some(c) = text.chars().next_back() {
            self.prev_char = Some(c);
        }
    }

    /// Plans the unit at the queue front; `None` if more lookahead is needed.
    fn plan(&mut self, eof: bool) -> Option<Plan> {
        let q = &self.queue;
        let lx = &self.lexer;
        let voc = vocab();
        let w0 = q[0];
        let text0 = lx.text(&w0);
        self.low0_ok = !text0.is_ascii();
        let e0 = voc
            .key_of_word(text0, &mut self.low0)
            .and_then(|k| voc.get_key(k));
        let mut len = 1;
        let mut member: Option<Member> = None;
        if let Some(e0) = e0.filter(|e| !w0.protected && !e.phrases.is_empty()) {
            match q.get(1) {
                None if !eof => return None,
                Some(t1) if t1.kind == Kind::Space && lx.text(t1) == " " => match q.get(2) {
                    None if !eof => return None,
                    Some(t2) if t2.kind == Kind::Word && !t2.protected => {
                        let k2 = voc.key_of_word(lx.text(t2), &mut self.low2);
                        if let Some(&(_, _, m)) = e0.phrases.iter().find(|p| Some(p.1) == k2) {
                            // "it is not" parses as "it" + "is not" (like "it isn't").
                            let mut followed_by_not = false;
                            if SETS[m.set as usize].c.positive {
                                match (q.get(3), q.get(4)) {
                                    (None, _) if !eof => return None,
                                    (Some(t3), None) if !eof && lx.text(t3) == " " => return None,
                                    (Some(t3), Some(t4)) => {
                                        followed_by_not = lx.text(t3) == " "
                                            && t4.kind == Kind::Word
                                            && voc.key_of_word(lx.text(t4), &mut self.low_n)
                                                == Some(not_key());
                                    }
                                    _ => {}
                                }
                            }
                            if !followed_by_not {
                                len = 3;
                                member = Some(m);
                            }
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        if len == 1 {
            member = e0.and_then(|e| e.member);
        }
        let (canon, stop) = match (member, e0) {
            (Some(m), _) => (
                Canon::Static(SETS[m.set as usize].members[0]),
                voc.canon_stop(m.set),
            ),
            (None, Some(e)) => (Canon::Static(e.word), e.stop),
            // Not in the table, hence not a stop word.
            (None, None) => (Canon::Low0, false),
        };
        let Some(m) = member else {
            return Some(Plan {
                len,
                canon,
                stop,
                pos: None,
            });
        };
        let set = &SETS[m.set as usize];
        if w0.protected
            || (set.c.contraction && !self.cfg.contractions)
            || (len == 3 && (q[2].protected || case_of(lx.text(&q[2])) != Case::Lower))
        {
            return Some(Plan {
                len,
                canon,
                stop,
                pos: None,
            });
        }
        // Lookahead: next token and, if separated by horizontal space only, the next word.
        let next_tok = match q.get(len) {
            None if !eof => return None,
            t => t,
        };
        let next_char = next_tok.and_then(|t| lx.text(t).chars().next());
        let mut has_next_word = false;
        let mut next_number = false;
        if let Some(t) = next_tok {
            if t.kind == Kind::Space && !lx.text(t).contains('\n') {
                match q.get(len + 1) {
                    None if !eof => return None,
                    Some(t2) if t2.kind == Kind::Word => {
                        norm_into(lx.text(t2), &mut self.low_n);
                        has_next_word = true;
                    }
                    Some(t2) => {
                        next_number = lx
                            .text(t2)
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_digit() || "$€£¥~".contains(c));
                    }
                    None => {}
                }
            }
        }
        // The first word of the next word's canonical form.
        let next_word: Option<&str> =
            has_next_word.then(|| match voc.get(&self.low_n).and_then(|e| e.member) {
                Some(nm) => first_word(SETS[nm.set as usize].members[0]),
                None => first_word(&self.low_n),
            });
        let case = case_of(lx.text(&w0));
        // "I" is capitalised anywhere.
        let sent_init = w0.sent_init || first_word(set.members[0]) == "i";
        let quantity_ok = !set.c.next_quantity
            || next_number
            || next_word.is_some_and(|w| QUANTITY_WORDS.contains(&w));
        let eligible = quantity_ok && self.eligible(set, case, sent_init, next_char, next_word);
        Some(Plan {
            len,
            canon,
            stop,
            pos: eligible.then_some((m.set, m.idx, case)),
        })
    }

    fn eligible(
        &self,
        set: &SynSet,
        case: Case,
        sent_init: bool,
        next_char: Option<char>,
        next_word: Option<&str>,
    ) -> bool {
        match case {
            Case::Lower => {}
            Case::Title if sent_init => {}
            _ => return false,
        }
        let prev_ok = match self.prev_char {
            None => true,
            Some(c) => c.is_whitespace() || c == '(' || c == '*',
        };
        let next_ok = match next_char {
            None => true,
            Some(c) => c.is_whitespace() || ".,;:!?)*".contains(c),
        };
        if !prev_ok || !next_ok {
            return false;
        }
        let prev_word = if self.adjacent {
            Some(last_word(&self.prev_word))
        } else {
            None
        };
        if let Some(pw) = prev_word {
            if (pw == "a" || pw == "an") && {
                let v = starts_vowel(set.members[0]);
                set.members.iter().any(|m| starts_vowel(m) != v)
            } {
                return false;
            }
            if set.c.prev_block.contains(&pw) {
                return false;
            }
        }
        if let Some(need) = set.c.need_prev {
            if prev_word != Some(need) {
                return false;
            }
        }
        if let Some(nw) = next_word {
            if set.c.next_block.contains(&nw) {
                return false;
            }
        }
        if let Some(need) = set.c.need_next {
            if next_word != Some(need) {
                return false;
            }
        }
        if set.c.need_next_word && next_word.is_none() {
            return false;
        }
        if set.c.sentence_initial && !sent_init {
            return false;
        }
        if !set.c.next_chars.is_empty() && !next_char.is_some_and(|c| set.c.next_chars.contains(c))
        {
            return false;
        }
        true
    }

    /// Applies a plan; returns whether it wrote a replacement to `out` (otherwise the unit's
    /// text is output unchanged and left for the caller to copy).
    fn apply(&mut self, plan: Plan, out: &mut String) -> bool {
        let first = self.queue[0];
        let last = self.queue[plan.len - 1];
        self.stats.words += if plan.len == 3 { 2 } else { 1 };
        let span = self.lexer.span(&first, &last);
        // Apostrophe style follows the input text (the last apostrophe seen in a word).
        // (Only words can contain one, and the lexer flags those that do.)
        let has_apos = first.apos || (plan.len == 3 && self.queue[2].apos);
        if let Some(a) = has_apos.then(|| last_apostrophe(span)).flatten() {
            self.apos = a;
        }
        let start = out.len();
        let mut replaced = false;
        if let Some((set, member, case)) = plan.pos {
            self.stats.eligible += 1;
            let pos = Position {
                set,
                member,
                ctx: self.ctx.fingerprint(),
            };
            let chosen = self.decider.decide(&pos);
            if chosen != member as usize {
                self.stats.changed += 1;
                let word = SETS[set as usize].members[chosen];
                for (k, c) in word.chars().enumerate() {
                    let c = if c == '\'' { self.apos } else { c };
                    if k == 0 && case == Case::Title {
                        out.extend(c.to_uppercase());
                    } else {
                        out.push(c);
                    }
                }
                replaced = true;
            }
        }
        self.prev_char = if replaced {
            out[start..].chars().next_back()
        } else {
            span.chars().next_back()
        };
        match plan.canon {
            Canon::Static(c) => {
                self.ctx.push_word(c, plan.stop);
                self.prev_word.clear();
                self.prev_word.push_str(c);
            }
            Canon::Low0 => {
                if !self.low0_ok {
                    norm_into(self.lexer.text(&first), &mut self.low0);
                }
                self.ctx.push_word(&self.low0, plan.stop);
                std::mem::swap(&mut self.prev_word, &mut self.low0);
            }
        }
        self.adjacent = true;
        if plan.len == 1 {
            self.queue.pop_front();
        } else {
            self.queue.drain(..plan.len);
        }
        replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Recorder;

    const WORDS: &[&str] = &[
        "big",
        "Big",
        "BIG",
        "bIg",
        "don't",
        "Don’t",
        "DON’T",
        "can’t",
        "it",
        "It",
        "is",
        "\u{212A}inds",
        "\u{212A}INDS",
        "İs",
        "İt",
        "Σίσυφος",
        "ΣΑΣ",
        "ẞig",
        "ﬁne",
        "Ǆemal",
        "café",
        "naïve",
        "日本語",
        "o'clock",
        "rock'n'roll",
        "’tis",
        "students'",
        "x",
        "",
    ];

    #[test]
    fn norm_matches_definition() {
        for w in WORDS {
            let want: String = w
                .chars()
                .map(|c| if c == '’' { '\'' } else { c })
                .flat_map(char::to_lowercase)
                .collect();
            assert_eq!(norm(w), want, "{w:?}");
        }
    }

    #[test]
    fn last_apostrophe_finds_both_styles() {
        assert_eq!(last_apostrophe("don't"), Some('\''));
        assert_eq!(last_apostrophe("can’t"), Some('’'));
        assert_eq!(last_apostrophe("a’b'c"), Some('\''));
        assert_eq!(last_apostrophe("a'b’c"), Some('’'));
        // U+0119 (C4 99) and U+2099 (E2 82 99) end in 0x99 too.
        assert_eq!(last_apostrophe("\u{119}\u{2099}"), None);
        assert_eq!(last_apostrophe("big"), None);
    }

    /// Runs the full pipeline (no pre-filter); returns output and positions.
    fn full(text: &str, cfg: MarkConfig) -> (String, Vec<Position>) {
        let mut e = Engine::new(cfg, Recorder::default());
        let mut out = String::new();
        e.push(text, &mut out);
        e.finish(&mut out);
        (out, e.decider.0)
    }

    #[test]
    fn prefilter_never_hides_a_position() {
        // Pseudo-random texts of table words, stop words, traps and unicode look-alikes.
        let mut vocab: Vec<&str> = WORDS.to_vec();
        for s in SETS {
            for m in s.members {
                vocab.extend(m.split(' '));
            }
        }
        vocab.extend(crate::context::STOPWORDS);
        const SEPS: &[&str] = &[
            " ", " ", " ", "  ", ", ", ". ", "\n", "\n\n", "'", "’", "-", " `", "` ", " \"", "\" ",
            " (", ") ", "\n```\n", "\n    ", " 3 ", "/", "\u{a0}", "\u{3000}",
        ];
        let mut x: u64 = 0x1234_5678;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut found = 0;
        for round in 0..3000 {
            let mut t = String::new();
            for _ in 0..1 + round % 12 {
                // Mostly words that are not eligible on their own.
                let w = vocab[next(vocab.len())];
                t.push_str(w);
                t.push_str(SEPS[next(SEPS.len())]);
            }
            for cfg in [
                MarkConfig::default(),
                MarkConfig {
                    context_words: 1,
                    contractions: false,
                    ..MarkConfig::default()
                },
            ] {
                let (out, pos) = full(&t, cfg);
                assert_eq!(out, t);
                if !pos.is_empty() {
                    found += 1;
                    assert!(may_rewrite(&t), "pre-filter misses {t:?}");
                }
            }
        }
        assert!(found > 1000, "{found}");
        // Unicode look-alikes that lowercase to a member (KELVIN SIGN).
        assert!(!full("\u{212A}inds of", MarkConfig::default()).1.is_empty());
        assert!(may_rewrite("\u{212A}inds of"));
        assert!(!may_rewrite(
            "This is the answer. It echoes what you asked, in short form."
        ));
        assert!(may_rewrite("It is big"));
        assert!(may_rewrite("it is"));
        // Conservative: any next word that completes a phrase counts, whatever the spacing.
        assert!(may_rewrite("it  is"));
        assert!(!may_rewrite("it was"));
    }
}
