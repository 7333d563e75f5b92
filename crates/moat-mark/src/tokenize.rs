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

use std::collections::VecDeque;

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

/// A lexed token: a byte range of the stream (absolute offsets since the start of the
/// stream; the text lives in the lexer's buffer, see [`Lexer::text`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tok {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
    /// Inside a protected span/run: never rewritten.
    pub protected: bool,
    /// For words: first word of a sentence (start of text, of a line, or after `.`/`!`/`?`).
    pub sent_init: bool,
    /// For words: contains an apostrophe (`'` or `’`).
    pub apos: bool,
}

impl Tok {
    #[inline]
    fn new(start: usize, end: usize, kind: Kind, protected: bool, sent_init: bool) -> Self {
        Self {
            start,
            end,
            kind,
            protected,
            sent_init,
            apos: false,
        }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }
}

#[inline]
fn is_apos(c: char) -> bool {
    c == '\'' || c == '’'
}

#[inline]
fn is_hspace(c: char) -> bool {
    c.is_whitespace() && c != '\n'
}

/// The char at byte `i` of `s` and its length (ASCII fast path).
#[inline]
pub(crate) fn char_at(s: &str, i: usize) -> (char, usize) {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        (b as char, 1)
    } else {
        let c = s[i..].chars().next().expect("char boundary");
        (c, c.len_utf8())
    }
}

/// A digit or one of `@/\\_=<>|$#^~&+%`: an ASCII byte that makes a run look technical.
const fn is_technical_ascii(b: u8) -> bool {
    matches!(
        b,
        b'0'..=b'9'
            | b'@'
            | b'/'
            | b'\\'
            | b'_'
            | b'='
            | b'<'
            | b'>'
            | b'|'
            | b'$'
            | b'#'
            | b'^'
            | b'~'
            | b'&'
            | b'+'
            | b'%'
    )
}

/// Byte classes for [`scan_run`]: 1 = ASCII whitespace, 2 = may make a run technical (a digit,
/// one of `@/\\_=<>|$#^~&+%`, `.` or `:`; see [`run_looks_technical`]), 4 = non-ASCII.
static RUN_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b' ' | b'\t'..=b'\r' => 1,
            b'.' | b':' => 2,
            b if is_technical_ascii(b) => 2,
            0x80.. => 4,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// One pass over the start of a run: the offset of the first whitespace char (as
/// `find_char(s, char::is_whitespace)`), and whether the run before it may look technical
/// (false: [`run_looks_technical`] is certainly false for it).
#[inline]
fn scan_run(s: &str) -> (Option<usize>, bool) {
    let b = s.as_bytes();
    let mut flags = 0u8;
    for (i, &x) in b.iter().enumerate() {
        let c = RUN_CLASS[x as usize];
        if c == 1 {
            return (Some(i), flags != 0);
        }
        if c == 4 {
            // All bytes so far are ASCII, so `i` is a char boundary.
            return (find_char(&s[i..], char::is_whitespace).map(|p| p + i), true);
        }
        flags |= c;
    }
    (None, flags != 0)
}

/// Byte offset of the first char of `s` that satisfies `f` (ASCII fast path).
#[inline]
fn find_char(s: &str, f: impl Fn(char) -> bool) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let (c, l) = if b[i] < 0x80 {
            (b[i] as char, 1)
        } else {
            char_at(s, i)
        };
        if f(c) {
            return Some(i);
        }
        i += l;
    }
    None
}

/// The streaming lexer.
#[derive(Debug, Clone)]
pub(crate) struct Lexer {
    buf: String,
    /// Absolute stream offset of `buf[0]`.
    base: usize,
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
            base: 0,
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
    /// A lexer whose buffer can take `cap` bytes without reallocating.
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            buf: String::with_capacity(cap),
            ..Self::default()
        }
    }

    /// Appends input. `keep` is the absolute offset of the oldest token still in use (its text
    /// must stay readable); older bytes may be discarded.
    pub fn feed(&mut self, chunk: &str, keep: Option<usize>) {
        let keep = keep.map_or(self.pos, |k| (k - self.base).min(self.pos));
        if keep > 4096 && keep * 2 > self.buf.len() {
            self.buf.drain(..keep);
            self.base += keep;
            self.pos -= keep;
        }
        self.buf.push_str(chunk);
    }

    /// The text of a token (which must not have been discarded, see [`feed`](Self::feed)).
    #[inline]
    pub fn text(&self, t: &Tok) -> &str {
        &self.buf[t.start - self.base..t.end - self.base]
    }

    /// The text between two absolute offsets.
    #[inline]
    pub fn range(&self, start: usize, end: usize) -> &str {
        &self.buf[start - self.base..end - self.base]
    }

    /// The text from the start of `a` to the end of `b`.
    #[inline]
    pub fn span(&self, a: &Tok, b: &Tok) -> &str {
        &self.buf[a.start - self.base..b.end - self.base]
    }

    /// Bytes received but not yet emitted as tokens.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Emits every token that is determined. With `eof`, emits everything.
    pub fn lex(&mut self, eof: bool, out: &mut VecDeque<Tok>) {
        let buf = std::mem::take(&mut self.buf);
        while self.pos < buf.len() {
            if !self.step(&buf, eof, out) {
                break;
            }
        }
        self.buf = buf;
    }

    /// One step; returns false if more input is needed.
    fn step(&mut self, buf: &str, eof: bool, out: &mut VecDeque<Tok>) -> bool {
        let rest = &buf[self.pos..];
        let abs = self.base + self.pos;
        if self.at_line_start {
            return self.line_start(rest, abs, eof, out);
        }
        let c = char_at(rest, 0).0;
        if c == '\n' {
            out.push_back(Tok::new(abs, abs + 1, Kind::Space, self.line_code, false));
            self.pos += 1;
            self.at_line_start = true;
            self.line_code = false;
            self.long_run = false;
            return true;
        }
        if is_hspace(c) {
            let end = match find_char(rest, |ch| !is_hspace(ch)) {
                Some(e) if e <= MAX_RUN => e,
                None if eof && rest.len() <= MAX_RUN => rest.len(),
                // Over-long whitespace runs are cut every MAX_RUN bytes (content-determined,
                // so chunking cannot change token boundaries).
                _ if rest.len() > MAX_RUN => floor_boundary(rest, MAX_RUN),
                None => return false,
                Some(e) => e,
            };
            out.push_back(Tok::new(abs, abs + end, Kind::Space, self.line_code, false));
            self.pos += end;
            self.long_run = false;
            return true;
        }
        // Non-whitespace.
        let (ws, maybe_technical) = scan_run(rest);
        if self.line_code {
            // Code line: emit what we have up to the newline; only first/last chars matter.
            let end = rest.find('\n').unwrap_or(rest.len());
            out.push_back(Tok::new(abs, abs + end, Kind::Punct, true, false));
            self.pos += end;
            return true;
        }
        if self.long_run || (ws.is_none() && rest.len() > MAX_RUN) {
            let end = ws.unwrap_or(rest.len());
            if !self.long_run {
                self.op_prev = None;
            }
            self.long_run = ws.is_none();
            self.opaque(&rest[..end], abs, out);
            self.pos += end;
            return true;
        }
        let end = match ws {
            Some(e) => e,
            None if eof => rest.len(),
            None => return false,
        };
        let run = &rest[..end];
        self.pos += end;
        if run.len() > MAX_RUN {
            self.op_prev = None;
            self.opaque(run, abs, out);
        } else {
            self.run(run, abs, maybe_technical, out);
        }
        true
    }

    /// Decides what kind of line starts here (fence, indented code, blank, prose).
    fn line_start(&mut self, rest: &str, abs: usize, eof: bool, out: &mut VecDeque<Tok>) -> bool {
        let ws = match find_char(rest, |c| !is_hspace(c)) {
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
            out.push_back(Tok::new(abs, abs + ws, Kind::Space, self.line_code, false));
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
    fn opaque(&mut self, text: &str, abs: usize, out: &mut VecDeque<Tok>) {
        for c in text.chars() {
            if c.is_alphabetic() {
                self.sent_start = false;
            } else {
                self.punct_state(c, self.op_prev);
            }
            self.op_prev = Some(c);
        }
        out.push_back(Tok::new(abs, abs + text.len(), Kind::Punct, true, false));
    }

    /// Splits a complete run (starting at absolute offset `abs`) into punctuation and word
    /// tokens.
    /// `maybe_technical` is false only if the run certainly does not look technical.
    fn run(&mut self, run: &str, abs: usize, maybe_technical: bool, out: &mut VecDeque<Tok>) {
        let run_protected = maybe_technical && run_looks_technical(run);
        let n = run.len();
        let mut i = 0;
        let mut punct_start: Option<usize> = None;
        let mut prev: Option<char> = None;
        while i < n {
            let (c, cl) = char_at(run, i);
            if c.is_alphabetic() {
                if let Some(ps) = punct_start.take() {
                    out.push_back(Tok::new(abs + ps, abs + i, Kind::Punct, false, false));
                }
                let mut j = i + cl;
                let mut last = c;
                let mut apos = false;
                while j < n {
                    let (cj, lj) = char_at(run, j);
                    if cj.is_alphabetic() {
                        last = cj;
                        j += lj;
                    } else if is_apos(cj) && j + lj < n && char_at(run, j + lj).0.is_alphabetic() {
                        apos = true;
                        last = cj;
                        j += lj;
                    } else {
                        break;
                    }
                }
                let protected = run_protected || self.protected_now();
                let mut tok = Tok::new(abs + i, abs + j, Kind::Word, protected, self.sent_start);
                tok.apos = apos;
                out.push_back(tok);
                self.sent_start = false;
                prev = Some(last);
                i = j;
            } else {
                if punct_start.is_none() {
                    punct_start = Some(i);
                }
                self.punct_state(c, prev);
                prev = Some(c);
                i += cl;
            }
        }
        if let Some(ps) = punct_start {
            out.push_back(Tok::new(abs + ps, abs + n, Kind::Punct, false, false));
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

/// Byte classes for [`run_looks_technical`]: 1 = technical (digit or one of
/// `@/\\_=<>|$#^~&+%`), 2 = `.`/`:`, 3 = `w`, 4 = non-ASCII.
static TECH: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b if is_technical_ascii(b) => 1,
            b'.' | b':' => 2,
            b'w' => 3,
            0x80.. => 4,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// Whether a whitespace-delimited run looks like a URL, e-mail, path, number, identifier or
/// markup, in which case none of its words are rewritten.
pub(crate) fn run_looks_technical(run: &str) -> bool {
    // ASCII fast path; falls back to the general definition at the first non-ASCII byte.
    let b = run.as_bytes();
    let n = b.len();
    let mut ascii = true;
    for i in 0..n {
        let c = b[i];
        match TECH[c as usize] {
            0 => {}
            1 => return true,
            2 => {
                // '.' or ':'
                if c == b':' && b[i + 1..].starts_with(b"//") {
                    return true;
                }
                if i > 0
                    && i + 1 < n
                    && b[i - 1].is_ascii_alphanumeric()
                    && b[i + 1].is_ascii_alphanumeric()
                {
                    return true;
                }
            }
            3 => {
                if b[i..].starts_with(b"www.") {
                    return true;
                }
            }
            _ => {
                ascii = false;
                break;
            }
        }
    }
    if ascii {
        return false;
    }
    if run.contains("://") || run.contains("www.") {
        return true;
    }
    let mut prev: Option<char> = None;
    let mut cs = run.chars().peekable();
    while let Some(c) = cs.next() {
        if c.is_ascii() && is_technical_ascii(c as u8) {
            return true;
        }
        if (c == '.' || c == ':')
            && prev.is_some_and(char::is_alphanumeric)
            && cs.peek().is_some_and(|n| n.is_alphanumeric())
        {
            return true;
        }
        prev = Some(c);
    }
    false
}

/// Lexes a whole text at once (tests).
#[cfg(test)]
pub(crate) fn lex_all(text: &str) -> Vec<(String, Tok)> {
    let mut lx = Lexer::default();
    lx.feed(text, None);
    let mut out = VecDeque::new();
    lx.lex(true, &mut out);
    out.into_iter()
        .map(|t| (lx.text(&t).to_string(), t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, bool)> {
        lex_all(text)
            .into_iter()
            .filter(|t| t.1.kind == Kind::Word)
            .map(|(s, t)| (s, t.protected))
            .collect()
    }

    #[test]
    fn roundtrip_concat() {
        let t = "Hello, world!\n\n```rust\nlet big = 1;\n```\n    indented big\nDon't \"quote big\" `code big` {\"a\": big}\n";
        let toks = lex_all(t);
        let s: String = toks.iter().map(|t| t.0.as_str()).collect();
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
            .filter(|t| t.1.kind == Kind::Word)
            .map(|t| t.0.as_str())
            .collect();
        assert_eq!(ws, vec!["x", "big"]);
    }

    /// The original definition of [`run_looks_technical`].
    fn technical_reference(run: &str) -> bool {
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

    #[test]
    fn technical_matches_definition() {
        let parts = [
            "a", "B", "é", "日", ".", ":", "/", "//", "w", "ww", "www", "3", "_", "-", "'", "’",
            "(", ")", ",", "\\", "@", "%", "~", "!", "?", "\"",
        ];
        let mut x: u64 = 99;
        for _ in 0..20000 {
            let mut run = String::new();
            for _ in 0..1 + x % 7 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                run.push_str(parts[(x >> 33) as usize % parts.len()]);
            }
            assert_eq!(
                run_looks_technical(&run),
                technical_reference(&run),
                "{run:?}"
            );
        }
        for r in [
            "e.g.", "a.b", "x:y", "http://a", "www.x", "é.x", "x.é", ".a", "a.", "a:",
        ] {
            assert_eq!(run_looks_technical(r), technical_reference(r), "{r:?}");
        }
    }

    #[test]
    fn scan_run_matches_definitions() {
        let parts = [
            "a", "B", "é", " ", "\t", "\n", "\u{a0}", "\u{3000}", ".", ":", "/", "w", "3", "_",
            "'", ",", "!", "(", "\u{85}",
        ];
        let mut x: u64 = 7;
        for _ in 0..20000 {
            let mut s = String::new();
            for _ in 0..1 + x % 9 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push_str(parts[(x >> 33) as usize % parts.len()]);
            }
            let (ws, maybe) = scan_run(&s);
            assert_eq!(ws, s.find(char::is_whitespace), "{s:?}");
            let run = &s[..ws.unwrap_or(s.len())];
            assert!(maybe || !run_looks_technical(run), "{s:?}");
        }
    }

    #[test]
    fn apostrophes() {
        let w = words("don't students' ’tis can’t");
        let ws: Vec<_> = w.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(ws, vec!["don't", "students", "tis", "can’t"]);
    }
}
