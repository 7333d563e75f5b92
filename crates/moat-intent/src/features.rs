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

/// One xor-shift and one multiply: enough to spread every input bit into the high bits that
/// select the bucket (n-gram keys are already distinct per order through their seeds).
#[inline]
fn mix(h: u64) -> u64 {
    (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
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
        // fast paths for the common scripts (same results as the general path below)
        0x0410..=0x042F => return char::from_u32(u + 0x20),
        0x0400..=0x040F => return char::from_u32(u + 0x50),
        0x0430..=0x045F => return Some(c),
        0x0660..=0x0669 | 0x06F0..=0x06F9 | 0x0966..=0x096F => return Some('0'),
        0x0620..=0x064A => return Some(c),
        0x3000 => return Some(' '),
        0x3001..=0x303F | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3 => {
            return Some(c)
        }
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
    let u = c as u32;
    if u < 0x80 {
        return c.is_ascii_alphanumeric();
    }
    match u {
        0x0430..=0x045F | 0x0620..=0x064A | 0xAC00..=0xD7A3 => true,
        0x3000..=0x303F => false,
        _ => !is_cjk(u) && c.is_alphanumeric(),
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

const CP_BITS: u32 = 21;

/// Low `21·n` bits of the window: the last `n` code points.
const GRAM_MASK: [u128; 6] = [
    0,
    (1u128 << CP_BITS) - 1,
    (1u128 << (2 * CP_BITS)) - 1,
    (1u128 << (3 * CP_BITS)) - 1,
    (1u128 << (4 * CP_BITS)) - 1,
    (1u128 << (5 * CP_BITS)) - 1,
];

/// Per-segment state of the extractor.
struct Seg {
    /// The last five normalised code points, 21 bits each, most recent in the low bits.
    win: u128,
    filled: usize,
    last_space: bool,
    w: u64,
    wlen: u32,
    prev_word: Option<u64>,
}

/// Calls `emit(kind, hash)` for every feature of one text segment.
#[inline]
fn segment(s: &str, kinds: u8, emit: &mut impl FnMut(u8, u64)) {
    let mut orders = [0usize; 5];
    let mut n_orders = 0;
    for n in 1..=5 {
        if kinds & (1 << n) != 0 {
            orders[n_orders] = n;
            n_orders += 1;
        }
    }
    let orders = &orders[..n_orders];
    let want_words = kinds & (1 << KIND_WORD) != 0;
    let want_pairs = kinds & (1 << KIND_BIGRAM) != 0;
    let mut st = Seg {
        win: u128::from(b' '),
        filled: 1,
        last_space: true,
        w: WORD_SEED,
        wlen: 0,
        prev_word: None,
    };
    let mut step = |st: &mut Seg, c: char| {
        let Some(c) = normalize_char(c) else { return };
        if c == ' ' {
            if st.last_space {
                return;
            }
            st.last_space = true;
        } else {
            st.last_space = false;
        }
        st.win = (st.win << CP_BITS) | u128::from(c as u32);
        if st.filled < 5 {
            st.filled += 1;
        }
        for &n in orders {
            if n > st.filled {
                break;
            }
            let key = st.win & GRAM_MASK[n];
            let lo = key as u64;
            let hi = (key >> 64) as u64;
            emit(n as u8, mix(lo ^ hi.wrapping_mul(P) ^ SEEDS[n]));
        }
        if is_word_char(c) {
            st.w = (st.w ^ u64::from(c as u32)).wrapping_mul(P);
            st.wlen += 1;
        } else if st.wlen > 0 {
            let wh = fmix(st.w);
            if want_words && st.wlen <= MAX_WORD_CHARS {
                emit(KIND_WORD, fmix(wh ^ SEEDS[KIND_WORD as usize]));
            }
            if let Some(p) = st.prev_word {
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
            st.prev_word = Some(wh);
            st.w = WORD_SEED;
            st.wlen = 0;
        }
    };
    if s.is_ascii() {
        for &b in s.as_bytes() {
            step(&mut st, char::from(b));
        }
    } else {
        for c in s.chars() {
            step(&mut st, c);
        }
    }
    step(&mut st, ' ');
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
