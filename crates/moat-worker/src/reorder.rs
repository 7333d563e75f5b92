//! Putting events back into arrival order.
//!
//! Gateways publish an exchange when it completes, so the stream is ordered by completion,
//! not arrival; `moat replay` processes a log in arrival order. [`Reorder`] holds events until
//! the *watermark* passes their arrival time and releases them in `(arrival time, replica,
//! replica sequence)` order — the order of the merged audit log. The watermark is the newest
//! arrival time seen minus `hold` (bounded out-of-orderness), or, once the worker has caught
//! up with the stream and it is idle, the wall clock minus `hold`. An event that arrives after
//! the watermark passed it (an exchange that took longer than `hold` to complete) is released
//! at once, out of order, and counted as late.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use moat_bus::ExchangeEvent;

struct Held(ExchangeEvent);

impl Held {
    fn key(&self) -> (i64, &str, u64) {
        (self.0.ts_us, self.0.replica.as_str(), self.0.seq)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The reorder buffer. See the module docs.
pub struct Reorder {
    hold_us: i64,
    heap: BinaryHeap<Reverse<Held>>,
    newest_us: i64,
    released_us: i64,
    late: u64,
}

impl std::fmt::Debug for Reorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reorder")
            .field("held", &self.heap.len())
            .field("late", &self.late)
            .finish()
    }
}

/// What [`Reorder::push`] did with an event.
#[derive(Debug)]
pub enum Pushed {
    /// Held until the watermark passes it.
    Held,
    /// Older than what was already released: process it now (out of order). Boxed: events
    /// are large and late ones rare.
    Late(Box<ExchangeEvent>),
}

impl Reorder {
    /// A buffer that tolerates events completing up to `hold_us` µs out of arrival order.
    pub fn new(hold_us: i64) -> Reorder {
        Reorder {
            hold_us: hold_us.max(0),
            heap: BinaryHeap::new(),
            newest_us: i64::MIN,
            released_us: i64::MIN,
            late: 0,
        }
    }

    /// Takes an event.
    pub fn push(&mut self, ev: ExchangeEvent) -> Pushed {
        if ev.ts_us < self.released_us {
            self.late += 1;
            return Pushed::Late(Box::new(ev));
        }
        self.newest_us = self.newest_us.max(ev.ts_us);
        self.heap.push(Reverse(Held(ev)));
        Pushed::Held
    }

    /// The watermark: events that arrived at or before it can be released. `idle_now_us`:
    /// the wall clock when the worker has caught up and nothing is pending, else `None`.
    pub fn watermark(&self, idle_now_us: Option<i64>) -> i64 {
        let from_events = self.newest_us.saturating_sub(self.hold_us);
        match idle_now_us {
            Some(now) => from_events.max(now.saturating_sub(self.hold_us)),
            None => from_events,
        }
    }

    /// The next event at or before `watermark_us`, in order.
    pub fn pop_ready(&mut self, watermark_us: i64) -> Option<ExchangeEvent> {
        if self.heap.peek()?.0 .0.ts_us > watermark_us {
            return None;
        }
        let Reverse(Held(ev)) = self.heap.pop()?;
        self.released_us = self.released_us.max(ev.ts_us);
        Some(ev)
    }

    /// Releases everything held, in order (shutdown, end of a finite feed).
    pub fn drain(&mut self) -> Vec<ExchangeEvent> {
        let mut out = Vec::with_capacity(self.heap.len());
        while let Some(ev) = self.pop_ready(i64::MAX) {
            out.push(ev);
        }
        out
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Events that came too late to be put in order.
    pub fn late(&self) -> u64 {
        self.late
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_bus::{EventMeta, EventOutcome};

    fn ev(replica: &str, seq: u64, ts_us: i64) -> ExchangeEvent {
        ExchangeEvent {
            replica: replica.into(),
            seq,
            ts_us,
            account: "a".into(),
            meta: EventMeta::default(),
            features: Default::default(),
            outcome: EventOutcome::default(),
        }
    }

    fn ready(r: &mut Reorder, wm: i64) -> Vec<i64> {
        std::iter::from_fn(|| r.pop_ready(wm))
            .map(|e| e.ts_us)
            .collect()
    }

    #[test]
    fn releases_in_arrival_order_within_the_hold() {
        let mut r = Reorder::new(100);
        // completion order: 50, 10 (slow), 120, 30 (slow)
        for (s, t) in [(1, 50), (2, 10), (3, 120), (4, 30)] {
            assert!(matches!(r.push(ev("a", s, t)), Pushed::Held));
        }
        // newest 120 - hold 100 = 20
        let wm = r.watermark(None);
        assert_eq!(ready(&mut r, wm), vec![10]);
        assert!(matches!(r.push(ev("b", 1, 200)), Pushed::Held));
        let wm = r.watermark(None);
        assert_eq!(ready(&mut r, wm), vec![30, 50]);
        assert_eq!(
            r.drain().iter().map(|e| e.ts_us).collect::<Vec<_>>(),
            vec![120, 200]
        );
        assert_eq!(r.late(), 0);
    }

    #[test]
    fn too_late_events_pass_through_and_are_counted() {
        let mut r = Reorder::new(10);
        r.push(ev("a", 1, 100));
        r.push(ev("a", 2, 200));
        let wm = r.watermark(None);
        assert_eq!(ready(&mut r, wm), vec![100]);
        match r.push(ev("b", 1, 50)) {
            Pushed::Late(e) => assert_eq!(e.ts_us, 50),
            Pushed::Held => panic!("should be late"),
        }
        assert_eq!(r.late(), 1);
    }

    #[test]
    fn ties_break_by_replica_then_sequence() {
        let mut r = Reorder::new(0);
        r.push(ev("b", 1, 5));
        r.push(ev("a", 2, 5));
        r.push(ev("a", 1, 5));
        let order: Vec<(String, u64)> = r.drain().into_iter().map(|e| (e.replica, e.seq)).collect();
        assert_eq!(
            order,
            vec![("a".into(), 1), ("a".into(), 2), ("b".into(), 1)]
        );
    }

    #[test]
    fn an_idle_caught_up_worker_releases_by_the_clock() {
        let mut r = Reorder::new(1_000);
        r.push(ev("a", 1, 10_000));
        let wm = r.watermark(None);
        assert!(ready(&mut r, wm).is_empty());
        let wm = r.watermark(Some(11_500));
        assert_eq!(ready(&mut r, wm), vec![10_000]);
    }
}
