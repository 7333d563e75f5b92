//! moat-detect: the extraction (distillation) detection engine.
//!
//! Pure: events in, decisions out. No I/O, no wall clock (time comes from each event's
//! timestamp), no threads, deterministic — the gateway (`moat serve`) and the offline
//! replay (`moat replay`) give the same decisions for the same traffic.
//!
//! ```
//! use moat_detect::{Api, DetectConfig, Engine, Event, Outcome};
//! let mut engine = Engine::new(DetectConfig::default());
//! let ev = Event {
//!     ts_ms: 1_770_000_000_000,
//!     account: "acct_1".into(),
//!     key: "key_1".into(),
//!     ip: "198.51.100.7".into(),
//!     user_agent: "OpenAI/Python 1.51.0".into(),
//!     api: Api::OpenAiChat,
//!     request: serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
//! };
//! let d = engine.decide(&ev);
//! assert_eq!(d.action.as_str(), "allow");
//! engine.settle("acct_1", &Outcome::new(200, Some("stop"), 5, 12));
//! ```
//!
//! Layout: [`features`] extracts per-request features (a pure function of the request,
//! read through the borrowed [`request_view::RequestView`], so replay computes them in
//! parallel and then calls [`Engine::decide_features`] in order); [`signals`] holds the
//! per-request detectors (reasoning elicitation, harvest shapes, grader prompts, prompt
//! skeletons, topics); [`evidence`] the bounded per-account counters; [`cadence`] the
//! arrival-rhythm statistics; [`principals`] the per-key/end-user split inside an account;
//! [`cluster`] the cross-account linking; [`policy`] the scoring and the action ladder;
//! [`external`] and [`linker`] what engines split over several processes tell each other. See
//! `docs/detection.md` for how each signal works and how it might be evaded.

#![warn(missing_docs)]

pub mod cadence;
pub mod cluster;
pub mod config;
pub mod decay;
mod engine;
pub mod event;
pub mod evidence;
pub mod external;
pub mod features;
pub mod linker;
pub mod policy;
pub mod principals;
pub mod request_view;
pub mod signals;
pub mod text;
pub mod weights;

pub use config::DetectConfig;
pub use engine::{Engine, Snapshot};
pub use event::{AccountMeta, AccountReport, Action, Api, Decision, Event, Outcome};
pub use external::{AccountSummary, ExternalView};
pub use features::RequestFeatures;
pub use linker::Linker;
pub use request_view::RequestView;
pub use weights::{Feature, Weights};
