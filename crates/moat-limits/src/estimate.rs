//! Request-size based token estimation.

/// Estimate the prompt tokens of a request body of `body_len_bytes` bytes.
///
/// Uses `ceil(bytes / 4)`: BPE tokenizers average about four bytes of English
/// text per token, and the JSON envelope (keys, quotes, role names) makes the
/// body larger than the text it carries, so this normally *over*-estimates,
/// which is the safe direction for a reservation (the difference is refunded at
/// settle). Dense non-Latin scripts can exceed one token per four bytes; the
/// settle step then charges the extra.
pub fn estimate_prompt_tokens(body_len_bytes: usize) -> u64 {
    (body_len_bytes as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up() {
        assert_eq!(estimate_prompt_tokens(0), 0);
        assert_eq!(estimate_prompt_tokens(1), 1);
        assert_eq!(estimate_prompt_tokens(4), 1);
        assert_eq!(estimate_prompt_tokens(5), 2);
        assert_eq!(estimate_prompt_tokens(4_000), 1_000);
    }
}
