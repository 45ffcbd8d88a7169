//! The one error type of litefs-orm.

use std::time::Duration;

use sea_orm::{DbErr, SqlErr};
use serde::{Deserialize, Serialize};

/// Result with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a replicated read or write.
///
/// Each variant says whether the write may have been committed: only
/// [`Error::ReplicationTimeout`] (committed) and [`Error::Transport`] after the request was
/// sent (unknown) can leave a write behind; every other error means nothing was written.
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
    /// This node is the primary, and its writer stayed busy with other writes until the
    /// write's deadline ([`Config::write_timeout`](crate::Config::write_timeout)). The write
    /// never started: nothing was written.
    #[error(
        "the write waited for the database's writer until its deadline, behind other writes; nothing was written"
    )]
    WriterBusy,
    /// The primary's database refused the write (constraint, hook error...). Nothing was written.
    #[error("the primary's database refused the write: {0}")]
    Rejected(DbFailure),
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
            }
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
                }
            )
    }

    /// The database failure when the primary refused the write.
    pub fn db_failure(&self) -> Option<&DbFailure> {
        match self {
            Error::Rejected(f) => Some(f),
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

/// SQLite's primary result codes that LiteFS produces for a write on a replica:
/// `SQLITE_IOERR` (10) in WAL mode and `SQLITE_READONLY` (8) in rollback modes.
pub(crate) fn is_replica_write_error(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = e
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(db) = e.as_ref() else {
        return false;
    };
    let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(-1);
    // Extended codes keep the primary code in their low byte.
    matches!(code & 0xff, 8 | 10)
}
