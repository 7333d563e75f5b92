//! The shared token pipeline used by marking (rewrite eligible positions) and detection
//! (record eligible positions). Both run exactly the same eligibility logic, which is what
//! makes the detector see the positions and contexts the marker used.

use crate::context::Context;
use crate::synonyms::{self, Member, SETS};
use crate::tokenize::{Kind, Lexer, Tok};
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

/// Lowercases and normalises curly apostrophes.
pub(crate) fn norm(word: &str) -> String {
    word.chars()
        .map(|c| if c == '’' { '\'' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
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
    scratch: Vec<Tok>,
    queue: VecDeque<Tok>,
    ctx: Context,
    prev_char: Option<char>,
    /// Canonical form of the last word/unit and whether only horizontal space followed it.
    prev_word: Option<String>,
    adjacent: bool,
    apos: char,
    pub stats: MarkStats,
    pub decider: D,
}

struct Plan {
    /// Tokens consumed (1 = word, 3 = word, space, word).
    len: usize,
    canonical: String,
    /// Eligible position and the text to substitute when the decider changes the member.
    pos: Option<(Position, Case)>,
}

impl<D: Decide> Engine<D> {
    pub fn new(cfg: MarkConfig, decider: D) -> Self {
        Self {
            ctx: Context::new(cfg.context_words),
            cfg,
            lexer: Lexer::default(),
            scratch: Vec::new(),
            queue: VecDeque::new(),
            prev_char: None,
            prev_word: None,
            adjacent: false,
            apos: '\'',
            stats: MarkStats::default(),
            decider,
        }
    }

    /// Bytes received but not yet emitted.
    pub fn held_back(&self) -> usize {
        self.lexer.pending() + self.queue.iter().map(|t| t.text.len()).sum::<usize>()
    }

    /// Feeds input and appends all decided output to `out`.
    pub fn push(&mut self, chunk: &str, out: &mut String) {
        self.lexer.feed(chunk);
        self.run(false, out);
    }

    /// Flushes everything.
    pub fn finish(&mut self, out: &mut String) {
        self.run(true, out);
    }

    fn run(&mut self, eof: bool, out: &mut String) {
        self.lexer.lex(eof, &mut self.scratch);
        self.queue.extend(self.scratch.drain(..));
        while let Some(front) = self.queue.front() {
            if front.kind != Kind::Word {
                let t = self.queue.pop_front().expect("front");
                self.emit_other(&t, out);
                continue;
            }
            let Some(plan) = self.plan(eof) else { break };
            self.apply(plan, out);
        }
    }

    fn emit_other(&mut self, t: &Tok, out: &mut String) {
        if t.kind != Kind::Space || t.text.contains('\n') {
            self.adjacent = false;
        }
        if let Some(c) = t.text.chars().next_back() {
            self.prev_char = Some(c);
        }
        out.push_str(&t.text);
    }

    /// Plans the unit at the queue front; `None` if more lookahead is needed.
    fn plan(&self, eof: bool) -> Option<Plan> {
        let q = &self.queue;
        let w0 = &q[0];
        let lower0 = norm(&w0.text);
        let mut len = 1;
        let mut member: Option<Member> = None;
        let mut phrase = None;
        if !w0.protected && synonyms::is_phrase_first(&lower0) {
            match q.get(1) {
                None if !eof => return None,
                Some(t1) if t1.kind == Kind::Space && t1.text == " " => match q.get(2) {
                    None if !eof => return None,
                    Some(t2) if t2.kind == Kind::Word && !t2.protected => {
                        let ph = format!("{lower0} {}", norm(&t2.text));
                        if let Some(m) = synonyms::lookup_phrase(&ph) {
                            // "it is not" parses as "it" + "is not" (like "it isn't").
                            let mut followed_by_not = false;
                            if SETS[m.set as usize].c.positive {
                                match (q.get(3), q.get(4)) {
                                    (None, _) if !eof => return None,
                                    (Some(t3), None) if !eof && t3.text == " " => return None,
                                    (Some(t3), Some(t4)) => {
                                        followed_by_not = t3.text == " "
                                            && t4.kind == Kind::Word
                                            && norm(&t4.text) == "not";
                                    }
                                    _ => {}
                                }
                            }
                            if !followed_by_not {
                                len = 3;
                                member = Some(m);
                                phrase = Some(ph);
                            }
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        if len == 1 {
            member = synonyms::lookup_word(&lower0);
        }
        let surface = phrase.unwrap_or(lower0);
        let canonical = synonyms::canonical(&surface).to_string();
        let Some(m) = member else {
            return Some(Plan {
                len,
                canonical,
                pos: None,
            });
        };
        let set = &SETS[m.set as usize];
        if w0.protected
            || (set.c.contraction && !self.cfg.contractions)
            || (len == 3 && (q[2].protected || case_of(&q[2].text) != Case::Lower))
        {
            return Some(Plan {
                len,
                canonical,
                pos: None,
            });
        }
        // Lookahead: next token and, if separated by horizontal space only, the next word.
        let next_tok = match q.get(len) {
            None if !eof => return None,
            t => t,
        };
        let next_char = next_tok.and_then(|t| t.text.chars().next());
        let mut next_word: Option<String> = None;
        let mut next_number = false;
        if let Some(t) = next_tok {
            if t.kind == Kind::Space && !t.text.contains('\n') {
                match q.get(len + 1) {
                    None if !eof => return None,
                    Some(t2) if t2.kind == Kind::Word => {
                        let c = synonyms::canonical(&norm(&t2.text)).to_string();
                        next_word = Some(first_word(&c).to_string());
                    }
                    Some(t2) => {
                        next_number = t2
                            .text
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_digit() || "$€£¥~".contains(c));
                    }
                    None => {}
                }
            }
        }
        let case = case_of(&w0.text);
        // "I" is capitalised anywhere.
        let sent_init = w0.sent_init || first_word(set.members[0]) == "i";
        let quantity_ok = !set.c.next_quantity
            || next_number
            || next_word
                .as_deref()
                .is_some_and(|w| synonyms::QUANTITY_WORDS.contains(&w));
        let eligible =
            quantity_ok && self.eligible(set, case, sent_init, next_char, next_word.as_deref());
        let pos = eligible.then(|| {
            (
                Position {
                    set: m.set,
                    member: m.idx,
                    ctx: self.ctx.fingerprint(),
                },
                case,
            )
        });
        Some(Plan {
            len,
            canonical,
            pos,
        })
    }

    fn eligible(
        &self,
        set: &synonyms::SynSet,
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
            self.prev_word.as_deref().map(last_word)
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

    fn apply(&mut self, plan: Plan, out: &mut String) {
        let toks: Vec<Tok> = self.queue.drain(..plan.len).collect();
        self.stats.words += if plan.len == 3 { 2 } else { 1 };
        // Apostrophe style follows the input text (the last apostrophe seen in a word).
        if let Some(a) = toks
            .iter()
            .rev()
            .flat_map(|t| t.text.chars().rev())
            .find(|&c| c == '\'' || c == '’')
        {
            self.apos = a;
        }
        let mut replaced = None;
        if let Some((pos, case)) = plan.pos {
            self.stats.eligible += 1;
            let chosen = self.decider.decide(&pos);
            if chosen != pos.member as usize {
                self.stats.changed += 1;
                let mut s =
                    SETS[pos.set as usize].members[chosen].replace('\'', &self.apos.to_string());
                if case == Case::Title {
                    let mut cs = s.chars();
                    if let Some(f) = cs.next() {
                        s = f.to_uppercase().chain(cs).collect();
                    }
                }
                replaced = Some(s);
            }
        }
        let start = out.len();
        match replaced {
            Some(s) => out.push_str(&s),
            None => toks.iter().for_each(|t| out.push_str(&t.text)),
        }
        let emitted = &out[start..];
        self.prev_char = emitted.chars().next_back();
        self.ctx.push(&plan.canonical);
        self.prev_word = Some(plan.canonical);
        self.adjacent = true;
    }
}
