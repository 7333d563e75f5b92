//! Backend plumbing shared by every table: which database the store talks to, connecting with
//! timeouts, the few statements whose text differs per backend, and a deadline on every query.
//!
//! The store talks to both backends through sqlx's `Any` driver, with one copy of every query
//! written in portable SQL and `$N` placeholders (SQLite accepts `$N` as a numbered parameter, so
//! no rewriting is needed). [`Dialect`] holds the handful of statements that must differ:
//! how a read-then-write transaction starts, how a snapshot read starts, row locks, and JSON
//! access. Only types that both backends share cross the `Any` boundary: `BIGINT`/`INTEGER`
//! (`i64`), `TEXT` (`String`), `BYTEA`/`BLOB` (`Vec<u8>`), and booleans, which SQLite stores as
//! `INTEGER` 0/1 and PostgreSQL as `BOOLEAN` (bound as `bool`, read with [`get_bool`]).

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow, AnyTypeInfoKind};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Connection, Executor, Row, ValueRef};

use crate::{Store, StoreError};

/// Migrations of each backend, embedded in the binary. The SQLite files are the historical
/// ones, byte for byte (their checksums are recorded in existing databases); the PostgreSQL
/// files create the same tables and columns with PostgreSQL types.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The backend behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// A SQLite file (WAL) or an in-memory database.
    Sqlite,
    /// A PostgreSQL database, possibly shared by several gateway replicas.
    Postgres,
}

impl Dialect {
    /// `"sqlite"` or `"postgres"`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// Starts a transaction that reads and then writes. SQLite's default deferred transaction
    /// would fail with `SQLITE_BUSY` if another connection wrote between our read and our first
    /// write; `BEGIN IMMEDIATE` takes the database's write lock up front (waiting up to the busy
    /// timeout). PostgreSQL uses a plain `BEGIN` and row locks ([`Dialect::for_update`]).
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Starts a read-only transaction that sees one snapshot for all its statements (verify,
    /// evidence spans). SQLite's deferred read transaction in WAL mode is one; PostgreSQL's
    /// default `READ COMMITTED` takes a snapshot per statement, hence `REPEATABLE READ`.
    pub(crate) fn begin_snapshot(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        }
    }

    /// Suffix of a `SELECT` that locks the rows it reads until the transaction ends (empty on
    /// SQLite, where `BEGIN IMMEDIATE` already holds the database's write lock).
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// SQL for the text value of top-level key `key` of the JSON text column `column`.
    pub(crate) fn json_field(self, column: &str, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({column}, '$.{key}')"),
            Dialect::Postgres => format!("({column}::jsonb ->> '{key}')"),
        }
    }
}

/// Connection settings of [`Store::open_with`].
///
/// Every query of the store runs under a deadline of
/// `acquire_timeout + statement_timeout + 1 s` on the client side too, so that a store call
/// returns [`StoreError::Timeout`] instead of hanging when the database host stops answering
/// (a black-holed connection, which no server-side timeout can end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// How long a query waits for a pooled connection, including establishing a new one (so it
    /// is also the connect timeout). Default 5 s.
    pub acquire_timeout: Duration,
    /// PostgreSQL: `statement_timeout` of every connection (a statement running longer is
    /// cancelled by the server), and twice that as `idle_in_transaction_session_timeout` (a
    /// replica that dies holding the audit chain's head lock releases it). SQLite: the busy
    /// timeout (how long a write waits for the database's write lock). Default 10 s.
    pub statement_timeout: Duration,
    /// Pool size (an in-memory SQLite database always uses one connection). Default 8.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            max_connections: 8,
        }
    }
}

impl StoreOptions {
    /// The client-side deadline of one query.
    pub(crate) fn query_deadline(&self) -> Duration {
        self.acquire_timeout + self.statement_timeout + Duration::from_secs(1)
    }
}

/// What [`Store::open_with`] was given, resolved.
struct Target {
    dialect: Dialect,
    /// The URL handed to the `Any` driver (may hold a password: never log it).
    url: sqlx::any::AnyConnectOptions,
    memory: bool,
}

fn is_postgres_url(s: &str) -> bool {
    let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `url` with any password (in the user info or a `password=` parameter of a PostgreSQL URL)
/// replaced by `***`: what to print or log instead of a store URL. File paths come back as they
/// are.
pub fn redact_url(url: &str) -> String {
    if !is_postgres_url(url) {
        return url.to_string();
    }
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let redacted = match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!("{}:***{}", &authority[..colon], &authority[at..]),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let mut out = format!(
        "{}{}{}",
        &url[..scheme_end],
        redacted,
        &rest[authority_end..]
    );
    // A password can also come as a query parameter.
    if let Some(q) = out.find('?') {
        let query: Vec<String> = out[q + 1..]
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{}?{}", &out[..q], query.join("&"));
    }
    out
}

fn resolve(s: &str) -> Result<Target, sqlx::Error> {
    if is_postgres_url(s) {
        return Ok(Target {
            dialect: Dialect::Postgres,
            url: AnyConnectOptions::from_str(s)?,
            memory: false,
        });
    }
    if s.contains("://") && !s.starts_with("sqlite:") {
        // Not a plausible file name: most likely an unsupported URL, or a URL that went through
        // path resolution. Refuse rather than create a SQLite file with that name.
        return Err(sqlx::Error::Configuration(
            "unsupported database URL: expected a SQLite file path, a sqlite: URL or a \
             postgres:// / postgresql:// URL"
                .into(),
        ));
    }
    let memory = s == ":memory:" || s.starts_with("sqlite::memory:");
    if memory {
        return Ok(Target {
            dialect: Dialect::Sqlite,
            url: AnyConnectOptions::from_str("sqlite::memory:")?,
            memory,
        });
    }
    let options = if s.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(s)?
    } else {
        SqliteConnectOptions::new().filename(s)
    };
    // The `Any` driver takes a URL; an absolute file name keeps the round trip unambiguous.
    let filename = std::path::absolute(options.get_filename())
        .unwrap_or_else(|_| Path::new(options.get_filename()).to_path_buf());
    let options = options.filename(filename).create_if_missing(true);
    Ok(Target {
        dialect: Dialect::Sqlite,
        url: AnyConnectOptions::from_url(&options.to_url_lossy())?,
        memory: false,
    })
}

/// Settings applied to every new connection.
fn session_setup(dialect: Dialect, memory: bool, opts: &StoreOptions) -> Vec<String> {
    let ms = opts
        .statement_timeout
        .as_millis()
        .clamp(1, i32::MAX as u128);
    match dialect {
        Dialect::Sqlite => {
            let mut v = vec![
                format!("PRAGMA busy_timeout = {ms}"),
                "PRAGMA foreign_keys = ON".to_string(),
            ];
            if !memory {
                v.push("PRAGMA journal_mode = WAL".into());
                // FULL, not NORMAL: a commit (an audit batch) is on disk when it returns, so a
                // disk that fails (goes read-only, loses power) cannot take back records the
                // writer already counted as written (NORMAL fsyncs only at checkpoints). One
                // fsync per batch transaction, off the request path.
                v.push("PRAGMA synchronous = FULL".into());
            }
            v
        }
        Dialect::Postgres => vec![
            format!("SET statement_timeout = {ms}"),
            format!(
                "SET idle_in_transaction_session_timeout = {}",
                (ms * 2).min(i32::MAX as u128)
            ),
        ],
    }
}

/// Connect, configure every connection, and apply the migrations.
pub(crate) async fn connect(
    url: &str,
    opts: &StoreOptions,
) -> Result<(AnyPool, Dialect), StoreError> {
    sqlx::any::install_default_drivers();
    let open_err = |source| StoreError::Open {
        url: redact_url(url),
        source,
    };
    let target = resolve(url).map_err(open_err)?;
    let setup = session_setup(target.dialect, target.memory, opts);
    let pool_options = if target.memory {
        // An in-memory database exists per connection: keep exactly one, forever.
        AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        AnyPoolOptions::new().max_connections(opts.max_connections.max(1))
    };
    let pool = pool_options
        .acquire_timeout(opts.acquire_timeout)
        .after_connect(move |conn, _meta| {
            let setup = setup.clone();
            Box::pin(async move {
                for statement in &setup {
                    conn.execute(statement.as_str()).await?;
                }
                Ok(())
            })
        })
        .connect_with(target.url)
        .await
        .map_err(open_err)?;
    migrate(&pool, target.dialect).await?;
    Ok((pool, target.dialect))
}

/// Apply the embedded migrations on a dedicated connection. On PostgreSQL it runs without the
/// statement timeout (a migration may rewrite a large table) and is closed afterwards; sqlx holds
/// an advisory lock meanwhile, so replicas starting together migrate one at a time.
async fn migrate(pool: &AnyPool, dialect: Dialect) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(|source| StoreError::Db {
        op: "connecting for migrations",
        source,
    })?;
    let migrator = match dialect {
        Dialect::Sqlite => &SQLITE_MIGRATIONS,
        Dialect::Postgres => &POSTGRES_MIGRATIONS,
    };
    if dialect == Dialect::Postgres {
        conn.execute("SET statement_timeout = 0")
            .await
            .map_err(|source| StoreError::Db {
                op: "preparing migrations",
                source,
            })?;
    }
    let result = migrator.run(&mut *conn).await;
    if dialect == Dialect::Postgres {
        // Never hand a connection without a statement timeout back to the pool.
        let _ = conn.detach().close().await;
    }
    result?;
    Ok(())
}

/// A deadline and an operation name for a query future.
pub(crate) trait Timed<T>: Future<Output = Result<T, sqlx::Error>> + Sized {
    /// Await `self` for at most the store's query deadline; errors name `op`.
    async fn timed(self, store: &Store, op: &'static str) -> Result<T, StoreError> {
        let after = store.query_deadline();
        match tokio::time::timeout(after, self).await {
            Ok(r) => r.map_err(|source| StoreError::Db { op, source }),
            Err(_) => Err(StoreError::Timeout { op, after }),
        }
    }
}

impl<T, F: Future<Output = Result<T, sqlx::Error>>> Timed<T> for F {}

/// Read a boolean column: `BOOLEAN` on PostgreSQL, `INTEGER` 0/1 on SQLite.
pub(crate) fn get_bool(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    if row.try_get_raw(column)?.type_info().kind() == AnyTypeInfoKind::Bool {
        row.try_get(column)
    } else {
        Ok(row.try_get::<i64, _>(column)? != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://moat:s3cr3t@db.internal:5432/moat?sslmode=require"),
            "postgres://moat:***@db.internal:5432/moat?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://h/db?user=u&password=p&x=1"),
            "postgresql://h/db?user=u&password=***&x=1"
        );
        assert_eq!(
            redact_url("postgres://u@h/db"),
            "postgres://u@h/db",
            "no password"
        );
        assert_eq!(redact_url("/var/lib/moat/moat.db"), "/var/lib/moat/moat.db");
    }

    #[test]
    fn backend_is_chosen_by_url() {
        sqlx::any::install_default_drivers();
        assert_eq!(
            resolve("postgres://u@h/db").unwrap().dialect,
            Dialect::Postgres
        );
        assert_eq!(
            resolve("POSTGRESQL://u@h/db").unwrap().dialect,
            Dialect::Postgres
        );
        for s in ["moat.db", "sqlite:moat.db", "sqlite::memory:", ":memory:"] {
            assert_eq!(resolve(s).unwrap().dialect, Dialect::Sqlite, "{s}");
        }
        for s in ["mysql://h/db", "/etc/moat/postgres://u@h/db"] {
            assert!(resolve(s).is_err(), "{s}");
        }
        // Odd characters in a file name survive the URL round trip.
        let t = resolve("/tmp/a dir/x?y#z.db").unwrap();
        let back = SqliteConnectOptions::from_url(&t.url.database_url).unwrap();
        assert_eq!(back.get_filename(), Path::new("/tmp/a dir/x?y#z.db"));
    }
}
