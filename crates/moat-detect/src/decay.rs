//! Exponentially decayed counters driven by event time.

/// A count that halves every `half_life_ms` of event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decayed {
    value: f32,
    ts_ms: i64,
}

impl Decayed {
    /// Value at `now_ms` (never increases the stored timestamp).
    pub fn value_at(&self, now_ms: i64, half_life_ms: f64) -> f64 {
        let dt = (now_ms - self.ts_ms).max(0) as f64;
        f64::from(self.value) * (-dt * std::f64::consts::LN_2 / half_life_ms).exp()
    }

    /// Decays to `now_ms` and adds `x`.
    pub fn add(&mut self, now_ms: i64, x: f64, half_life_ms: f64) {
        let v = if now_ms >= self.ts_ms {
            let v = self.value_at(now_ms, half_life_ms) + x;
            self.ts_ms = now_ms;
            v
        } else {
            // out-of-order event: add without moving the clock back
            f64::from(self.value) + x
        };
        self.value = v as f32;
    }

    /// Difference of two decayed counters (aligned to the later timestamp, floored at 0).
    pub fn subtract(&mut self, other: &Decayed, half_life_ms: f64) {
        let t = self.ts_ms.max(other.ts_ms);
        let v = self.value_at(t, half_life_ms) - other.value_at(t, half_life_ms);
        self.value = v.max(0.0) as f32;
        self.ts_ms = t;
    }

    /// Sum of two decayed counters (aligned to the later timestamp).
    pub fn merge(&mut self, other: &Decayed, half_life_ms: f64) {
        let t = self.ts_ms.max(other.ts_ms);
        let v = self.value_at(t, half_life_ms) + other.value_at(t, half_life_ms);
        self.value = v as f32;
        self.ts_ms = t;
    }
}
