//! The one error type of litefs-orm.

use std::time::Duration;

use sea_orm::{DbErr, SqlErr};
use serde::{Deserialize, Serialize};

/// Result with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a replicated read or write.
///
/// Each variant says whether the write may have been committed: only
/// [`Error::ReplicationTimeout`], [`Error::AnswerMismatch`] and [`Error::NotDurable`]
/// (committed),
/// [`Error::Transport`] after the request was sent, [`Error::WriteStalled`] at the commit,
/// [`Error::CommitNotRecorded`] and [`Error::UnverifiedAnswer`] (unknown) can leave a write
/// behind; every other error means nothing was written —
/// [`may_be_committed`](Error::may_be_committed) says which, and each message says why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A write was attempted where only the primary may write. Nothing was written.
    #[error("this node is not the LiteFS primary{}; {hint}", primary.as_deref().map(|p| format!(" (the primary is {p})")).unwrap_or_default())]
    NotPrimary {
        /// The primary, when known.
        primary: Option<String>,
        /// What to do instead, e.g. which replicated method to call.
        hint: String,
    },
    /// No primary was known for the whole wait. Nothing was written.
    #[error("no LiteFS primary is known after waiting {waited:?}; is the cluster electing one?")]
    NoPrimary {
        /// How long the call waited for one.
        waited: Duration,
    },
    /// The primary could not be reached, the connection failed mid-request, or something
    /// other than litefs-orm's endpoint (a gateway, a layer of the primary's app) answered
    /// with a timeout or server error — until the write's deadline.
    #[error("forwarding to the primary at {url} failed after {attempts} attempt(s) ({}): {message}", transport_outcome(*.maybe_committed, *.attempts))]
    Transport {
        /// The primary's RPC URL.
        url: String,
        /// What failed.
        message: String,
        /// False when no attempt reached a primary; true when one was sent and no answer
        /// came back, so a primary may have committed it. Even then it was committed at
        /// most once: every attempt carried the call's idempotency key.
        maybe_committed: bool,
        /// How many attempts the call made.
        attempts: u32,
    },
    /// An answer came back that looks like the primary's but is not signed with this node's
    /// secret for this request: forged or altered on the way, or sent by a primary with
    /// another `LITEFS_ORM_SECRET` or by an older litefs-orm that signs no answers (upgrade
    /// the primary first). Its content cannot be trusted, so the write may have been
    /// committed; the call is not retried.
    #[error(
        "the answer from {url} is not the primary's: {reason}; the write may have been committed"
    )]
    UnverifiedAnswer {
        /// The primary's RPC URL.
        url: String,
        /// What the answer was and why it is not trusted.
        reason: String,
    },
    /// The primary answered that it committed the write, but this node could not read the
    /// answer: its code and the primary's disagree on the entity or the operation's output
    /// (a rolling deploy: the primary's model has a column this node's lacks, or an
    /// operation's output changed shape). The write **is** committed (at `txid`, when the
    /// answer said so, which this node then waited for); read it back instead of retrying.
    #[error("the write was committed on the primary{}, but its answer does not match this node's code: {message}; read the row back instead of writing again", txid.map(|t| format!(" at txid {t}")).unwrap_or_default())]
    AnswerMismatch {
        /// The commit's TXID, when the answer said it.
        txid: Option<u64>,
        /// What did not match.
        message: String,
    },
    /// This node is the primary, and its writer stayed busy with other writes until the
    /// write's deadline ([`Config::write_timeout`](crate::Config::write_timeout)). The write
    /// never started: nothing was written.
    #[error(
        "the write waited for the database's writer until its deadline, behind other writes; nothing was written"
    )]
    WriterBusy,
    /// This node is the primary, and its database did not answer before the write's
    /// deadline ([`Config::write_timeout`](crate::Config::write_timeout)): a LiteFS that is
    /// paused or cut off, a disk that hangs. `maybe_committed` says whether the write had
    /// reached its commit (which may still complete once the database answers); otherwise
    /// nothing was written.
    #[error("the primary's database did not answer before the write's deadline ({}); is LiteFS paused, or its disk hanging?", if *maybe_committed { "the write had reached its commit: it may have been committed" } else { "before the write's commit: nothing was written" })]
    WriteStalled {
        /// Whether the write had reached its commit.
        maybe_committed: bool,
    },
    /// This node is the primary, and SQLite committed the write, but LiteFS did not record
    /// it as a transaction: its position stayed at `local` instead of reaching `txid`. The
    /// connection was one LiteFS stopped following when it gave up its lease and recovered
    /// the database (after LiteFS was paused, or cut off from its lease) and then took the
    /// lease again. The write will not replicate, and this node may or may not keep it: it
    /// may have been committed. The node reopens its connections; a call with an
    /// idempotency key is retried under it, so it applies at most once.
    #[error(
        "SQLite committed the write on the primary, but LiteFS did not record it (its position stayed at txid {local}, not {txid}): LiteFS lost and retook its lease under the connection; the write may have been committed, and will not replicate. The connections are reopened"
    )]
    CommitNotRecorded {
        /// The TXID the commit should have been.
        txid: u64,
        /// LiteFS's position instead.
        local: u64,
    },
    /// The primary committed the write, but fewer nodes than
    /// [`Config::durability`](crate::Config::durability) asks held it within
    /// [`Config::durability_timeout`](crate::Config::durability_timeout): it is committed, and
    /// may be lost if the primary dies before they catch up. The nodes that missed the bound
    /// are not waited for again until they have. Read it back instead of writing again.
    #[error(
        "the write was committed on the primary at txid {txid}, but only {held_by} of the {wanted} other node(s) the durability asks for held it within the durability timeout; it is not yet durable"
    )]
    NotDurable {
        /// The commit's TXID.
        txid: u64,
        /// Nodes besides the primary that held it.
        held_by: usize,
        /// Nodes besides the primary the durability asked for.
        wanted: usize,
    },
    /// The primary's database refused the write (constraint, hook error...). Nothing was written.
    #[error(
        "the database refused the write (the primary's, or this standalone node's); nothing was written: {0}"
    )]
    Rejected(DbFailure),
    /// SQLite failed with an I/O error on the primary's database (this node's, when it is
    /// the primary), or refused a write while LiteFS still says that node is the primary.
    /// The statement failed inside SQLite: nothing was written, and the write is not retried.
    /// The usual cause is a LiteFS mount that went away under the running app (LiteFS
    /// stopped or restarted); the node reopens its connections once LiteFS is mounted again.
    #[error(
        "the primary's database failed with an I/O error: {0}; the write was not applied. The LiteFS mount may have gone away (LiteFS stopped or restarted under the app); the node reopens its database connections once LiteFS is mounted again"
    )]
    Io(DbFailure),
    /// The write was committed on the primary, but this replica did not reach its position in time.
    #[error(
        "the write was committed on the primary at txid {txid}, but this replica is still at txid {local} after {waited:?}; it will appear once replication catches up"
    )]
    ReplicationTimeout {
        /// The primary's TXID after the commit.
        txid: u64,
        /// This replica's TXID when the wait gave up.
        local: u64,
        /// How long it waited.
        waited: Duration,
        /// Always true: the write is durable on the primary.
        committed: bool,
    },
    /// The primary refused the request's authentication (or this node refused the caller's).
    #[error(
        "authentication failed: {0}; check that every node has the same RPC secret and a synchronized clock"
    )]
    Unauthorized(String),
    /// A registered operation returned its own error; its transaction was rolled back.
    /// [`ReplicatedDb::run`](crate::ReplicatedDb::run) turns this into the operation's typed
    /// error ([`OpError::Failed`](crate::OpError::Failed)).
    #[error("operation `{operation}` failed: {error}")]
    Operation {
        /// The operation's name.
        operation: String,
        /// Its error, serialized.
        error: serde_json::Value,
    },
    /// The primary does not know the entity: register it with its router.
    #[error(
        "the primary has no replicated entity `{0}`; register it with `Registry::entity` on every node"
    )]
    UnknownEntity(String),
    /// A request or answer did not follow the wire protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A local database error (reads, connecting).
    #[error("local database error: {0}")]
    Database(#[from] DbErr),
    /// Reading LiteFS's files or HTTP API failed.
    #[error("LiteFS at {path}: {source}")]
    LiteFs {
        /// The file or URL.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is incomplete or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A replica waited for the primary's migrations to replicate, and some had not
    /// arrived by the deadline. Nothing was written on this node.
    #[error("the schema on this replica still lacks {} migration(s) ({}) after waiting {waited:.1?}; migrations run on the primary{}: check that it ran them and that LiteFS is replicating", pending.len(), pending.join(", "), primary.as_deref().map(|p| format!(" ({p})")).unwrap_or_else(|| ", and no primary is known".into()))]
    SchemaWaitTimeout {
        /// How long the replica waited.
        waited: Duration,
        /// The migrations of the binary still missing, oldest first.
        pending: Vec<String>,
        /// The primary, when known.
        primary: Option<String>,
    },
    /// A migration command failed on this node's database (the primary, or standalone).
    /// Migrations that completed before the failure stay applied.
    #[error("migration `{command}` failed on {database}: {source}")]
    MigrationFailed {
        /// The command (`up`, `down`, `fresh`, `refresh`, `reset`).
        command: &'static str,
        /// The database file.
        database: String,
        /// The database's error.
        #[source]
        source: DbErr,
    },
}

fn transport_outcome(maybe_committed: bool, attempts: u32) -> &'static str {
    match (maybe_committed, attempts) {
        (false, _) => "the write was not applied",
        (true, 0 | 1) => "the write may have been committed",
        (true, _) => {
            "the write may have been committed, and if so once: every attempt carried the same idempotency key"
        }
    }
}

impl Error {
    /// True when the write is known to be durable on the primary.
    pub fn is_committed(&self) -> bool {
        matches!(
            self,
            Error::ReplicationTimeout {
                committed: true,
                ..
            } | Error::AnswerMismatch { .. }
                | Error::NotDurable { .. }
        )
    }

    /// True when the write may have been committed (committed, or unknown after a lost answer).
    pub fn may_be_committed(&self) -> bool {
        self.is_committed()
            || matches!(
                self,
                Error::Transport {
                    maybe_committed: true,
                    ..
                } | Error::WriteStalled {
                    maybe_committed: true
                } | Error::UnverifiedAnswer { .. }
                    | Error::CommitNotRecorded { .. }
            )
    }

    /// The database failure when the primary refused the write.
    pub fn db_failure(&self) -> Option<&DbFailure> {
        match self {
            Error::Rejected(f) | Error::Io(f) => Some(f),
            _ => None,
        }
    }
}

/// A database error as it crosses the wire: its kind, for matching, and its message.
///
/// ```
/// # use litefs_orm::{DbFailure, DbFailureKind};
/// let f = DbFailure { kind: DbFailureKind::UniqueViolation, message: "UNIQUE constraint failed: user.email".into() };
/// assert!(f.is_unique_violation());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct DbFailure {
    /// What kind of failure.
    pub kind: DbFailureKind,
    /// The database's message.
    pub message: String,
}

/// Kinds of [`DbFailure`] a caller may want to match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DbFailureKind {
    /// A UNIQUE or PRIMARY KEY constraint failed.
    UniqueViolation,
    /// A FOREIGN KEY constraint failed.
    ForeignKeyViolation,
    /// An update or delete found no row (`DbErr::RecordNotFound` / `RecordNotUpdated`).
    RecordNotFound,
    /// `DbErr::Custom`, typically from an `ActiveModelBehavior` hook.
    Custom,
    /// SQLite's I/O failed (see [`Error::Io`]): the LiteFS mount may have gone away.
    Io,
    /// Anything else.
    Other,
}

impl DbFailure {
    /// True for a UNIQUE or PRIMARY KEY violation.
    pub fn is_unique_violation(&self) -> bool {
        self.kind == DbFailureKind::UniqueViolation
    }
}

impl From<DbErr> for DbFailure {
    fn from(e: DbErr) -> Self {
        DbFailure::from(&e)
    }
}

impl From<&DbErr> for DbFailure {
    fn from(e: &DbErr) -> Self {
        let kind = match (e.sql_err(), e) {
            _ if classify(e) != SqliteFailure::Other => DbFailureKind::Io,
            (Some(SqlErr::UniqueConstraintViolation(_)), _) => DbFailureKind::UniqueViolation,
            (Some(SqlErr::ForeignKeyConstraintViolation(_)), _) => {
                DbFailureKind::ForeignKeyViolation
            }
            (_, DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated) => {
                DbFailureKind::RecordNotFound
            }
            (_, DbErr::Custom(_)) => DbFailureKind::Custom,
            _ => DbFailureKind::Other,
        };
        let message = match e {
            DbErr::Custom(m) => m.clone(),
            other => other.to_string(),
        };
        DbFailure { kind, message }
    }
}

/// What a SQLite failure on a LiteFS node's database means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SqliteFailure {
    /// SQLite refused a write the way LiteFS makes it refuse on a replica:
    /// `SQLITE_READONLY` (8) or `SQLITE_READONLY_DBMOVED` (1544) in rollback journal modes,
    /// `SQLITE_IOERR_WRITE` (778) in WAL mode. "Not primary" only if a fresh look at the role
    /// agrees; on a node that is still primary it is an I/O failure.
    ReplicaRefusal,
    /// Any other I/O failure: `SQLITE_IOERR_*` (`SQLITE_IOERR_LOCK`, 3850, once the mount
    /// died under an open connection), `SQLITE_CANTOPEN`, the other `SQLITE_READONLY_*`, or
    /// an OS error (`ENOTCONN` from a dead FUSE mount).
    Io,
    /// Anything else: constraints, syntax, busy...
    Other,
}

/// Sorts `e` for [`SqliteFailure`]. sqlx reports SQLite's extended result code, as a
/// decimal string, from `DatabaseError::code`.
pub(crate) fn classify(e: &DbErr) -> SqliteFailure {
    use sea_orm::RuntimeErr;
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = e
    else {
        return SqliteFailure::Other;
    };
    match e.as_ref() {
        sea_orm::sqlx::Error::Database(db) => {
            let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(-1);
            classify_code(code)
        }
        sea_orm::sqlx::Error::Io(_) => SqliteFailure::Io,
        _ => SqliteFailure::Other,
    }
}

/// [`classify`] for SQLite's (extended) result code.
pub(crate) fn classify_code(code: i64) -> SqliteFailure {
    const READONLY: i64 = 8;
    const READONLY_DBMOVED: i64 = 1544;
    const IOERR: i64 = 10;
    const IOERR_WRITE: i64 = 778;
    const CANTOPEN: i64 = 14;
    match code {
        READONLY | READONLY_DBMOVED | IOERR_WRITE => SqliteFailure::ReplicaRefusal,
        // Extended codes keep the primary code in their low byte.
        c if c >= 0 && matches!(c & 0xff, READONLY | IOERR | CANTOPEN) => SqliteFailure::Io,
        _ => SqliteFailure::Other,
    }
}

/// True when SQLite refused a write the way LiteFS makes it refuse on a replica (see
/// [`SqliteFailure::ReplicaRefusal`]); whether this node is the primary still needs a look
/// at the role.
#[cfg(any(feature = "migrate", test))]
pub(crate) fn is_replica_write_error(e: &DbErr) -> bool {
    classify(e) == SqliteFailure::ReplicaRefusal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_of_a_write_on_a_litefs_replica_are_replica_refusals() {
        // DELETE mode: SQLITE_READONLY_DBMOVED; WAL mode: SQLITE_IOERR_WRITE; plain READONLY.
        for code in [1544, 778, 8] {
            assert_eq!(classify_code(code), SqliteFailure::ReplicaRefusal, "{code}");
        }
    }

    #[test]
    fn a_lock_error_of_a_dead_mount_is_an_io_failure() {
        assert_eq!(classify_code(3850), SqliteFailure::Io);
    }

    #[test]
    fn other_io_and_readonly_codes_are_io_failures() {
        // SQLITE_IOERR, IOERR_READ, IOERR_FSYNC, SQLITE_CANTOPEN, READONLY_CANTLOCK.
        for code in [10, 266, 1034, 14, 520] {
            assert_eq!(classify_code(code), SqliteFailure::Io, "{code}");
        }
    }

    #[test]
    fn constraint_and_busy_codes_are_other_failures() {
        // UNIQUE, FOREIGN KEY, BUSY, LOCKED, unknown.
        for code in [2067, 787, 5, 6, -1] {
            assert_eq!(classify_code(code), SqliteFailure::Other, "{code}");
        }
    }

    /// The error SQLite gives for `sql` on a fresh database at `path` opened with `options`.
    async fn error_of(path: &std::path::Path, sql: &str, read_only: bool) -> DbErr {
        use sea_orm::ConnectionTrait;
        use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        if !path.exists() {
            let rw = SqlitePoolOptions::new()
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true),
                )
                .await
                .unwrap();
            sea_orm::sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
                .execute(&rw)
                .await
                .unwrap();
            rw.close().await;
        }
        let pool = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(read_only),
            )
            .await
            .unwrap();
        let conn = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
        conn.execute_unprepared(sql).await.unwrap_err()
    }

    #[tokio::test]
    async fn a_write_on_a_read_only_database_is_a_replica_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let e = error_of(&dir.path().join("a.db"), "INSERT INTO t VALUES (1)", true).await;
        assert_eq!(classify(&e), SqliteFailure::ReplicaRefusal, "{e}");
        assert!(is_replica_write_error(&e));
    }

    #[tokio::test]
    async fn a_unique_violation_is_neither_refusal_nor_io() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let e = error_of(
            &path,
            "INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)",
            false,
        )
        .await;
        assert_eq!(classify(&e), SqliteFailure::Other, "{e}");
        assert_eq!(DbFailure::from(&e).kind, DbFailureKind::UniqueViolation);
    }

    #[test]
    fn an_io_failure_crosses_the_wire_as_its_own_kind() {
        let e = DbErr::Exec(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(
            sea_orm::sqlx::Error::Io(std::io::Error::from_raw_os_error(107)),
        )));
        assert_eq!(classify(&e), SqliteFailure::Io);
        assert_eq!(DbFailure::from(&e).kind, DbFailureKind::Io);
    }
}
