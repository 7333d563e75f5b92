#![allow(dead_code)]
//! Test helpers: a fresh store on either backend, raw connections for tampering, and a TCP
//! proxy in front of PostgreSQL that a test can cut or stall.
//!
//! PostgreSQL tests create a database `moat_t_<random>` on the server of `MOAT_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`) and drop it afterwards. They fail,
//! never skip, when that server cannot be reached.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use moat_store::{AccountLimits, AuditRecord, NewAccount, Store, StoreOptions};
use sqlx::{AnyConnection, Connection, Executor};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[allow(unused_macros)]
/// Run each listed `async fn name(db: &TestDb)` on SQLite and on PostgreSQL, as the tests
/// `name::sqlite` and `name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = crate::common::TestDb::new(crate::common::Backend::Sqlite).await;
                super::$name(&db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = crate::common::TestDb::new(crate::common::Backend::Postgres).await;
                super::$name(&db).await;
            }
        }
    )*};
}

/// Which database a [`TestDb`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use (any database on it; tests create their own).
pub fn pg_admin_url() -> String {
    std::env::var("MOAT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| i + authority);
    let mut out = format!("{}/{name}", &base[..path]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `url` with its `host:port` replaced by `addr`.
pub fn with_address(url: &str, addr: SocketAddr) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let end = url[authority..]
        .find(['/', '?'])
        .map_or(url.len(), |i| i + authority);
    let hostport = &url[authority..end];
    let userinfo = hostport.rfind('@').map_or("", |at| &hostport[..=at]);
    format!("{}{userinfo}{addr}{}", &url[..authority], &url[end..])
}

/// `host:port` of the PostgreSQL server.
pub async fn pg_addr() -> SocketAddr {
    let url = pg_admin_url();
    let authority = url.find("://").map_or(0, |i| i + 3);
    let end = url[authority..]
        .find(['/', '?'])
        .map_or(url.len(), |i| i + authority);
    let hostport = &url[authority..end];
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    };
    tokio::net::lookup_host(hostport)
        .await
        .expect("resolving the PostgreSQL host")
        .next()
        .expect("PostgreSQL host has an address")
}

async fn admin_connection() -> AnyConnection {
    sqlx::any::install_default_drivers();
    let url = pg_admin_url();
    AnyConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is unreachable at {url} ({e}). The PostgreSQL tests need it: start it \
             (CI does) or point MOAT_TEST_PG_URL at a server"
        )
    })
}

/// Create a fresh database; returns its URL and name.
pub async fn create_pg_database() -> (String, String) {
    let mut conn = admin_connection().await;
    let mut b = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let name = format!("moat_t_{}", hex::encode(b));
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("CREATE DATABASE");
    let _ = conn.close().await;
    (with_database(&pg_admin_url(), &name), name)
}

/// Drop a test database (from a thread of its own, so it also works in `Drop`).
pub fn drop_pg_database(name: &str) {
    let name = name.to_string();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut conn = admin_connection().await;
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
            let _ = conn.close().await;
        });
    })
    .join();
}

/// A fresh store on one backend, a scratch directory, and what is needed to reopen it.
pub struct TestDb {
    pub backend: Backend,
    pub store: Store,
    /// What `Store::open` was given.
    pub url: String,
    /// Scratch directory (holds the SQLite file, exports, spools).
    pub dir: TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        TestDb::with_options(backend, StoreOptions::default()).await
    }

    pub async fn with_options(backend: Backend, options: StoreOptions) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg_name) = match backend {
            Backend::Sqlite => (
                dir.path().join("moat.db").to_str().unwrap().to_string(),
                None,
            ),
            Backend::Postgres => {
                let (url, name) = create_pg_database().await;
                (url, Some(name))
            }
        };
        let store = Store::open_with(&url, options).await.unwrap();
        assert_eq!(
            store.backend_name(),
            match backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            }
        );
        TestDb {
            backend,
            store,
            url,
            dir,
            pg_name,
        }
    }

    /// Another handle (its own pool) on the same database.
    pub async fn reopen(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }

    /// A raw connection bypassing the store (for tampering); statements use `$N`.
    pub async fn raw(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match self.backend {
            Backend::Sqlite => format!("sqlite:{}", self.url),
            Backend::Postgres => self.url.clone(),
        };
        AnyConnection::connect(&url).await.unwrap()
    }

    /// Run one statement on a raw connection.
    pub async fn exec(&self, sql: &str) {
        let mut c = self.raw().await;
        c.execute(sql).await.unwrap();
        let _ = c.close().await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            drop_pg_database(&name);
        }
    }
}

/// What a [`Proxy`] does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Up,
    /// Close every connection, refuse new ones (the database is down).
    Cut,
    /// Keep connections open but forward nothing (the host stopped answering).
    Stall,
}

/// A TCP proxy on 127.0.0.1 in front of `target`.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.mode.send(Mode::Cut);
        self.task.abort();
    }
}

async fn until_changed_from(rx: &mut watch::Receiver<Mode>, from: Mode) -> Mode {
    loop {
        let now = *rx.borrow_and_update();
        if now != from {
            return now;
        }
        if rx.changed().await.is_err() {
            return Mode::Cut;
        }
    }
}

async fn serve(mut inbound: TcpStream, target: SocketAddr, mut rx: watch::Receiver<Mode>) {
    let mode = *rx.borrow_and_update();
    match mode {
        Mode::Cut => return,
        Mode::Stall => {
            until_changed_from(&mut rx, Mode::Stall).await;
            return;
        }
        Mode::Up => {}
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let next = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => return,
        m = until_changed_from(&mut rx, Mode::Up) => m,
    };
    if next == Mode::Stall {
        // Hold both sockets silently until the mode changes again.
        until_changed_from(&mut rx, Mode::Stall).await;
    }
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(Mode::Up);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                tokio::spawn(serve(inbound, target, rx.clone()));
            }
        });
        Proxy {
            addr,
            mode: tx,
            task,
        }
    }

    pub fn set(&self, mode: Mode) {
        let _ = self.mode.send(mode);
    }
}

/// Poll `f` every 20 ms until it holds, for at most `secs` seconds.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

pub fn new_account(id: &str) -> NewAccount {
    NewAccount {
        id: Some(id.to_string()),
        name: format!("{id} Inc."),
        tier: "free".into(),
        email_domain: Some("example.com".into()),
        country: Some("US".into()),
        verified: false,
        limits: AccountLimits::default(),
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 5, 9).unwrap() + chrono::Duration::milliseconds(312)
}

pub fn record(i: u64) -> AuditRecord {
    AuditRecord {
        ts: t0() + chrono::Duration::milliseconds(i as i64 * 1000),
        account: Some("acct_a".into()),
        key_id: Some("key_aaaaaaaaaaaa".into()),
        ip: "198.51.100.17".into(),
        user_agent: "OpenAI/Python 1.51.0".into(),
        api: "openai.chat".into(),
        model: Some("m".into()),
        stream: i % 2 == 0,
        request_body: format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"question {i}"}}],"max_tokens":512}}"#
        ),
        status: 200,
        finish_reason: Some("stop".into()),
        input_tokens: 10 + i,
        output_tokens: 20 + i,
        response_text: Some(format!("answer {i}")),
        latency_ms: 5,
        error: None,
        decision: Some(serde_json::json!({"action": "allow", "risk": 0.01})),
    }
}
