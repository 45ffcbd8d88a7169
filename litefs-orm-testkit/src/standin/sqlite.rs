//! Small helpers over the stand-in's own sqlx SQLite connections.

use std::path::Path;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteSynchronous};
use sea_orm::sqlx::{self, ConnectOptions, Connection};

pub(crate) type SqlResult<T> = Result<T, sqlx::Error>;

/// How long [`retry!`] keeps retrying a busy statement.
pub(crate) const BUSY_BUDGET: Duration = Duration::from_secs(2);
/// The pause between two attempts of a busy statement.
pub(crate) const BUSY_STEP: Duration = Duration::from_micros(100);

/// Awaits a statement future, re-creating and re-awaiting it while it fails with
/// `SQLITE_BUSY`, for up to [`BUSY_BUDGET`].
///
/// The stand-in's connections have no SQLite busy timeout: SQLite's own handler sleeps 1 ms,
/// then 2, 5, 10 ms..., far coarser than the poll interval. Only for worker threads (it
/// sleeps the thread between attempts).
macro_rules! retry {
    ($fut:expr) => {{
        let start = ::std::time::Instant::now();
        loop {
            match $fut.await {
                Err(e)
                    if $crate::standin::sqlite::is_busy(&e)
                        && start.elapsed() < $crate::standin::sqlite::BUSY_BUDGET =>
                {
                    ::std::thread::sleep($crate::standin::sqlite::BUSY_STEP)
                }
                r => break r,
            }
        }
    }};
}
pub(crate) use retry;

/// Opens a connection with foreign keys off (the copy drops and refills tables in any order),
/// no busy timeout (see [`retry!`]) and no journal mode change (the file's mode belongs to the
/// app). `durable: false` turns `synchronous` off: replica files need no fsync in tests.
pub(crate) async fn open(path: &Path, create: bool, durable: bool) -> SqlResult<SqliteConnection> {
    let mut opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .foreign_keys(false)
        .busy_timeout(Duration::ZERO)
        .statement_cache_capacity(16);
    if !durable {
        opts = opts.synchronous(SqliteSynchronous::Off);
    }
    opts.connect().await
}

/// Closes a connection, ignoring errors (the stand-in is shutting that worker down).
pub(crate) async fn close(conn: SqliteConnection) {
    let _ = conn.close().await;
}

/// `PRAGMA main.data_version`: changes when *another* connection commits to the file.
pub(crate) async fn data_version(conn: &mut SqliteConnection) -> SqlResult<i64> {
    sqlx::query_scalar("PRAGMA main.data_version")
        .fetch_one(conn)
        .await
}

/// Runs one statement built at run time (identifiers quoted with [`quote_ident`]).
pub(crate) async fn exec(conn: &mut SqliteConnection, sql: String) -> SqlResult<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(drop)
}

/// Runs a fixed statement.
pub(crate) async fn exec_static(conn: &mut SqliteConnection, sql: &'static str) -> SqlResult<()> {
    sqlx::raw_sql(sql).execute(conn).await.map(drop)
}

/// `"name"` with embedded quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A read-only `file:` URI for `ATTACH`.
pub(crate) fn ro_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// True for `SQLITE_BUSY` / `SQLITE_LOCKED` (and their extended codes).
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    let code = match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i32>().ok()),
        _ => None,
    };
    matches!(code.map(|c| c & 0xff), Some(5 | 6))
}
