//! Streaming marking.

use crate::engine::Engine;
use crate::marker::{KeyedChoice, MarkStats};

/// Marks a stream of text chunks (e.g. SSE deltas) for one response.
///
/// Chunks may split anywhere a `&str` can be split (mid-word, mid-line, between the two
/// characters of `\r\n`). The concatenated output of all [`push`](Self::push) calls followed by
/// [`finish`](Self::finish) is byte-identical to [`Marker::mark`](crate::Marker::mark) on the
/// concatenated input.
///
/// Hold-back: a word is released once it is complete and, if it belongs to a synonym set (or
/// can start a two-word member such as `do not`), once the next one or two words are known.
/// Whitespace is released when the next non-space character arrives; line starts are held
/// until the first non-space character (to recognise code fences). Whitespace-delimited runs
/// are held until complete, up to 256 bytes (longer runs are passed through as opaque).
/// Code lines inside fences are passed through immediately.
pub struct StreamMarker {
    engine: Engine<KeyedChoice>,
    finished: bool,
}

impl StreamMarker {
    pub(crate) fn new(engine: Engine<KeyedChoice>) -> Self {
        Self {
            engine,
            finished: false,
        }
    }

    /// Feeds a chunk; returns the output that is now final (possibly empty).
    pub fn push(&mut self, chunk: &str) -> String {
        let mut out = String::with_capacity(chunk.len() + 16);
        self.push_into(chunk, &mut out);
        out
    }

    /// Like [`push`](Self::push) but appends to a caller buffer (no allocation).
    pub fn push_into(&mut self, chunk: &str, out: &mut String) {
        assert!(!self.finished, "StreamMarker::push after finish");
        self.engine.push(chunk, out);
    }

    /// Flushes everything still held back. Further pushes panic.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if !self.finished {
            self.engine.finish(&mut out);
            self.finished = true;
        }
        out
    }

    /// Bytes received but not yet released.
    pub fn held_back(&self) -> usize {
        self.engine.held_back()
    }

    /// Statistics so far.
    pub fn stats(&self) -> MarkStats {
        self.engine.stats
    }
}
