//! The upstream model server: hyper's pooled client (HTTP/1.1 keep-alive, HTTP/2 when a TLS
//! upstream offers it), the upstream URIs and credential headers built once, and the mapping of
//! upstream failures to [`GatewayError`]s.
//!
//! The client is hyper's own, not reqwest's wrapper around it: on the proxy's hot path reqwest
//! parsed the URL twice per request (its redirect policy and its response both turn the
//! `http::Uri` back into a `url::Url`) and cloned its connector stack per request, about a
//! tenth of a serving thread's CPU for a feature (redirects) a gateway must not use.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use tokio::time::{timeout_at, Instant};

use crate::api::Api;
use crate::config::{Config, ServingThreads};
use crate::error::GatewayError;

thread_local! {
    /// Which serving thread this OS thread is (`server.threads`); 0 elsewhere.
    static SERVING_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current OS thread as serving thread `index`: its requests use that thread's
/// upstream connection pool ([`Upstream::send`]).
pub fn enter_serving_thread(index: usize) {
    SERVING_THREAD.with(|t| t.set(index));
}

/// The body of an upstream request: the (possibly rewritten) client body, whole.
pub type UpstreamBody = Full<Bytes>;
/// An upstream answer whose body is not read yet.
pub type UpstreamResponse = http::Response<hyper::body::Incoming>;
type HttpClient = hyper_util::client::legacy::Client<TimedConnector, UpstreamBody>;

/// The upstream model server: pooled clients and precomputed URIs and headers.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The pooled clients: one per serving thread, so that a connection is driven by the
    /// runtime whose requests use it.
    clients: Arc<[HttpClient]>,
    /// Base URL without `/v1`.
    pub base: String,
    chat: Uri,
    completions: Uri,
    models: Uri,
    messages: Uri,
    /// `Authorization: Bearer <upstream key>`.
    pub bearer: Option<HeaderValue>,
    /// `x-api-key: <upstream key>`.
    pub x_api_key: Option<HeaderValue>,
    /// Default `anthropic-version`.
    pub anthropic_version: HeaderValue,
    /// Time allowed for one exchange (`upstream.timeout`), for error messages.
    timeout: Duration,
}

const USER_AGENT: &str = concat!("moat/", env!("CARGO_PKG_VERSION"));

impl Upstream {
    /// Builds the clients for `base` (already normalised: no trailing `/v1`).
    pub fn new(config: &Config, base: &str) -> anyhow::Result<Upstream> {
        crate::tls::ensure_crypto_provider();
        let u = &config.upstream;
        let tls = tls_config(u.ca_file.as_deref())?;
        let client = || {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            let https = TimedConnector {
                inner: hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls.clone())
                    .https_or_http()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http),
                limit: u.connect_timeout,
            };
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(u.pool_max_idle_per_host)
                .build(https)
        };
        let pools = match config.server.threads {
            ServingThreads::Shared => 1,
            ServingThreads::PerThread(n) => n,
        };
        let clients = (0..pools).map(|_| client()).collect::<Arc<[_]>>();
        let header = |v: String| -> anyhow::Result<HeaderValue> {
            let mut h = HeaderValue::from_str(&v)
                .map_err(|_| anyhow::anyhow!("upstream.api_key contains invalid characters"))?;
            h.set_sensitive(true);
            Ok(h)
        };
        let key = u.api_key.as_ref().map(|k| k.expose().to_string());
        let uri = |api: Api| -> anyhow::Result<Uri> {
            format!("{base}{}", api.path())
                .parse::<Uri>()
                .map_err(|e| anyhow::anyhow!("upstream.base_url {base:?}: {e}"))
        };
        Ok(Upstream {
            clients,
            base: base.to_string(),
            chat: uri(Api::OpenAiChat)?,
            completions: uri(Api::OpenAiCompletions)?,
            models: uri(Api::OpenAiModels)?,
            messages: uri(Api::AnthropicMessages)?,
            bearer: key
                .clone()
                .map(|k| header(format!("Bearer {k}")))
                .transpose()?,
            x_api_key: key.map(header).transpose()?,
            anthropic_version: HeaderValue::from_str(&u.anthropic_version).map_err(|_| {
                anyhow::anyhow!("upstream.anthropic_version contains invalid characters")
            })?,
            timeout: u.timeout,
        })
    }

    /// URI of `api` on the upstream.
    pub fn uri(&self, api: Api) -> &Uri {
        match api {
            Api::OpenAiChat => &self.chat,
            Api::OpenAiCompletions => &self.completions,
            Api::OpenAiModels => &self.models,
            Api::AnthropicMessages => &self.messages,
        }
    }

    /// A request to `uri` with the gateway's own default headers (user agent, `accept`, and
    /// the upstream bearer key when one is configured); callers add the rest.
    pub fn request(&self, method: Method, uri: Uri) -> http::request::Builder {
        let mut rb = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        if let Some(b) = &self.bearer {
            rb = rb.header(header::AUTHORIZATION, b.clone());
        }
        rb
    }

    /// Sends `req` on the current serving thread's pool, giving up at `deadline`.
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
        deadline: Instant,
    ) -> Result<UpstreamResponse, GatewayError> {
        let i = SERVING_THREAD.with(Cell::get);
        let client = &self.clients[i % self.clients.len()];
        match timeout_at(deadline, client.request(req)).await {
            Err(_) => Err(GatewayError::UpstreamTimeout(self.timeout)),
            Ok(Err(e)) => Err(self.send_error(&e)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    fn send_error(&self, e: &hyper_util::client::legacy::Error) -> GatewayError {
        if e.is_connect() && caused_by_timeout(e) {
            return GatewayError::UpstreamTimeout(self.timeout);
        }
        GatewayError::UpstreamUnreachable(error_chain(e))
    }

    /// Reads an answer's body before `deadline`: at most `limit` bytes (cut there when
    /// `truncate`, an error otherwise). A body that arrives in one piece is passed on without
    /// a copy.
    pub async fn read_body(
        &self,
        resp: UpstreamResponse,
        deadline: Instant,
        limit: usize,
        truncate: bool,
    ) -> Result<Bytes, GatewayError> {
        let read = async {
            let mut body = resp.into_body();
            let mut whole = Whole::default();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| body_error(&e))?;
                let Ok(chunk) = frame.into_data() else {
                    continue; // trailers
                };
                if whole.len() + chunk.len() > limit {
                    if truncate {
                        let room = limit - whole.len();
                        whole.push(chunk.slice(..room));
                        break;
                    }
                    return Err(GatewayError::UpstreamBadResponse(
                        "response too large".into(),
                    ));
                }
                whole.push(chunk);
            }
            Ok(whole.finish())
        };
        match timeout_at(deadline, read).await {
            Err(_) => Err(GatewayError::UpstreamTimeout(self.timeout)),
            Ok(r) => r,
        }
    }
}

/// The HTTPS-or-HTTP connector under one limit for the whole connect, TCP and TLS handshake
/// together (`upstream.connect_timeout`); hyper's own limit covers the TCP part only. A new
/// connection's future is boxed: once per connection, not per request.
#[derive(Clone)]
struct TimedConnector {
    inner: HttpsConnector<HttpConnector>,
    limit: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Connection = <HttpsConnector<HttpConnector> as tower::Service<Uri>>::Response;

impl tower::Service<Uri> for TimedConnector {
    type Response = Connection;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connection, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connect = self.inner.call(dst);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, connect).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("not connected within {limit:?} (TCP and TLS)"),
                )
                .into()),
            }
        })
    }
}

/// A body put together from its chunks: the first one kept as is, copied only when a second
/// one arrives.
#[derive(Default)]
struct Whole {
    first: Option<Bytes>,
    rest: BytesMut,
}

impl Whole {
    fn len(&self) -> usize {
        self.first.as_ref().map_or(self.rest.len(), Bytes::len)
    }

    fn push(&mut self, chunk: Bytes) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(chunk);
            return;
        }
        if let Some(first) = self.first.take() {
            self.rest.reserve(first.len() + chunk.len());
            self.rest.extend_from_slice(&first);
        }
        self.rest.extend_from_slice(&chunk);
    }

    fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| self.rest.freeze())
    }
}

/// A failure while reading an upstream body: the upstream broke off or sent garbage.
fn body_error(e: &hyper::Error) -> GatewayError {
    GatewayError::UpstreamBadResponse(error_chain(e))
}

/// `e` and its causes, `: `-separated (hyper's own message is terse: "client error (Connect)").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

fn caused_by_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// The TLS client configuration: the Mozilla roots (webpki-roots) plus those of
/// `upstream.ca_file`; ALPN is set by the connector.
fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| anyhow::anyhow!("upstream.ca_file {}: {e}", ca.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("upstream.ca_file {}: {e}", ca.display()))?;
        if certs.is_empty() {
            anyhow::bail!("upstream.ca_file {}: no certificate found", ca.display());
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| anyhow::anyhow!("upstream.ca_file {}: {e}", ca.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_in_one_chunk_is_not_copied() {
        let chunk = Bytes::from_static(b"{\"id\":1}");
        let mut w = Whole::default();
        w.push(chunk.clone());
        let out = w.finish();
        assert_eq!(out, chunk);
        assert_eq!(out.as_ptr(), chunk.as_ptr(), "same buffer");
    }

    #[test]
    fn chunks_are_joined_in_order() {
        let mut w = Whole::default();
        for c in ["ab", "cd", "", "e"] {
            w.push(Bytes::from(c));
        }
        assert_eq!(w.len(), 5);
        assert_eq!(w.finish(), Bytes::from_static(b"abcde"));
    }

    #[test]
    fn an_empty_body_is_empty() {
        assert!(Whole::default().finish().is_empty());
    }

    /// An error with a cause, as hyper's connect errors are.
    #[derive(Debug)]
    struct Wrap(&'static str, std::io::Error);

    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn a_timeout_is_found_among_the_causes() {
        let timed_out = Wrap(
            "tcp connect error",
            std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline has elapsed"),
        );
        assert!(caused_by_timeout(&timed_out));
        assert_eq!(
            error_chain(&timed_out),
            "tcp connect error: deadline has elapsed"
        );
        let refused = Wrap(
            "tcp connect error",
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert!(!caused_by_timeout(&refused));
    }

    /// An `https://` upstream that accepts the TCP connection and never answers the TLS
    /// handshake: the connect limit covers the handshake too, and the failure is a timeout.
    #[tokio::test]
    async fn a_stalled_tls_handshake_is_a_connect_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                open.push(conn); // kept open, never read or written
            }
        });
        let src = format!(
            "[upstream]\nbase_url = \"https://{addr}/v1\"\nconnect_timeout = \"200ms\"\ntimeout = \"30s\"\n"
        );
        let config = Config::parse(
            &src,
            "moat.toml",
            std::path::Path::new(""),
            &crate::config::NoEnv,
        )
        .unwrap();
        let up = Upstream::new(&config, &format!("https://{addr}")).unwrap();
        let req = up
            .request(Method::GET, up.uri(Api::OpenAiModels).clone())
            .body(UpstreamBody::default())
            .unwrap();
        let started = std::time::Instant::now();
        let err = up
            .send(req, Instant::now() + Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::UpstreamTimeout(_)), "{err:?}");
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(10), "gave up after {waited:?}");
        held.abort();
    }
}
