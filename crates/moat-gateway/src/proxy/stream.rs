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

struct RelayState {
    upstream: BoxStream<'static, Result<Bytes, hyper::Error>>,
    splitter: SseSplitter,
    filter: EventFilter,
    reasoning: Option<StreamStripper>,
    marking: Option<StreamMarking>,
    exchange: Exchange,
    idle: Duration,
    flavor: Flavor,
    finished: bool,
}

/// Largest incomplete event tolerated before the stream is declared broken.
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// The client-facing body stream of a streamed exchange. When it is dropped
/// (end of stream or client disconnect), the exchange's audit record is written.
/// `strip_reasoning`: events are rewritten without reasoning ([`StreamStripper`]).
/// `mark`: events are watermarked ([`StreamMarking`]; before reasoning is stripped).
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
        splitter: SseSplitter::default(),
        filter: EventFilter::new(api, strip_usage, cap),
        reasoning: strip_reasoning.then(|| StreamStripper::new(api)),
        marking: mark.map(|m| StreamMarking::new(api, m)),
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
            match next {
                Ok(Some(Ok(chunk))) => {
                    st.splitter.push(&chunk);
                    let mut out = BytesMut::new();
                    while let Some(ev) = st.splitter.next_event() {
                        if st.filter.keep(&ev, st.exchange.outcome_mut()) {
                            rewrite(&mut st.marking, &mut st.reasoning, &ev, &mut out);
                        }
                    }
                    if st.splitter.pending() > MAX_EVENT_BYTES {
                        let err =
                            GatewayError::UpstreamBadResponse("stream event too large".into());
                        out.extend_from_slice(&error_event(st.flavor, &err));
                        st.exchange.stream_failed(&err).await;
                        st.finished = true;
                        return Some((Ok(out.freeze()), st));
                    }
                    if !out.is_empty() {
                        return Some((Ok(out.freeze()), st));
                    }
                }
                Ok(None) => {
                    st.finished = true;
                    let rest = st.splitter.take_rest();
                    let keep = !rest.is_empty() && st.filter.keep(&rest, st.exchange.outcome_mut());
                    if st.filter.done || st.filter.error {
                        st.exchange.stream_completed(st.filter.error).await;
                    } else {
                        // Upstream closed without its terminator.
                        let err = GatewayError::UpstreamBadResponse("stream ended early".into());
                        st.exchange.stream_failed(&err).await;
                    }
                    let mut out = BytesMut::new();
                    if keep {
                        rewrite(&mut st.marking, &mut st.reasoning, &rest, &mut out);
                    }
                    if !(st.filter.done || st.filter.error) {
                        // No terminator: release what the watermark still holds.
                        if let Some(m) = &mut st.marking {
                            let reasoning = &mut st.reasoning;
                            m.finish_all(&mut |e: &[u8]| match reasoning {
                                Some(r) => r.event(e, &mut out),
                                None => out.extend_from_slice(e),
                            });
                        }
                    }
                    return (!out.is_empty()).then_some((Ok(out.freeze()), st));
                }
                Ok(Some(Err(e))) => {
                    let err = GatewayError::UpstreamUnreachable(format!("stream broken: {e}"));
                    st.exchange.stream_failed(&err).await;
                    st.finished = true;
                    return Some((Ok(error_event(st.flavor, &err)), st));
                }
                Err(_) => {
                    let err = GatewayError::UpstreamTimeout(st.idle);
                    st.exchange.stream_failed(&err).await;
                    st.finished = true;
                    return Some((Ok(error_event(st.flavor, &err)), st));
                }
            }
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
