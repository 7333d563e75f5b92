//! Arrival rhythm: machine cadence (flat around the clock) versus human/diurnal rhythm.
//!
//! Keeps a 24-bin hour-of-day histogram (UTC). Humans and apps serving humans follow the
//! sun (normalised entropy ≈ 0.8–0.9 of the maximum); nightly batch jobs are bursty (low
//! entropy); harvesting scripts that ride under the rate limits run flat 24/7 (entropy
//! ≈ 1.0). The signal only speaks once the account has been active for a day and a half.

/// Hour-of-day histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HourHistogram(pub [u32; 24]);

impl HourHistogram {
    /// Records an arrival at `ts_ms`.
    pub fn observe(&mut self, ts_ms: i64) {
        let h = ts_ms.div_euclid(3_600_000).rem_euclid(24) as usize;
        self.0[h] = self.0[h].saturating_add(1);
    }

    /// Adds another histogram.
    pub fn merge(&mut self, o: &HourHistogram) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&x| u64::from(x)).sum()
    }

    /// Shannon entropy normalised to [0, 1] (1 = perfectly flat over the 24 hours).
    pub fn flatness(&self) -> f64 {
        let n = self.total() as f64;
        if n == 0.0 {
            return 0.0;
        }
        let mut h = 0.0;
        for &c in &self.0 {
            if c > 0 {
                let p = f64::from(c) / n;
                h -= p * p.log2();
            }
        }
        h / 24f64.log2()
    }

    /// Share of the 24 hours with at least `min` arrivals.
    pub fn hours_covered(&self, min: u32) -> u32 {
        self.0.iter().filter(|&&c| c >= min).count() as u32
    }
}
