//! Server-sent-events relay: splits the upstream byte stream into events,
//! reads usage from them, drops the usage-only chunk the client did not ask
//! for, and forwards every other event as soon as it is complete. Nothing is
//! buffered beyond one incomplete event.

use std::{borrow::Cow, time::Duration};

use bytes::{Bytes, BytesMut};
use futures::{stream::BoxStream, Stream, StreamExt};

use crate::api::Api;
use crate::enforce::reasoning_strip::StreamStripper;
use crate::error::{Flavor, GatewayError};
use crate::exchange::Exchange;
use crate::proxy::usage::{read_stream_event, EventKind, Outcome};
use crate::watermark_json::StreamMarking;

/// Incremental splitter of an SSE byte stream into complete events.
#[derive(Debug, Default)]
pub struct SseSplitter {
    buf: BytesMut,
    /// Bytes of `buf` already scanned without finding a boundary.
    scanned: usize,
}

impl SseSplitter {
    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Next complete event, including its terminating blank line.
    pub fn next_event(&mut self) -> Option<Bytes> {
        let start = self.scanned.saturating_sub(2);
        let hay = &self.buf[start..];
        let mut from = 0;
        while let Some(i) = memchr::memchr(b'\n', &hay[from..]) {
            let nl = from + i;
            let rest = &hay[nl + 1..];
            let end = if rest.first() == Some(&b'\n') {
                Some(nl + 2)
            } else if rest.starts_with(b"\r\n") {
                Some(nl + 3)
            } else if rest.is_empty() || (rest == b"\r") {
                // Need more bytes to decide.
                break;
            } else {
                None
            };
            if let Some(end) = end {
                self.scanned = 0;
                return Some(self.buf.split_to(start + end).freeze());
            }
            from = nl + 1;
        }
        self.scanned = self.buf.len();
        None
    }

    /// Whatever is left (an event without its final blank line).
    pub fn take_rest(&mut self) -> Bytes {
        self.scanned = 0;
        self.buf.split().freeze()
    }

    /// Bytes waiting for the end of their event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// The `data` payload of one event (several `data:` lines are joined with `\n`).
pub fn event_data(event: &[u8]) -> Option<Cow<'_, [u8]>> {
    let mut found: Option<Cow<'_, [u8]>> = None;
    for line in event.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(v) = line.strip_prefix(b"data:") {
            let v = v.strip_prefix(b" ").unwrap_or(v);
            found = Some(match found {
                None => Cow::Borrowed(v),
                Some(prev) => {
                    let mut joined = prev.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(v);
                    Cow::Owned(joined)
                }
            });
        }
    }
    found
}

/// Decides, event by event, what to forward.
#[derive(Debug)]
pub struct EventFilter {
    api: Api,
    /// Drop OpenAI's usage-only chunk (the gateway asked for it, the client did not).
    strip_usage: bool,
    cap: usize,
    /// Terminator (`[DONE]` / `message_stop`) seen.
    pub done: bool,
    /// Error event seen.
    pub error: bool,
    /// An event whose `data` is not JSON seen (it is not forwarded; the stream is broken).
    pub invalid: bool,
}

impl EventFilter {
    /// A filter for `api`; `cap` bounds the kept response text.
    pub fn new(api: Api, strip_usage: bool, cap: usize) -> Self {
        Self {
            api,
            strip_usage,
            cap,
            done: false,
            error: false,
            invalid: false,
        }
    }

    /// Reads the event into `out`; returns whether to forward it.
    pub fn keep(&mut self, event: &[u8], out: &mut Outcome) -> bool {
        let Some(data) = event_data(event) else {
            return true; // comments, retry: lines, keep-alives
        };
        match read_stream_event(self.api, &data, out, self.cap) {
            EventKind::Forward => true,
            EventKind::UsageOnly => !self.strip_usage,
            EventKind::Done => {
                self.done = true;
                true
            }
            EventKind::Error => {
                self.error = true;
                true
            }
            EventKind::Invalid => {
                self.invalid = true;
                false
            }
        }
    }
}

/// An SSE error event in the caller's format, to end a stream that failed midway.
pub fn error_event(flavor: Flavor, err: &GatewayError) -> Bytes {
    let body = err.body(flavor);
    let frame = match flavor {
        Flavor::Anthropic => format!("event: error\ndata: {body}\n\n"),
        Flavor::OpenAi => format!("data: {body}\n\n"),
    };
    Bytes::from(frame)
}

/// The relay's work on the bytes, without the exchange or the clock: split the upstream's
/// stream into events, read usage from them, drop what is not forwarded, watermark, strip
/// reasoning. [`relay`] drives it; so does the `stream_relay` fuzz target.
pub struct RelayCore {
    splitter: SseSplitter,
    filter: EventFilter,
    reasoning: Option<StreamStripper>,
    marking: Option<StreamMarking>,
}

/// How a relayed stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// With its terminator (`[DONE]` / `message_stop`), or an error event of the upstream's own
    /// (`upstream_error`).
    Completed {
        /// The upstream sent an error event.
        upstream_error: bool,
    },
    /// Broken off: the reason (the upstream closed without its terminator, an event that is
    /// not JSON, an incomplete event over [`MAX_EVENT_BYTES`]).
    Broken(&'static str),
}

/// Largest incomplete event tolerated before the stream is declared broken.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

impl RelayCore {
    /// The relay of one `api` stream. `strip_usage`: drop OpenAI's usage-only chunk;
    /// `strip_reasoning`: events rewritten without reasoning ([`StreamStripper`]); `mark`:
    /// events watermarked ([`StreamMarking`], before reasoning is stripped); `cap`: bytes of
    /// response text kept in the outcome.
    pub fn new(
        api: Api,
        strip_usage: bool,
        strip_reasoning: bool,
        mark: Option<std::sync::Arc<moat_mark::Marker>>,
        cap: usize,
    ) -> Self {
        RelayCore {
            splitter: SseSplitter::default(),
            filter: EventFilter::new(api, strip_usage, cap),
            reasoning: strip_reasoning.then(|| StreamStripper::new(api)),
            marking: mark.map(|m| StreamMarking::new(api, m)),
        }
    }

    /// One chunk from the upstream: the complete events it finishes are read into `outcome`
    /// and what the client gets is appended to `out`. `Err(reason)`: the stream is broken
    /// (then call [`RelayCore::release`] and end it with an error event).
    pub fn chunk(
        &mut self,
        chunk: &[u8],
        outcome: &mut Outcome,
        out: &mut BytesMut,
    ) -> Result<(), &'static str> {
        self.splitter.push(chunk);
        while let Some(ev) = self.splitter.next_event() {
            if self.filter.keep(&ev, outcome) {
                rewrite(&mut self.marking, &mut self.reasoning, &ev, out);
            }
            if self.filter.invalid {
                return Err("stream event is not JSON");
            }
        }
        if self.splitter.pending() > MAX_EVENT_BYTES {
            return Err("stream event too large");
        }
        Ok(())
    }

    /// The upstream's stream ended: its last (unterminated) event, and how it ended. A broken
    /// ending has had its held text released already.
    pub fn end(&mut self, outcome: &mut Outcome, out: &mut BytesMut) -> RelayEnd {
        let rest = self.splitter.take_rest();
        if !rest.is_empty() && self.filter.keep(&rest, outcome) {
            rewrite(&mut self.marking, &mut self.reasoning, &rest, out);
        }
        let end = if self.filter.invalid {
            RelayEnd::Broken("stream event is not JSON")
        } else if self.filter.done || self.filter.error {
            RelayEnd::Completed {
                upstream_error: self.filter.error,
            }
        } else {
            RelayEnd::Broken("stream ended early")
        };
        if matches!(end, RelayEnd::Broken(_)) {
            self.release(out);
        }
        end
    }

    /// Releases what the watermark still holds back (a stream that ends without its
    /// terminator): the text generated so far, in events of the API's shape.
    pub fn release(&mut self, out: &mut BytesMut) {
        if let Some(m) = &mut self.marking {
            let reasoning = &mut self.reasoning;
            m.finish_all(&mut |e: &[u8]| match reasoning {
                Some(r) => r.event(e, out),
                None => out.extend_from_slice(e),
            });
        }
    }
}

struct RelayState {
    upstream: BoxStream<'static, Result<Bytes, hyper::Error>>,
    core: RelayCore,
    exchange: Exchange,
    idle: Duration,
    flavor: Flavor,
    finished: bool,
}

/// The client-facing body stream of a streamed exchange ([`RelayCore`] over the upstream's
/// body, with the idle timeout). When it is dropped (end of stream or client disconnect), the
/// exchange's audit record is written. A stream that breaks off (the upstream fails, closes
/// early, sends an event that is not JSON, or goes quiet for `idle`) ends with an error event
/// in the API's format, after the text generated so far.
#[allow(clippy::too_many_arguments)]
pub fn relay(
    upstream: BoxStream<'static, Result<Bytes, hyper::Error>>,
    exchange: Exchange,
    api: Api,
    strip_usage: bool,
    strip_reasoning: bool,
    mark: Option<std::sync::Arc<moat_mark::Marker>>,
    cap: usize,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let state = RelayState {
        upstream,
        core: RelayCore::new(api, strip_usage, strip_reasoning, mark, cap),
        exchange,
        idle,
        flavor: api.flavor(),
        finished: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.finished {
            return None;
        }
        loop {
            let next = tokio::time::timeout(st.idle, st.upstream.next()).await;
            let mut out = BytesMut::new();
            let failed = match next {
                Ok(Some(Ok(chunk))) => {
                    match st.core.chunk(&chunk, st.exchange.outcome_mut(), &mut out) {
                        Ok(()) if out.is_empty() => continue,
                        Ok(()) => return Some((Ok(out.freeze()), st)),
                        Err(why) => {
                            st.core.release(&mut out);
                            GatewayError::UpstreamBadResponse(why.into())
                        }
                    }
                }
                Ok(None) => match st.core.end(st.exchange.outcome_mut(), &mut out) {
                    RelayEnd::Completed { upstream_error } => {
                        st.finished = true;
                        st.exchange.stream_completed(upstream_error).await;
                        return (!out.is_empty()).then_some((Ok(out.freeze()), st));
                    }
                    // Upstream closed without its terminator (or with garbage): the client is
                    // told, in the API's error event, that the answer is incomplete.
                    RelayEnd::Broken(why) => GatewayError::UpstreamBadResponse(why.into()),
                },
                Ok(Some(Err(e))) => {
                    st.core.release(&mut out);
                    GatewayError::UpstreamUnreachable(format!("stream broken: {e}"))
                }
                Err(_) => {
                    st.core.release(&mut out);
                    GatewayError::UpstreamTimeout(st.idle)
                }
            };
            // Broken off: the error event in the caller's format; the exchange is recorded as
            // failed (its usage so far kept: the upstream's numbers where it sent them,
            // estimates from the relayed text).
            out.extend_from_slice(&error_event(st.flavor, &failed));
            st.exchange.stream_failed(&failed).await;
            st.finished = true;
            return Some((Ok(out.freeze()), st));
        }
    })
}

/// One kept event through the watermark, then the reasoning stripper, into `out`.
fn rewrite(
    marking: &mut Option<StreamMarking>,
    reasoning: &mut Option<StreamStripper>,
    ev: &[u8],
    out: &mut BytesMut,
) {
    match (marking, reasoning) {
        (Some(m), Some(r)) => m.event(ev, &mut |e: &[u8]| r.event(e, out)),
        (Some(m), None) => m.event(ev, &mut |e: &[u8]| out.extend_from_slice(e)),
        (None, Some(r)) => r.event(ev, out),
        (None, None) => out.extend_from_slice(ev),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<Bytes> {
        let mut s = SseSplitter::default();
        let mut out = vec![];
        for c in chunks {
            s.push(c);
            while let Some(e) = s.next_event() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn splits_events_across_chunks() {
        let evs = split_all(&[
            b"data: a\n",
            b"\ndata: b\n\nda",
            b"ta: c\r\n\r",
            b"\n",
            b"data: d\n\n",
        ]);
        let evs: Vec<&[u8]> = evs.iter().map(|b| b.as_ref()).collect();
        assert_eq!(
            evs,
            vec![
                &b"data: a\n\n"[..],
                b"data: b\n\n",
                b"data: c\r\n\r\n",
                b"data: d\n\n"
            ]
        );
    }

    #[test]
    fn byte_by_byte_split() {
        let src = b"event: x\ndata: {\"a\":1}\n\ndata: [DONE]\n\n";
        let chunks: Vec<&[u8]> = src.chunks(1).collect();
        let evs = split_all(&chunks);
        assert_eq!(evs.len(), 2);
        assert_eq!(&evs[1][..], b"data: [DONE]\n\n");
    }

    #[test]
    fn data_lines_are_joined() {
        assert_eq!(
            event_data(b"event: e\ndata: 1\ndata:2\n\n")
                .unwrap()
                .as_ref(),
            b"1\n2"
        );
        assert!(event_data(b": comment\n\n").is_none());
    }

    #[test]
    fn usage_chunk_is_stripped_only_when_asked() {
        let usage =
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n";
        let content = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
        let mut out = Outcome::default();
        let mut f = EventFilter::new(Api::OpenAiChat, true, 100);
        assert!(f.keep(content, &mut out));
        assert!(!f.keep(usage, &mut out));
        assert!(f.keep(b"data: [DONE]\n\n", &mut out));
        assert!(f.done);
        assert_eq!((out.input_tokens, out.output_tokens), (Some(3), Some(4)));
        let mut f = EventFilter::new(Api::OpenAiChat, false, 100);
        assert!(f.keep(usage, &mut Outcome::default()));
    }

    #[test]
    fn error_event_formats() {
        let e = GatewayError::UpstreamTimeout(Duration::from_secs(1));
        let a = error_event(Flavor::Anthropic, &e);
        assert!(a.starts_with(b"event: error\ndata: {"));
        let o = error_event(Flavor::OpenAi, &e);
        assert!(o.starts_with(b"data: {\"error\""));
        assert!(o.ends_with(b"\n\n"));
    }
}
