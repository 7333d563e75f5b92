//! Starting and stopping the gateway: store, auth cache, limiter, audit
//! writer, upstream client, the public listener (optionally TLS) and the
//! admin listener.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum_server::{accept::NoDelayAcceptor, Handle};
use moat_limits::{InMemoryLimiter, Limiter, RedisLimiter, RedisLimiterConfig};
use moat_store::{
    AuditWriter, AuditWriterConfig, AuditWriterTask, KeyAuthenticator, Store, StoreFaultPolicy,
    StoreOptions,
};
use tokio::task::JoinHandle;

use crate::config::{Config, LimiterBackend, ServingThreads, StoreOnError, UpstreamTarget};
use crate::detection::DetectionInspector;
use crate::gateway::Gateway;
use crate::inspect::RequestInspector;
use crate::routes;
use crate::serving::{bind_group, serve_on, spawn_serving_thread};
use crate::upstream::Upstream;

/// Optional parts that callers (the binary, tests, the detection wiring) can supply.
#[derive(Default, Clone)]
pub struct ServeOptions {
    /// Request inspection hook (detection engine).
    pub inspector: Option<Arc<dyn RequestInspector>>,
    /// Limiter backend; the in-memory one when `None`.
    pub limiter: Option<Arc<dyn Limiter>>,
}

/// A started gateway.
pub struct Running {
    /// Bound public address.
    pub addr: SocketAddr,
    /// Bound admin address, if the admin listener is on.
    pub admin_addr: Option<SocketAddr>,
    /// Whether the public listener speaks TLS.
    pub tls: bool,
    /// Upstream base URL in use (for `demo`, the in-process demo upstream).
    pub upstream: String,
    /// The shared state (for embedding and tests).
    pub gateway: Arc<Gateway>,
    handles: Vec<Handle>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    audit_task: AuditWriterTask,
    store: Store,
    grace: Duration,
}

pub(crate) fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} ({what})"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Starts everything and returns once the listeners are bound.
pub async fn start(config: Config, opts: ServeOptions) -> anyhow::Result<Running> {
    crate::tls::ensure_crypto_provider();
    crate::metrics::install();
    let config = Arc::new(config);
    let store_path = config.store.display();
    let mut store = Store::open_with(
        &config.store.location(),
        StoreOptions {
            acquire_timeout: config.store.timeout,
            ..StoreOptions::default()
        },
    )
    .await
    .with_context(|| format!("opening store {store_path}"))?;
    if let Some(enc) = &config.audit.encryption {
        store = store.with_audit_keys(enc.load_keyring().context("[audit.encryption]")?);
    }
    let auth = KeyAuthenticator::with_policy(
        store.clone(),
        config.auth.cache_ttl,
        match config.store.on_error {
            StoreOnError::ServeStale => StoreFaultPolicy::ServeStale,
            StoreOnError::FailClosed => StoreFaultPolicy::FailClosed,
        },
    );
    let (limiter, redis_limiter) = limiter(&config, opts.limiter)?;
    let scale_out = match &config.bus {
        Some(b) => Some(
            crate::scale_out::ScaleOut::connect(b)
                .await
                .context("[bus]")?,
        ),
        None => None,
    };
    let base = match &config.upstream.target {
        UpstreamTarget::Url(u) => u.clone(),
        UpstreamTarget::Demo => {
            let addr = moat_demo_upstream::spawn(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                moat_demo_upstream::DemoOptions {
                    required_key: config
                        .upstream
                        .api_key
                        .as_ref()
                        .map(|k| k.expose().to_string()),
                },
            )
            .await
            .context("starting the demo upstream")?;
            tracing::warn!(%addr, "using the in-process DEMO UPSTREAM: answers are templated text, not a model");
            format!("http://{addr}")
        }
        UpstreamTarget::Embedded => crate::embedded::start(&config).await?,
    };
    let upstream = Upstream::new(&config, &base)?;
    let watermark = crate::watermark::Watermarker::load(&config)?;
    let tls_config = match &config.server.tls {
        Some(t) => Some(crate::tls::server_config(t).await?),
        None => None,
    };
    if let ServingThreads::PerThread(_) = config.server.threads {
        // A connection opened on a serving thread's runtime ends with that runtime, but the
        // audit writer still needs the store after the serving threads stop at shutdown.
        // SQLite connections run on their own threads; network clients (PostgreSQL, Redis,
        // the bus) would not be safe.
        let networked = !matches!(config.store.backend, crate::config::StoreBackend::Sqlite)
            || !matches!(config.limits.backend, LimiterBackend::Memory);
        if networked {
            anyhow::bail!(
                "server.threads = N needs the SQLite store and the in-memory limiter for now; \
                 use server.threads = \"shared\" with PostgreSQL or Redis"
            );
        }
    }
    let main_listeners = match config.server.threads {
        ServingThreads::Shared => vec![bind(config.server.listen, "server.listen")?],
        ServingThreads::PerThread(n) => bind_group(config.server.listen, n, "server.listen")?,
    };
    let admin_listener = config
        .server
        .admin_listen
        .map(|a| bind(a, "server.admin_listen"))
        .transpose()?;

    let (audit, audit_task) = AuditWriter::spawn(
        store.clone(),
        AuditWriterConfig {
            batch_size: config.audit.batch,
            flush_interval: config.audit.flush_interval,
            channel_capacity: config.audit.queue,
            spool_dir: config.audit.spool_dir.clone(),
            ..AuditWriterConfig::default()
        },
    );
    let gateway = Arc::new(Gateway {
        config: config.clone(),
        store: store.clone(),
        auth,
        limiter,
        audit,
        upstream,
        inspector: opts.inspector.or_else(|| {
            config.detect.enabled.then(|| {
                Arc::new(DetectionInspector::new(config.detect.clone()))
                    as Arc<dyn RequestInspector>
            })
        }),
        enforcer: crate::enforce::Enforcer::new(config.enforce.clone(), config.auth.cache_ttl),
        watermark,
        scale_out,
        redis_limiter,
    });
    crate::scale_out::ScaleOut::spawn_watchers(&gateway);

    let addr = main_listeners[0].local_addr()?;
    let admin_addr = admin_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let mut handles = Vec::new();
    let mut servers = Vec::new();

    let app = routes::public(gateway.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let tls = tls_config.is_some();
    let per_thread = matches!(config.server.threads, ServingThreads::PerThread(_));
    for (i, listener) in main_listeners.into_iter().enumerate() {
        let handle = Handle::new();
        let (app, tc) = (app.clone(), tls_config.clone());
        servers.push(if per_thread {
            spawn_serving_thread(i, listener, app, tc, handle.clone())?
        } else {
            tokio::spawn(serve_on(listener, app, tc, handle.clone()))
        });
        handles.push(handle);
    }
    if let Some(l) = admin_listener {
        let h = Handle::new();
        let app =
            routes::admin(gateway.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = axum_server::from_tcp(l)
            .acceptor(NoDelayAcceptor::new())
            .handle(h.clone());
        servers.push(tokio::spawn(server.serve(app)));
        handles.push(h);
    }
    tracing::info!(
        listen = %addr,
        tls,
        threads = ?config.server.threads,
        admin = ?admin_addr,
        upstream = %base,
        store = %store_path,
        "moat gateway listening"
    );
    Ok(Running {
        addr,
        admin_addr,
        tls,
        upstream: base,
        gateway,
        handles,
        servers,
        audit_task,
        store,
        grace: config.server.shutdown_grace,
    })
}

impl Running {
    /// Graceful stop: stop accepting, let in-flight requests finish (up to
    /// `server.shutdown_grace`), flush the audit log, close the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        for h in &self.handles {
            h.graceful_shutdown(Some(self.grace));
        }
        for s in self.servers {
            match s.await {
                Ok(Err(e)) => tracing::error!(error = %e, "listener failed"),
                Err(e) => tracing::error!(error = %e, "listener task failed"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(so) = &self.gateway.scale_out {
            if !so.flush(self.grace).await {
                tracing::warn!("exchange events still queued at shutdown were dropped");
            }
        }
        drop(self.gateway);
        let stats = self.audit_task.shutdown().await;
        tracing::info!(?stats, "audit log flushed");
        self.store.close().await;
        Ok(())
    }

    /// Runs until `signal` resolves (or a listener dies), then shuts down gracefully.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let mut servers = std::mem::take(&mut self.servers);
        let died = async {
            let (res, _, _) = futures::future::select_all(servers.iter_mut()).await;
            res
        };
        tokio::select! {
            _ = signal => {
                tracing::info!("shutdown requested");
                self.servers = servers;
                self.shutdown().await
            }
            res = died => {
                let err = match res {
                    Ok(Ok(())) => anyhow::anyhow!("a listener stopped unexpectedly"),
                    Ok(Err(e)) => anyhow::Error::new(e).context("listener failed"),
                    Err(e) => anyhow::Error::new(e).context("listener task failed"),
                };
                self.servers = servers;
                let _ = self.shutdown().await;
                Err(err)
            }
        }
    }
}

/// The limiter in use, and the Redis limiter itself when it is one (for health reports).
type ChosenLimiter = (Arc<dyn Limiter>, Option<Arc<RedisLimiter>>);

/// The limiter: the caller's, or the one `[limits] backend` names. Also returns the Redis
/// limiter itself, for health reports.
fn limiter(config: &Config, given: Option<Arc<dyn Limiter>>) -> anyhow::Result<ChosenLimiter> {
    if let Some(l) = given {
        return Ok((l, None));
    }
    match &config.limits.backend {
        LimiterBackend::Memory => Ok((Arc::new(InMemoryLimiter::default()), None)),
        LimiterBackend::Redis {
            url,
            fail_mode,
            timeout,
        } => {
            // lazy connection: the gateway starts (and fails open/closed) while Redis is down
            let r = Arc::new(
                RedisLimiter::new(RedisLimiterConfig {
                    url: url.clone(),
                    fail_mode: *fail_mode,
                    timeout: *timeout,
                    ..RedisLimiterConfig::default()
                })
                .context("[limits] redis_url")?,
            );
            Ok((r.clone() as Arc<dyn Limiter>, Some(r)))
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `moat serve`: starts the gateway and runs it until Ctrl-C/SIGTERM.
pub async fn serve(config: Config, opts: ServeOptions) -> anyhow::Result<()> {
    let running = start(config, opts).await?;
    running.run_until(shutdown_signal()).await
}
