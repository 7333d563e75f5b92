//! The model's tokenizer, built from the GGUF metadata (`tokenizer.ggml.*`).
//!
//! SmolLM2 (and most llama.cpp "gpt2"-model GGUFs) embed a byte-level BPE: the vocabulary in
//! `tokenizer.ggml.tokens`, the merges in `tokenizer.ggml.merges`, the token kinds in
//! `tokenizer.ggml.token_type` (3 = control/special). Encoding uses the `tokenizers` crate with
//! the SmolLM pre-tokenizer (individual digits, then GPT-2 byte-level regex split, no prefix
//! space). Decoding is done here from a per-token byte table, so streaming can emit exactly the
//! complete UTF-8 characters produced so far (see [`Utf8Stream`]).

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

/// GGUF token type of control (special) tokens.
const TOKEN_TYPE_CONTROL: i32 = 3;

/// A byte-level BPE tokenizer read from GGUF metadata.
pub struct GgufTokenizer {
    inner: Tokenizer,
    /// Token id -> the bytes it stands for (empty for control tokens).
    bytes: Vec<Vec<u8>>,
    /// Token id -> its vocabulary string.
    tokens: Vec<String>,
    special: Vec<bool>,
    eos: u32,
    bos: Option<u32>,
}

fn md<'a>(c: &'a Content, key: &str) -> Result<&'a Value> {
    c.metadata
        .get(key)
        .with_context(|| format!("GGUF metadata lacks {key}"))
}

/// GPT-2's reversible byte <-> printable-char map, inverted: char -> byte.
fn unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0u32..=255 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
        let c = if printable {
            char::from_u32(b).expect("latin-1")
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("valid char")
        };
        map.insert(c, b as u8);
    }
    map
}

impl GgufTokenizer {
    /// Builds the tokenizer from a parsed GGUF file's metadata.
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let model = md(content, "tokenizer.ggml.model")?.to_string()?;
        if model != "gpt2" {
            bail!("unsupported GGUF tokenizer model {model:?} (only byte-level BPE \"gpt2\")");
        }
        let tokens: Vec<String> = md(content, "tokenizer.ggml.tokens")?
            .to_vec()?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<candle_core::Result<_>>()?;
        let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()?
                .iter()
                .map(|v| v.to_i32())
                .collect::<candle_core::Result<_>>()?,
            None => vec![1; tokens.len()],
        };
        let merges: Vec<(String, String)> = md(content, "tokenizer.ggml.merges")?
            .to_vec()?
            .iter()
            .map(|v| {
                let s = v.to_string()?;
                let (a, b) = s
                    .split_once(' ')
                    .ok_or_else(|| anyhow!("bad merge {s:?}"))?;
                Ok((a.to_string(), b.to_string()))
            })
            .collect::<Result<_>>()?;
        let eos = md(content, "tokenizer.ggml.eos_token_id")?.to_u32()?;
        let bos = content
            .metadata
            .get("tokenizer.ggml.bos_token_id")
            .and_then(|v| v.to_u32().ok());

        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| anyhow!("building BPE: {e}"))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let special: Vec<bool> = (0..tokens.len())
            .map(|i| types.get(i).copied() == Some(TOKEN_TYPE_CONTROL))
            .collect();
        let added: Vec<AddedToken> = tokens
            .iter()
            .zip(&special)
            .filter(|(_, s)| **s)
            .map(|(t, _)| AddedToken::from(t.clone(), true))
            .collect();
        inner.add_special_tokens(&added);

        let inv = unicode_to_byte();
        let bytes = tokens
            .iter()
            .zip(&special)
            .map(|(t, &s)| {
                if s {
                    Vec::new()
                } else if t.chars().all(|c| inv.contains_key(&c)) {
                    t.chars().map(|c| inv[&c]).collect()
                } else {
                    t.as_bytes().to_vec()
                }
            })
            .collect();
        Ok(Self {
            inner,
            bytes,
            tokens,
            special,
            eos,
            bos,
        })
    }

    /// Encodes `text` to token ids. Special-token strings in `text` (e.g. `<|im_start|>`) are
    /// recognised as the special tokens; no BOS/EOS is added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids to text, skipping special tokens; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&i| self.token_bytes(i).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The raw bytes of one token (empty for special tokens and unknown ids).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The vocabulary string of a token (byte-level form, e.g. `Ġthe`).
    pub fn token_str(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a vocabulary string.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Whether `id` is a control (special) token.
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// The end-of-sequence id from the metadata.
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// The beginning-of-sequence id from the metadata, if any.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
}

/// Incremental UTF-8 assembly of byte-level tokens: a token may end in the middle of a
/// multi-byte character, so bytes are buffered until they form complete characters.
#[derive(Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Appends bytes and returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("valid"));
                    match e.error_len() {
                        // Incomplete sequence at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Invalid bytes: replace and go on.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + n);
                        }
                    }
                }
            }
        }
    }

    /// Flushes what is left at the end of generation (lossily).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_splits_multibyte() {
        let mut s = Utf8Stream::default();
        let euro = "€".as_bytes();
        assert_eq!(s.push(b"a"), "a");
        assert_eq!(s.push(&euro[..1]), "");
        assert_eq!(s.push(&euro[1..2]), "");
        assert_eq!(s.push(&[euro[2], b'b']), "€b");
        assert_eq!(s.push(&[0xff, b'c']), "\u{fffd}c");
        assert_eq!(s.push(&euro[..2]), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }

    #[test]
    fn byte_map_is_a_bijection() {
        let m = unicode_to_byte();
        assert_eq!(m.len(), 256);
        assert_eq!(m[&'Ġ'], b' ');
        assert_eq!(m[&'Ċ'], b'\n');
        assert_eq!(m[&'a'], b'a');
    }
}
