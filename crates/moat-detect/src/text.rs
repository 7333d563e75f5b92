//! Pulling the text parts out of OpenAI / Anthropic request bodies, and word-level hashing.

use xxhash_rust::xxh3::xxh3_64;

use crate::event::Api;
use crate::request_view::{ContentView, RequestView};

/// The parts of a request body that the signals look at.
#[derive(Debug, Default, Clone)]
pub struct RequestText {
    /// Concatenated system instructions (system messages or Anthropic `system`).
    pub system: String,
    /// Text of the last user turn (or the completions `prompt`).
    pub last_user: String,
    /// Number of user turns in the request.
    pub user_turns: u32,
    /// Number of earlier assistant turns (answers the client sends back as context).
    pub assistant_turns: u32,
    /// Number of tool results sent back (agent loops).
    pub tool_results: u32,
}

fn push_texts(out: &mut String, c: &ContentView<'_>) {
    for t in &c.texts {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(t);
    }
}

/// Extracts system text, the last user turn and the turn structure of a request body.
pub fn extract_text(api: Api, req: &RequestView<'_>) -> RequestText {
    let mut rt = RequestText::default();
    if api == Api::OpenAiCompletions {
        if let Some(p) = &req.prompt {
            if let Some(t) = p.texts.first() {
                rt.last_user.push_str(t);
            }
        }
        rt.user_turns = 1;
        return rt;
    }
    if let Some(sys) = &req.system {
        push_texts(&mut rt.system, sys);
    }
    if let Some(msgs) = &req.messages {
        let mut last_user: Option<&ContentView<'_>> = None;
        for m in msgs {
            match m.role.as_ref() {
                "system" | "developer" => {
                    if let Some(c) = &m.content {
                        // apps often repeat the same system prompt; keep one copy
                        for t in &c.texts {
                            if !rt.system.contains(t.as_ref()) {
                                if !rt.system.is_empty() {
                                    rt.system.push('\n');
                                }
                                rt.system.push_str(t);
                            }
                        }
                    }
                }
                "user" => match &m.content {
                    Some(c) if c.tool_result => rt.tool_results += 1,
                    c => {
                        rt.user_turns += 1;
                        last_user = c.as_ref();
                    }
                },
                "assistant" => rt.assistant_turns += 1,
                "tool" | "function" => rt.tool_results += 1,
                _ => {}
            }
        }
        if let Some(c) = last_user {
            push_texts(&mut rt.last_user, c);
        }
    }
    rt
}

/// Lowercases ASCII and keeps other characters; used before phrase matching.
pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// Hash of a string (stable across runs and platforms).
pub fn hash_str(s: &str) -> u64 {
    xxh3_64(s.as_bytes())
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

fn hash_word(w: &str) -> u64 {
    // lowercase, digits folded to '#', hashed without allocating
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in w.chars() {
        let c = if c.is_numeric() { '#' } else { c };
        for l in c.to_lowercase() {
            h = (h ^ u64::from(u32::from(l))).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn combine(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn is_informative(w: &str) -> bool {
    w.chars().filter(|c| c.is_alphabetic()).count() >= 3 || !w.is_ascii()
}

/// Edge-word hashes of a text (see [`edge_word_hashes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeHashes {
    /// Hash of the first `k` words.
    pub head: u64,
    /// Hash of the last `k` words.
    pub tail: u64,
    /// Word count, capped at `2k + 1`.
    pub words: usize,
    /// Informative words (three letters or more) among the first `k`.
    pub head_informative: usize,
    /// Informative words among the last `k`.
    pub tail_informative: usize,
}

/// Hashes of the first `k` normalised words (alphanumeric runs, lowercased, digits
/// folded to `#`) and of the last `k`, with word counts.
pub fn edge_word_hashes(s: &str, k: usize) -> EdgeHashes {
    let mut e = EdgeHashes {
        head: 0x9e37_79b9_7f4a_7c15,
        ..EdgeHashes::default()
    };
    for w in s
        .split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
    {
        if e.words < k {
            e.head = combine(e.head, hash_word(w));
            e.head_informative += usize::from(is_informative(w));
        }
        e.words += 1;
        if e.words > 2 * k {
            break;
        }
    }
    let mut tail_words: Vec<&str> = s
        .rsplit(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
        .take(k)
        .collect();
    tail_words.reverse();
    e.tail_informative = tail_words.iter().filter(|w| is_informative(w)).count();
    e.tail = tail_words
        .into_iter()
        .map(hash_word)
        .fold(0x9e37_79b9_7f4a_7c15u64, combine);
    e
}

/// The /24 (IPv4) or /48 (IPv6) network of an address, hashed; 0 when unparseable.
pub fn subnet_key(ip: &str) -> u64 {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            0x4_0000_0000 | (u64::from(o[0]) << 16) | (u64::from(o[1]) << 8) | u64::from(o[2])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            0x6_0000_0000_0000 ^ hash_str(&format!("{:x}:{:x}:{:x}", s[0], s[1], s[2]))
        }
        Err(_) => 0,
    }
}

/// Hash of the full address (0 when empty).
pub fn ip_key(ip: &str) -> u64 {
    if ip.is_empty() {
        0
    } else {
        hash_str(ip) | 1
    }
}
