//! Streaming lexer: splits text into whitespace, punctuation and word tokens and marks the
//! tokens that must never be rewritten.
//!
//! The lexer is a left-to-right state machine over a pending buffer. It only emits a token
//! once the token's extent and classification are determined by the text itself, so the token
//! sequence is identical however the input is chunked (the streaming-equivalence property).
//! What it may hold back: the current whitespace-delimited run (at most [`MAX_RUN`] bytes),
//! the current whitespace run, and the first few characters of a line (to recognise code
//! fences and indented code).
//!
//! Protected (never rewritten) content:
//! - fenced code blocks (```` ``` ```` / `~~~`) and indented code lines (4+ columns): emitted as
//!   opaque punctuation, so their words do not even feed the context;
//! - inline code (between backticks), double-quoted text (`"…"`, `“…”`), JSON-looking spans
//!   (inside `{…}` or `[…]`); these states reset at a blank line so an unbalanced quote cannot
//!   disable the watermark for the rest of a long answer;
//! - runs (whitespace-delimited) that look like URLs, e-mails, paths, identifiers, numbers or
//!   markup: containing a digit, `://`, `@`, `www.`, one of `/\_=<>|$#^~&+%`, or a `.`/`:`
//!   between two alphanumerics (`e.g.`, `example.com`, `10:30`);
//! - runs longer than [`MAX_RUN`] bytes (minified JSON, base64...).
//!
//! Capitalisation (names mid-sentence) is handled by the marker, which sees `sent_init`.

/// Longest whitespace-delimited run that is tokenised into words; longer runs are opaque.
pub const MAX_RUN: usize = 256;

/// Token kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Whitespace. A `"\n"` is always its own token.
    Space,
    /// Anything that is neither whitespace nor a word (including opaque code).
    Punct,
    /// Letters, with internal apostrophes (`don't`).
    Word,
}

/// A lexed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tok {
    pub text: String,
    pub kind: Kind,
    /// Inside a protected span/run: never rewritten.
    pub protected: bool,
    /// For words: first word of a sentence (start of text, of a line, or after `.`/`!`/`?`).
    pub sent_init: bool,
}

impl Tok {
    fn new(text: &str, kind: Kind, protected: bool, sent_init: bool) -> Self {
        Self {
            text: text.to_string(),
            kind,
            protected,
            sent_init,
        }
    }
}

fn is_apos(c: char) -> bool {
    c == '\'' || c == '’'
}

fn is_hspace(c: char) -> bool {
    c.is_whitespace() && c != '\n'
}

/// The streaming lexer.
#[derive(Debug, Clone)]
pub(crate) struct Lexer {
    buf: String,
    pos: usize,
    at_line_start: bool,
    /// Open fence: (char, length).
    fence: Option<(char, usize)>,
    /// The rest of the current line is code.
    line_code: bool,
    /// Inside an over-long run (opaque until the next whitespace).
    long_run: bool,
    /// Previous character inside the current over-long run (backtick runs).
    op_prev: Option<char>,
    inline_code: bool,
    in_quote: bool,
    depth: u32,
    sent_start: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Self {
            buf: String::new(),
            pos: 0,
            at_line_start: true,
            fence: None,
            line_code: false,
            long_run: false,
            op_prev: None,
            inline_code: false,
            in_quote: false,
            depth: 0,
            sent_start: true,
        }
    }
}

impl Lexer {
    /// Appends input.
    pub fn feed(&mut self, chunk: &str) {
        if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.push_str(chunk);
    }

    /// Bytes received but not yet emitted as tokens.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Emits every token that is determined. With `eof`, emits everything.
    pub fn lex(&mut self, eof: bool, out: &mut Vec<Tok>) {
        while self.pos < self.buf.len() {
            if !self.step(eof, out) {
                break;
            }
        }
    }

    /// One step; returns false if more input is needed.
    fn step(&mut self, eof: bool, out: &mut Vec<Tok>) -> bool {
        let rest = &self.buf[self.pos..];
        if self.at_line_start {
            return self.line_start(eof, out);
        }
        let c = rest.chars().next().expect("non-empty");
        if c == '\n' {
            out.push(Tok::new("\n", Kind::Space, self.line_code, false));
            self.pos += 1;
            self.at_line_start = true;
            self.line_code = false;
            self.long_run = false;
            return true;
        }
        if is_hspace(c) {
            let end = match rest.find(|ch: char| !is_hspace(ch)) {
                Some(e) if e <= MAX_RUN => e,
                None if eof && rest.len() <= MAX_RUN => rest.len(),
                // Over-long whitespace runs are cut every MAX_RUN bytes (content-determined,
                // so chunking cannot change token boundaries).
                _ if rest.len() > MAX_RUN => floor_boundary(rest, MAX_RUN),
                None => return false,
                Some(e) => e,
            };
            out.push(Tok::new(&rest[..end], Kind::Space, self.line_code, false));
            self.pos += end;
            self.long_run = false;
            return true;
        }
        // Non-whitespace.
        let ws = rest.find(char::is_whitespace);
        if self.line_code {
            // Code line: emit what we have up to the newline; only first/last chars matter.
            let end = rest.find('\n').unwrap_or(rest.len());
            out.push(Tok::new(&rest[..end], Kind::Punct, true, false));
            self.pos += end;
            return true;
        }
        if self.long_run || (ws.is_none() && rest.len() > MAX_RUN) {
            let end = ws.unwrap_or(rest.len());
            let piece = rest[..end].to_string();
            if !self.long_run {
                self.op_prev = None;
            }
            self.long_run = ws.is_none();
            self.opaque(&piece, out);
            self.pos += end;
            return true;
        }
        let end = match ws {
            Some(e) => e,
            None if eof => rest.len(),
            None => return false,
        };
        let run = rest[..end].to_string();
        self.pos += end;
        if run.len() > MAX_RUN {
            self.op_prev = None;
            self.opaque(&run, out);
        } else {
            self.run(&run, out);
        }
        true
    }

    /// Decides what kind of line starts here (fence, indented code, blank, prose).
    fn line_start(&mut self, eof: bool, out: &mut Vec<Tok>) -> bool {
        let rest = &self.buf[self.pos..];
        let ws = match rest.find(|c: char| !is_hspace(c)) {
            Some(e) if e <= MAX_RUN => e,
            None if eof && rest.len() <= MAX_RUN => rest.len(),
            // Indentation longer than MAX_RUN: a code line, blank or not.
            _ if rest.len() > MAX_RUN => {
                self.line_code = true;
                self.at_line_start = false;
                return true;
            }
            None => return false,
            Some(e) => e,
        };
        let indent: usize = rest[..ws]
            .chars()
            .map(|c| if c == '\t' { 4 } else { 1 })
            .sum();
        let after = &rest[ws..];
        let first = after.chars().next();
        // Fence marker run length (need to see its end).
        let mut fence_run = 0usize;
        if let Some(fc @ ('`' | '~')) = first {
            fence_run = after.chars().take_while(|&c| c == fc).count();
            if fence_run == after.len() && fence_run < MAX_RUN && !eof {
                return false;
            }
            fence_run = fence_run.min(MAX_RUN);
        }
        let blank = first.is_none() || first == Some('\n');
        let fence_char = first.unwrap_or(' ');
        // Fences are recognised at any indentation (LLM output indents them inside list
        // items, often with a tab, and closes them at column 0).
        if let Some((fc, flen)) = self.fence {
            if fence_char == fc && fence_run >= flen {
                self.fence = None;
            }
            self.line_code = true;
        } else if fence_run >= 3 {
            self.fence = Some((fence_char, fence_run));
            self.line_code = true;
        } else if indent >= 4 && !blank {
            self.line_code = true;
        } else {
            self.line_code = false;
            if blank {
                self.inline_code = false;
                self.in_quote = false;
                self.depth = 0;
            }
            self.sent_start = true;
        }
        if ws > 0 {
            out.push(Tok::new(&rest[..ws], Kind::Space, self.line_code, false));
        }
        self.pos += ws;
        self.at_line_start = false;
        true
    }

    fn protected_now(&self) -> bool {
        self.inline_code || self.in_quote || self.depth > 0
    }

    /// Updates span/sentence state for one non-letter character.
    fn punct_state(&mut self, c: char, prev: Option<char>) {
        match c {
            '`' if prev != Some('`') => self.inline_code = !self.inline_code,
            '"' => self.in_quote = !self.in_quote,
            '“' => self.in_quote = true,
            '”' => self.in_quote = false,
            '{' | '[' => self.depth = self.depth.saturating_add(1),
            '}' | ']' => self.depth = self.depth.saturating_sub(1),
            '.' | '!' | '?' => self.sent_start = true,
            ',' | ';' | ':' => self.sent_start = false,
            _ => {}
        }
    }

    /// Opaque (protected) text inside an over-long run; state is still tracked per char.
    fn opaque(&mut self, text: &str, out: &mut Vec<Tok>) {
        for c in text.chars() {
            if c.is_alphabetic() {
                self.sent_start = false;
            } else {
                self.punct_state(c, self.op_prev);
            }
            self.op_prev = Some(c);
        }
        out.push(Tok::new(text, Kind::Punct, true, false));
    }

    /// Splits a complete run into punctuation and word tokens.
    fn run(&mut self, run: &str, out: &mut Vec<Tok>) {
        let run_protected = run_looks_technical(run);
        let chars: Vec<(usize, char)> = run.char_indices().collect();
        let mut i = 0;
        let mut punct_start: Option<usize> = None;
        let mut prev: Option<char> = None;
        while i < chars.len() {
            let (b, c) = chars[i];
            if c.is_alphabetic() {
                if let Some(ps) = punct_start.take() {
                    out.push(Tok::new(&run[ps..b], Kind::Punct, false, false));
                }
                let mut j = i + 1;
                while j < chars.len() {
                    let cj = chars[j].1;
                    if cj.is_alphabetic()
                        || (is_apos(cj) && j + 1 < chars.len() && chars[j + 1].1.is_alphabetic())
                    {
                        j += 1;
                    } else {
                        break;
                    }
                }
                let e = chars.get(j).map_or(run.len(), |x| x.0);
                let protected = run_protected || self.protected_now();
                out.push(Tok::new(&run[b..e], Kind::Word, protected, self.sent_start));
                self.sent_start = false;
                prev = Some(chars[j - 1].1);
                i = j;
            } else {
                if punct_start.is_none() {
                    punct_start = Some(b);
                }
                self.punct_state(c, prev);
                prev = Some(c);
                i += 1;
            }
        }
        if let Some(ps) = punct_start {
            out.push(Tok::new(&run[ps..], Kind::Punct, false, false));
        }
    }
}

/// Largest char boundary of `s` that is `<= i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Whether a whitespace-delimited run looks like a URL, e-mail, path, number, identifier or
/// markup, in which case none of its words are rewritten.
pub(crate) fn run_looks_technical(run: &str) -> bool {
    if run.contains("://") || run.contains("www.") {
        return true;
    }
    let chars: Vec<char> = run.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_digit() || "@/\\_=<>|$#^~&+%".contains(c) {
            return true;
        }
        if (c == '.' || c == ':')
            && i > 0
            && i + 1 < chars.len()
            && chars[i - 1].is_alphanumeric()
            && chars[i + 1].is_alphanumeric()
        {
            return true;
        }
    }
    false
}

/// Lexes a whole text at once (tests).
#[cfg(test)]
pub(crate) fn lex_all(text: &str) -> Vec<Tok> {
    let mut lx = Lexer::default();
    lx.feed(text);
    let mut out = Vec::new();
    lx.lex(true, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, bool)> {
        lex_all(text)
            .into_iter()
            .filter(|t| t.kind == Kind::Word)
            .map(|t| (t.text, t.protected))
            .collect()
    }

    #[test]
    fn roundtrip_concat() {
        let t = "Hello, world!\n\n```rust\nlet big = 1;\n```\n    indented big\nDon't \"quote big\" `code big` {\"a\": big}\n";
        let toks = lex_all(t);
        let s: String = toks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(s, t);
    }

    #[test]
    fn protection() {
        let w = words("a big \"big\" `big` {big} [big] see www.big.com and mail@big.org 3big");
        let prot: Vec<_> = w.iter().map(|(w, p)| (w.as_str(), *p)).collect();
        assert_eq!(prot[0], ("a", false));
        assert_eq!(prot[1], ("big", false));
        assert!(prot[2..6].iter().all(|x| x.1), "{prot:?}");
        assert!(prot.iter().filter(|x| x.0 == "big").skip(1).all(|x| x.1));
    }

    #[test]
    fn code_lines_are_opaque() {
        let toks = lex_all("x\n```\nbig large\n```\n    big\nbig");
        let ws: Vec<_> = toks
            .iter()
            .filter(|t| t.kind == Kind::Word)
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(ws, vec!["x", "big"]);
    }

    #[test]
    fn apostrophes() {
        let w = words("don't students' ’tis can’t");
        let ws: Vec<_> = w.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(ws, vec!["don't", "students", "tis", "can’t"]);
    }
}
