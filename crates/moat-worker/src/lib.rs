//! moat-worker: the detector workers behind `moat detect`.
//!
//! A worker owns a share of the account partitions (`partition % workers == index`), reads
//! the exchange-event stream from its first retained event (rebuilding its engine's state,
//! then following live), and runs the same pure [`moat_detect::Engine`] as `moat serve` and
//! `moat replay`: events are put back into arrival order by a [`reorder::Reorder`] buffer and
//! each is decided and settled exactly as replay does with a traffic line. What it concludes
//! about an account goes to the verdict bucket, which every gateway replica watches and
//! installs into its own inline engine ([`moat_detect::Engine::set_external`]); compact
//! account summaries go to the summary bucket, from which every worker runs the same
//! cross-account [`moat_detect::Linker`] for clusters that span workers.
//!
//! * [`reorder`]: bounded out-of-orderness buffer (pure).
//! * [`core`]: the worker's state machine — engine, linker, what to publish (pure).
//! * [`run`]: the I/O loop around it (NATS).

pub mod core;
pub mod reorder;
pub mod run;

pub use crate::core::DetectorCore;
pub use reorder::Reorder;
pub use run::{run, WorkerOptions};
