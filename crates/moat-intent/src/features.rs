//! The feature extractor: hashed character n-grams and word uni/bigrams of a bounded,
//! normalised view of the request text.
//!
//! Normalisation, per character: ASCII letters lowercased, every digit folded to `0`,
//! whitespace runs collapsed to one space, control and zero-width characters dropped,
//! full-width ASCII folded to ASCII, Latin letters with diacritics folded to their base
//! letter (`é` → `e`, `ß` → `s`), everything else lowercased with [`char::to_lowercase`].
//!
//! Features, each a 64-bit hash tagged with its *kind*:
//! * kinds 1–5: character n-grams of that length (across word boundaries; each segment is
//!   padded with one space at both ends);
//! * kind 6: words (maximal runs of alphanumeric characters other than Han, kana; at most
//!   24 characters);
//! * kind 7: pairs of consecutive words.
//!
//! Which kinds are used is part of the model ([`FeatureConfig::kinds`]). Text read is bounded:
//! the first `sys_bytes` of the system text, and of the last user turn the first
//! `head_bytes` and the last `tail_bytes` (the whole turn when it is shorter than both).

use crate::fold::{LATIN_1E00_1EFF, LATIN_C0_24F};

/// Which features are extracted and how much text is read. Stored in the model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureConfig {
    /// Bit `n` set: kind `n` is used (1–5 character n-grams, 6 words, 7 word pairs).
    pub kinds: u8,
    /// Bytes read from the start of the system text.
    pub sys_bytes: usize,
    /// Bytes read from the start of the last user turn.
    pub head_bytes: usize,
    /// Bytes read from the end of the last user turn (when it is longer than
    /// `head_bytes + tail_bytes`).
    pub tail_bytes: usize,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        // the shipped model's configuration (chosen in research/intent/tune.py)
        FeatureConfig {
            kinds: 0b1010_1000,
            sys_bytes: 256,
            head_bytes: 768,
            tail_bytes: 256,
        }
    }
}

/// Kind of a word feature.
pub const KIND_WORD: u8 = 6;
/// Kind of a word-pair feature.
pub const KIND_BIGRAM: u8 = 7;

const P: u64 = 0x0000_0100_0000_01b3;
const SEEDS: [u64; 8] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
];
const WORD_SEED: u64 = 0xcbf2_9ce4_8422_2325;
const MAX_WORD_CHARS: u32 = 24;

#[inline]
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Normalises one character; `None` drops it.
#[inline]
pub fn normalize_char(c: char) -> Option<char> {
    let u = c as u32;
    if u < 0x80 {
        let b = u as u8;
        return match b {
            b'A'..=b'Z' => Some((b + 32) as char),
            b'0'..=b'9' => Some('0'),
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => Some(' '),
            0..=0x1f | 0x7f => None,
            _ => Some(c),
        };
    }
    match u {
        0xC0..=0x24F => {
            let f = LATIN_C0_24F[(u - 0xC0) as usize];
            if f != 0 {
                return Some(f as char);
            }
        }
        0x1E00..=0x1EFF => {
            let f = LATIN_1E00_1EFF[(u - 0x1E00) as usize];
            if f != 0 {
                return Some(f as char);
            }
        }
        0xFF01..=0xFF5E => return char::from_u32(u - 0xFEE0).and_then(normalize_char),
        0x200B..=0x200F | 0x2060 | 0xFEFF | 0xAD => return None,
        _ => {}
    }
    if c.is_whitespace() {
        return Some(' ');
    }
    if c.is_numeric() {
        return Some('0');
    }
    Some(c.to_lowercase().next().unwrap_or(c))
}

#[inline]
fn is_cjk(u: u32) -> bool {
    matches!(u, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

#[inline]
fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        c.is_alphanumeric() && !is_cjk(c as u32)
    }
}

/// The longest prefix of `s` of at most `n` bytes that ends on a character boundary.
pub fn prefix(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut i = n;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

/// The longest suffix of `s` of at most `n` bytes that starts on a character boundary.
pub fn suffix(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// Calls `emit(kind, hash)` for every feature of one text segment.
#[inline]
fn segment(s: &str, kinds: u8, emit: &mut impl FnMut(u8, u64)) {
    let mut win = [0u32, 0, 0, 0, u32::from(b' ')];
    let mut filled = 1usize;
    let mut last_space = true;
    let mut w = WORD_SEED;
    let mut wlen = 0u32;
    let mut prev_word: Option<u64> = None;
    let want_words = kinds & (1 << KIND_WORD) != 0;
    let want_pairs = kinds & (1 << KIND_BIGRAM) != 0;
    for c in s.chars().chain(std::iter::once(' ')) {
        let Some(c) = normalize_char(c) else { continue };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        win.copy_within(1.., 0);
        win[4] = c as u32;
        if filled < 5 {
            filled += 1;
        }
        let mut h = 0u64;
        for n in 1..=filled {
            h = (h ^ u64::from(win[5 - n])).wrapping_mul(P);
            if kinds & (1 << n) != 0 {
                emit(n as u8, fmix(h ^ SEEDS[n]));
            }
        }
        if is_word_char(c) {
            w = (w ^ u64::from(c as u32)).wrapping_mul(P);
            wlen += 1;
        } else if wlen > 0 {
            let wh = fmix(w);
            if want_words && wlen <= MAX_WORD_CHARS {
                emit(KIND_WORD, fmix(wh ^ SEEDS[KIND_WORD as usize]));
            }
            if let Some(p) = prev_word {
                if want_pairs {
                    emit(
                        KIND_BIGRAM,
                        fmix(
                            p.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                                ^ wh
                                ^ SEEDS[KIND_BIGRAM as usize],
                        ),
                    );
                }
            }
            prev_word = Some(wh);
            w = WORD_SEED;
            wlen = 0;
        }
    }
}

/// Calls `emit(kind, hash)` for every feature of a request: the bounded system text and the
/// bounded last user turn (see the module docs). Deterministic, allocation-free.
pub fn for_each_feature(
    cfg: &FeatureConfig,
    system: &str,
    last_user: &str,
    mut emit: impl FnMut(u8, u64),
) {
    if !system.is_empty() && cfg.sys_bytes > 0 {
        segment(prefix(system, cfg.sys_bytes), cfg.kinds, &mut emit);
    }
    if last_user.len() <= cfg.head_bytes + cfg.tail_bytes {
        segment(last_user, cfg.kinds, &mut emit);
    } else {
        segment(prefix(last_user, cfg.head_bytes), cfg.kinds, &mut emit);
        if cfg.tail_bytes > 0 {
            segment(suffix(last_user, cfg.tail_bytes), cfg.kinds, &mut emit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(s: &str, kinds: u8) -> Vec<(u8, u64)> {
        let mut v = Vec::new();
        for_each_feature(
            &FeatureConfig {
                kinds,
                ..FeatureConfig::default()
            },
            "",
            s,
            |k, h| v.push((k, h)),
        );
        v
    }

    #[test]
    fn normalisation_folds_case_digits_accents_and_width() {
        assert_eq!(
            feats("Razonamiento 42", 0xfe),
            feats("razonamiento 17", 0xfe)
        );
        assert_eq!(feats("PENSÉE", 0xfe), feats("pensee", 0xfe));
        assert_eq!(feats("ＡＢＣ", 0xfe), feats("abc", 0xfe));
        assert_eq!(feats("a  \n\t b", 0xfe), feats("a b", 0xfe));
        assert_eq!(feats("Ход мыслей", 0xfe), feats("ход мыслей", 0xfe));
        assert_ne!(feats("思考过程", 0xfe), feats("推理过程", 0xfe));
    }

    #[test]
    fn counts_per_kind() {
        // " ab " → chars: ' ', a, b, ' ' (the leading pad is in the window, not emitted)
        let v = feats("ab", 1 << 1);
        assert_eq!(v.len(), 3); // a, b, ' '
        let v = feats("ab cd", (1 << KIND_WORD) | (1 << KIND_BIGRAM));
        assert_eq!(v.iter().filter(|f| f.0 == KIND_WORD).count(), 2);
        assert_eq!(v.iter().filter(|f| f.0 == KIND_BIGRAM).count(), 1);
        // CJK is not split into words
        let v = feats("思考过程", (1 << KIND_WORD) | (1 << 2));
        assert_eq!(v.iter().filter(|f| f.0 == KIND_WORD).count(), 0);
        assert_eq!(v.iter().filter(|f| f.0 == 2).count(), 5);
    }

    #[test]
    fn long_turns_read_head_and_tail_only() {
        let cfg = FeatureConfig::default();
        let long = format!(
            "{}{}{}",
            "x".repeat(1000),
            "y".repeat(5000),
            "z".repeat(1000)
        );
        let mut n = 0;
        for_each_feature(&cfg, "", &long, |_, _| n += 1);
        let mut m = 0;
        let short = format!("{}{}", "x".repeat(1000), "y".repeat(24));
        for_each_feature(&cfg, "", &short, |_, _| m += 1);
        assert!(n <= 2 * m, "{n} {m}");
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(suffix("hé", 1), "");
    }
}
