//! How the public listener is served: on the shared runtime, or on serving threads
//! (`server.threads`), each with its own single-threaded runtime and `SO_REUSEPORT` socket.

use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum_server::{
    accept::NoDelayAcceptor,
    tls_rustls::{RustlsAcceptor, RustlsConfig},
    Handle,
};
use tokio::task::JoinHandle;

/// `n` listening sockets on one address with `SO_REUSEPORT`, so that the kernel spreads new
/// connections over them (port 0: the first socket's port is reused by the others). Linux
/// lets only processes of the same user join such a group.
#[cfg(unix)]
pub(crate) fn bind_group(
    addr: SocketAddr,
    n: usize,
    what: &str,
) -> anyhow::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut at = addr;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.bind(&at.into())
            .and_then(|()| s.listen(1024))
            .with_context(|| format!("cannot listen on {at} ({what})"))?;
        let l = std::net::TcpListener::from(s);
        at = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

#[cfg(not(unix))]
pub(crate) fn bind_group(
    addr: SocketAddr,
    n: usize,
    what: &str,
) -> anyhow::Result<Vec<std::net::TcpListener>> {
    if n > 1 {
        anyhow::bail!("server.threads > 1 needs SO_REUSEPORT (unix); use \"shared\"");
    }
    Ok(vec![crate::server::bind(addr, what)?])
}

/// What the public listener serves.
pub(crate) type PublicApp = IntoMakeServiceWithConnectInfo<axum::Router, SocketAddr>;

/// Serves `app` on `listener` (TLS when `tls`), with TCP_NODELAY: SSE events are small writes
/// that must not wait for Nagle.
pub(crate) async fn serve_on(
    listener: std::net::TcpListener,
    app: PublicApp,
    tls: Option<RustlsConfig>,
    handle: Handle,
) -> std::io::Result<()> {
    match tls {
        Some(tc) => {
            let acceptor = RustlsAcceptor::new(tc).acceptor(NoDelayAcceptor::new());
            axum_server::from_tcp(listener)
                .acceptor(acceptor)
                .handle(handle)
                .serve(app)
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .acceptor(NoDelayAcceptor::new())
                .handle(handle)
                .serve(app)
                .await
        }
    }
}

/// Serving thread `index`: an OS thread with its own single-threaded runtime serving
/// `listener`; everything a request spawns stays on it. The returned task resolves when the
/// thread has stopped (an error if it panicked).
pub(crate) fn spawn_serving_thread(
    index: usize,
    listener: std::net::TcpListener,
    app: PublicApp,
    tls: Option<RustlsConfig>,
    handle: Handle,
) -> anyhow::Result<JoinHandle<std::io::Result<()>>> {
    let (done, stopped) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("moat-serve-{index}"))
        .spawn(move || {
            crate::upstream::enter_serving_thread(index);
            let res = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|rt| rt.block_on(serve_on(listener, app, tls, handle)));
            let _ = done.send(res);
        })
        .context("starting a serving thread")?;
    Ok(tokio::spawn(async move {
        let res = stopped.await;
        // The server (and its runtime) is done; the thread exits at once.
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        match (res, joined) {
            (Ok(res), Ok(Ok(()))) => res,
            _ => Err(std::io::Error::other("serving thread panicked")),
        }
    }))
}
