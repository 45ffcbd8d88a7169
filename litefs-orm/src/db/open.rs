//! Opening the database: the reader pool, the writer, and the journal mode.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqlxSqliteConnector, Statement,
};

use crate::config::JournalMode;
use crate::error::{Error, Result};

pub(super) async fn wait_for_file(path: &Path, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > timeout {
            return Err(Error::Config(format!(
                "{} does not exist on this replica after {timeout:?}: has the primary created it, and is LiteFS replicating?",
                path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Logs the journal mode a replica's database has (the primary's choice) when it is not
/// the configured one.
pub(super) async fn note_journal_mode(conn: &DatabaseConnection, configured: JournalMode) {
    let mode = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get_by_index::<String>(0).ok());
    match mode {
        Some(mode) if !mode.eq_ignore_ascii_case(configured.as_str()) => tracing::info!(
            journal_mode = %mode,
            configured = %configured,
            "this replica's database is in the journal mode the primary set, not the configured one"
        ),
        _ => {}
    }
}

/// Opens a pool on `path`; `journal` sets the journal mode on each of its connections.
pub(super) async fn open(
    path: &Path,
    connections: u32,
    read_only: bool,
    create: bool,
    journal: Option<JournalMode>,
) -> Result<DatabaseConnection> {
    let mut options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .busy_timeout(Duration::from_secs(5));
    if let Some(mode) = journal {
        options = options.journal_mode(match mode {
            JournalMode::Delete => SqliteJournalMode::Delete,
            JournalMode::Truncate => SqliteJournalMode::Truncate,
            JournalMode::Persist => SqliteJournalMode::Persist,
            _ => SqliteJournalMode::Wal,
        });
    }
    if read_only {
        // Writes on this pool fail inside SQLite, whatever the node's role.
        options = options.pragma("query_only", "ON");
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(0)
        .connect_with(options)
        .await
        .map_err(|e| Error::Database(DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(e)))))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}
