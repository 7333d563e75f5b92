//! Forwarding to the upstream: the request pipeline, the SSE relay and usage accounting.

pub mod answer;
pub mod forward;
pub mod models;
pub mod stream;
pub mod strict;
pub mod usage;
