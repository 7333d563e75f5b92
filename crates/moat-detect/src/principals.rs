//! Principals inside an account: the API key, end-user id and user agent behind a
//! request. A reseller's account carries many end users, and a leaked key is used from
//! somewhere else; scoring the heaviest principals separately lets the engine restrict a
//! distiller without blocking the customer whose traffic hides it.
//!
//! Bounded: an account gets a table only once a second principal appears, and the table
//! keeps the [`SLOTS`] heaviest principals (space-saving; a replaced slot starts afresh).

use crate::evidence::Evidence;

/// Principals tracked per account.
pub const SLOTS: usize = 4;

/// Heavy-hitter table of an account's principals with their own evidence.
#[derive(Debug, Clone, Default)]
pub struct PrincipalTable {
    keys: [u64; SLOTS],
    counts: [u32; SLOTS],
    evidence: [Evidence; SLOTS],
}

impl PrincipalTable {
    /// A table whose first slot holds the account's only principal so far.
    pub fn new(first: u64, history: &Evidence) -> Self {
        let mut t = PrincipalTable::default();
        t.keys[0] = first;
        t.counts[0] = history.n;
        t.evidence[0] = history.clone();
        t
    }

    /// Slot of `key`, claiming the least used slot when it is new.
    pub fn slot(&mut self, key: u64) -> usize {
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            self.counts[i] = self.counts[i].saturating_add(1);
            return i;
        }
        let mut min_i = 0;
        for i in 1..SLOTS {
            if self.counts[i] < self.counts[min_i] {
                min_i = i;
            }
        }
        self.keys[min_i] = key;
        // space-saving: the newcomer inherits the evicted count, so two alternating
        // newcomers cannot keep evicting each other's fresh slot
        self.counts[min_i] = self.counts[min_i].saturating_add(1);
        self.evidence[min_i] = Evidence::default();
        min_i
    }

    /// Evidence of a slot.
    pub fn evidence(&self, slot: usize) -> &Evidence {
        &self.evidence[slot]
    }

    /// Mutable evidence of a slot.
    pub fn evidence_mut(&mut self, slot: usize) -> &mut Evidence {
        &mut self.evidence[slot]
    }

    /// Slots in use.
    pub fn used(&self) -> usize {
        self.keys.iter().filter(|k| **k != 0).count()
    }
}
