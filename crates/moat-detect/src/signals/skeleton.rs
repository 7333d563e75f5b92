//! Prompt skeletons: templates with varied slots.
//!
//! A prompt is reduced to two keys: the hash of its first [`EDGE_WORDS`] normalised words
//! and the hash of its last [`EDGE_WORDS`] (digits folded to `#`). Prompts built from one
//! template share a prefix or a suffix key even when the slot in the middle varies. Each
//! account keeps a bounded [`SkeletonTable`] (space-saving heavy hitters) of its keys, which
//! says whether a new prompt repeats a known skeleton ("templated") or is novel, and how
//! much of the traffic the top skeleton covers. Recurring keys are also shared across
//! accounts as prompt families (see `cluster`).

use crate::text::edge_word_hashes;

/// Words at each end of a prompt that make up its skeleton keys.
pub const EDGE_WORDS: usize = 6;

/// Informative words (three letters or more) an edge needs to count as a skeleton key:
/// an edge of numbers or punctuation ("5 4 3 2 1 0") says nothing about a template.
pub const MIN_INFORMATIVE: usize = 3;

/// Skeleton keys of a prompt: `(prefix, suffix)`; 0 means "no key" (empty or
/// uninformative edge).
pub fn skeleton_keys(text: &str) -> (u64, u64) {
    let e = edge_word_hashes(text, EDGE_WORDS);
    if e.words == 0 {
        return (0, 0);
    }
    let prefix = if e.head_informative >= MIN_INFORMATIVE.min(e.words) {
        e.head | 1
    } else {
        0
    };
    let suffix = if e.words <= EDGE_WORDS {
        prefix
    } else if e.tail_informative >= MIN_INFORMATIVE {
        (e.tail ^ 0x5bd1_e995_0000_0000) | 1
    } else {
        0
    };
    (prefix, suffix)
}

/// Number of slots of a [`SkeletonTable`].
pub const TABLE_SLOTS: usize = 16;

/// Bounded heavy-hitter table of skeleton keys (space-saving algorithm).
#[derive(Debug, Clone, Default)]
pub struct SkeletonTable {
    keys: [u64; TABLE_SLOTS],
    counts: [u32; TABLE_SLOTS],
    cursor: u8,
}

impl SkeletonTable {
    /// Count of `key` if tracked (0 otherwise).
    pub fn count(&self, key: u64) -> u32 {
        if key == 0 {
            return 0;
        }
        self.keys
            .iter()
            .position(|k| *k == key)
            .map_or(0, |i| self.counts[i])
    }

    /// Records one occurrence of `key`; returns the count before this one (0 when new).
    pub fn observe(&mut self, key: u64) -> u32 {
        if key == 0 {
            return 0;
        }
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            let before = self.counts[i];
            self.counts[i] += 1;
            return before;
        }
        // replace the least frequent slot; ties rotate through a cursor (deterministic)
        let start = usize::from(self.cursor) % TABLE_SLOTS;
        let mut min_i = start;
        for j in 1..TABLE_SLOTS {
            let i = (start + j) % TABLE_SLOTS;
            if self.counts[i] < self.counts[min_i] {
                min_i = i;
            }
        }
        self.cursor = ((min_i + 1) % TABLE_SLOTS) as u8;
        self.keys[min_i] = key;
        // space-saving would inherit min+1; we keep 1 so that churn never looks templated
        self.counts[min_i] = 1;
        0
    }

    /// The largest count in the table.
    pub fn top_count(&self) -> u32 {
        self.counts.iter().copied().max().unwrap_or(0)
    }
}
