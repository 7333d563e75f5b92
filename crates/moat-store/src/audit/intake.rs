//! The queue between the request path and the audit writer.
//!
//! A locked `Vec` rather than a channel: a channel wakes its receiver for every record, which
//! at 10,000 requests/s is 10,000 thread wake-ups a second for a writer that only acts on whole
//! batches. Here the writer is woken only when it has something to do: the first record into
//! an empty queue (it then arms the batch's flush deadline) and the record that fills a batch.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::AuditRecord;

/// The shared queue (see the module docs).
#[derive(Debug)]
pub(crate) struct Intake {
    state: Mutex<State>,
    ready: Notify,
    batch_size: usize,
}

#[derive(Debug, Default)]
struct State {
    records: Vec<AuditRecord>,
    closed: bool,
}

impl Intake {
    /// An open, empty queue whose writer takes batches of `batch_size` (≥ 1).
    pub(crate) fn new(batch_size: usize) -> Arc<Self> {
        Arc::new(Intake {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            batch_size: batch_size.max(1),
        })
    }

    /// Appends `rec`; false (and `rec` is dropped) when the queue is closed.
    #[must_use]
    pub(crate) fn push(&self, rec: AuditRecord) -> bool {
        let len = {
            let mut s = self.state.lock();
            if s.closed {
                return false;
            }
            s.records.push(rec);
            s.records.len()
        };
        if len == 1 || len == self.batch_size {
            self.ready.notify_one();
        }
        true
    }

    /// Records waiting.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().records.len()
    }

    /// Whether the queue is closed (no record is accepted any more).
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Moves the oldest records, up to `max`, onto the end of `into`; returns how many.
    pub(crate) fn take(&self, into: &mut Vec<AuditRecord>, max: usize) -> usize {
        let mut s = self.state.lock();
        let n = s.records.len().min(max);
        if n == s.records.len() && into.is_empty() {
            std::mem::swap(&mut s.records, into);
        } else {
            into.extend(s.records.drain(..n));
        }
        n
    }

    /// Resolves after a [`push`](Self::push) that the writer must see (or a close); may also
    /// resolve early, so callers re-check the queue.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Refuses further records and wakes the writer; those already queued stay to be taken.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_one();
    }
}

/// The request path's end of the queue: closes it when the last clone is dropped, so that a
/// writer whose handles are all gone finishes (as a channel's receiver would).
#[derive(Debug)]
pub(crate) struct Sender(pub(crate) Arc<Intake>);

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u16) -> AuditRecord {
        AuditRecord {
            status: i,
            ..AuditRecord::default()
        }
    }

    #[tokio::test]
    async fn wakes_on_the_first_record_and_on_a_full_batch_only() {
        let q = Intake::new(3);
        assert!(q.push(rec(1)));
        // The first record left a wake-up.
        tokio::time::timeout(std::time::Duration::from_secs(1), q.ready())
            .await
            .expect("woken by the first record");
        assert!(q.push(rec(2)));
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(20), q.ready()).await;
        assert!(
            quiet.is_err(),
            "no wake-up for a record in the middle of a batch"
        );
        assert!(q.push(rec(3)));
        tokio::time::timeout(std::time::Duration::from_secs(1), q.ready())
            .await
            .expect("woken by the record that fills the batch");
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got, 2), 2);
        assert_eq!(q.take(&mut got, 2), 1);
        let order: Vec<u16> = got.iter().map(|r| r.status).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn closing_refuses_new_records_and_keeps_queued_ones() {
        let q = Intake::new(8);
        let sender = Sender(q.clone());
        assert!(q.push(rec(1)));
        drop(sender);
        assert!(q.is_closed());
        assert!(!q.push(rec(2)));
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got, 8), 1);
    }
}
