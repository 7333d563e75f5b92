//! Per-request signal extractors. Each is a pure function of the request body.

pub mod grader;
pub mod lexicon;
pub mod reasoning;
pub mod shape;
pub mod skeleton;
pub mod topics;
