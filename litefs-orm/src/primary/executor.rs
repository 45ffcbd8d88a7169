//! Runs a write on the primary in a transaction and learns the TXID that will hold it.
//!
//! The TXID is read from `-pos` while the transaction still holds SQLite's write lock, after
//! the write: no other commit can land between that read and ours, so our commit is the
//! next transaction, `read + 1`. LiteFS numbers every commit that way, so a replica that
//! reaches that TXID has the write — without reading `-pos` again after the commit.
//!
//! Concurrent writes share transactions ([`crate::primary::group_commit`], group commit); a write that finds
//! the writer idle runs alone, as [`solo`] here.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait,
};

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::BoxFut;
use crate::error::{DbFailure, DbFailureKind, SqliteFailure, classify};
use crate::litefs::position::PositionTracker;
use crate::primary::group_commit::{self as batch, Committer};
use crate::protocol::wire::WireError;
use tracing::Instrument;

/// Why a write failed on this node.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExecError {
    /// The wire form does not match the entity.
    #[error("{0}")]
    Wire(WireError),
    /// This node is not the LiteFS primary: SQLite refused the write the way LiteFS makes
    /// it refuse on a replica, and a fresh look at the role agreed.
    #[error("this node's database is read-only: it is not the LiteFS primary")]
    NotPrimary,
    /// SQLite refused the write the way LiteFS makes it refuse on a replica, not yet checked
    /// against the role: [`ReplicatedDb::resolve`](crate::ReplicatedDb) makes it
    /// [`ExecError::NotPrimary`] or [`ExecError::Io`].
    #[error("this node's database refused the write as read-only: {0}")]
    ReadOnly(DbErr),
    /// SQLite's I/O failed (the LiteFS mount may have gone away); nothing was committed.
    #[error("{0}")]
    Io(DbErr),
    /// The database refused or failed the write; nothing was committed.
    #[error("{0}")]
    Db(DbErr),
    /// `-pos` could not be read; the transaction was rolled back.
    #[error("reading the LiteFS position: {0}")]
    Position(std::io::Error),
    /// An operation's arguments or result do not (de)serialize.
    #[error("{0}")]
    Args(String),
    /// An operation returned its own error (serialized); the transaction was rolled back.
    #[error("the operation returned an error")]
    Operation(serde_json::Value),
    /// The request's idempotency key was recorded for a request with another body.
    #[error(
        "idempotency key {0} was already used for another request; every call needs a key of its own"
    )]
    KeyReused(String),
    /// The call's idempotency key is recorded already: an earlier attempt committed. The
    /// transaction is rolled back and the recorded result answered instead.
    #[error("this call's idempotency key is recorded already")]
    AlreadyRecorded,
    /// A recorded result could not be written or read back.
    #[error("{0}")]
    Stored(String),
    /// The write's deadline passed while it waited for the writer; it never started.
    #[error("the writer stayed busy with other writes until this write's deadline")]
    WriterBusy,
    /// The write's deadline passed while its database did not answer (a LiteFS mount that
    /// is paused or cut off, a disk that hangs). `committing`: it had reached its commit,
    /// which may still complete.
    #[error(
        "the database did not answer before the write's deadline ({})",
        if *committing { "while committing: the write may have been committed" } else { "before its commit: nothing was written" }
    )]
    Stalled {
        /// Whether the write had reached its commit.
        committing: bool,
    },
    /// SQLite committed the write, but LiteFS did not record it as transaction `txid`: the
    /// position stayed at `at`. The connection is one LiteFS stopped following when it gave
    /// up its lease and recovered the database (after a pause, or a cut from its lease),
    /// and took the lease again: the write will not replicate, and may or may not stay on
    /// this node. The connections are reopened.
    #[error(
        "SQLite committed the write, but LiteFS did not record it: its position stayed at txid {at} instead of reaching {txid} (a connection LiteFS stopped following after it lost and retook its lease); the write may or may not have been kept, and will not replicate"
    )]
    Unrecorded {
        /// The TXID the commit should have been.
        txid: u64,
        /// The position LiteFS showed instead.
        at: u64,
    },
}

/// How long a commit may take to show in LiteFS's position before it is taken for one
/// LiteFS did not record. Real LiteFS records a commit before `COMMIT` returns; the wait
/// covers a position that is written a moment later (the testkit's stand-in does that).
pub(crate) const CONFIRM_WAIT: Duration = Duration::from_secs(2);

/// How far a write on this node has got: what its deadline passing means.
#[derive(Debug, Default)]
pub(crate) struct Progress(AtomicU8);

impl Progress {
    const WAITING: u8 = 0;
    const WORKING: u8 = 1;
    const COMMITTING: u8 = 2;

    /// The write runs (its transaction began, or its turn in a batch came).
    pub(crate) fn working(&self) {
        self.0.store(Self::WORKING, Ordering::Relaxed);
    }

    /// The write reached its commit: from now on it may be committed.
    pub(crate) fn committing(&self) {
        self.0.store(Self::COMMITTING, Ordering::Relaxed);
    }

    /// The error of a write whose deadline passed at this point.
    fn timed_out(&self) -> ExecError {
        match self.0.load(Ordering::Relaxed) {
            Self::WAITING => ExecError::WriterBusy,
            stage => ExecError::Stalled {
                committing: stage == Self::COMMITTING,
            },
        }
    }
}

impl From<DbErr> for ExecError {
    fn from(e: DbErr) -> Self {
        match classify(&e) {
            SqliteFailure::ReplicaRefusal => ExecError::ReadOnly(e),
            SqliteFailure::Io => ExecError::Io(e),
            SqliteFailure::Other => ExecError::Db(e),
        }
    }
}

impl ExecError {
    /// Whether this failure ends the whole transaction it happened in (every write of a
    /// group-commit batch fails with it): the node is not the primary, or its database's
    /// I/O failed.
    pub(crate) fn ends_the_transaction(&self) -> bool {
        matches!(
            self,
            ExecError::NotPrimary
                | ExecError::ReadOnly(_)
                | ExecError::Io(_)
                | ExecError::Unrecorded { .. }
        )
    }

    /// A copy of this error, for each write of a batch it fails.
    pub(crate) fn share(&self) -> ExecError {
        match self {
            ExecError::NotPrimary => ExecError::NotPrimary,
            ExecError::ReadOnly(e) => ExecError::ReadOnly(e.clone()),
            ExecError::Io(e) => ExecError::Io(e.clone()),
            ExecError::Db(e) => ExecError::Db(e.clone()),
            ExecError::Position(e) => {
                ExecError::Position(std::io::Error::new(e.kind(), e.to_string()))
            }
            ExecError::Unrecorded { txid, at } => ExecError::Unrecorded {
                txid: *txid,
                at: *at,
            },
            ExecError::Stalled { committing } => ExecError::Stalled {
                committing: *committing,
            },
            other => ExecError::Db(DbErr::Custom(other.to_string())),
        }
    }

    /// Whether this failure may come from running again a call that an earlier attempt
    /// committed: the key was found recorded, or the work failed (the row it inserts is
    /// there already, say). Worth reading the call's idempotency record before answering.
    pub(crate) fn may_come_from_a_repeat(&self) -> bool {
        matches!(
            self,
            ExecError::AlreadyRecorded
                | ExecError::Db(_)
                | ExecError::Operation(_)
                | ExecError::Wire(_)
                | ExecError::Args(_)
        )
    }

    pub(crate) fn into_error(self, primary: Option<String>) -> crate::Error {
        match self {
            ExecError::Wire(e) => crate::Error::Protocol(e.to_string()),
            ExecError::NotPrimary => crate::Error::NotPrimary {
                primary,
                hint: "the write was not applied; it will be forwarded once the role is known"
                    .into(),
            },
            ExecError::Db(e) => crate::Error::Rejected(DbFailure::from(&e)),
            // A refusal never checked against the role is not taken for "not primary".
            ExecError::ReadOnly(e) | ExecError::Io(e) => crate::Error::Io(io_failure(&e)),
            ExecError::Position(e) => crate::Error::LiteFs {
                path: "-pos".into(),
                source: e,
            },
            ExecError::Args(e) | ExecError::Stored(e) => crate::Error::Protocol(e),
            e @ (ExecError::KeyReused(_) | ExecError::AlreadyRecorded) => {
                crate::Error::Protocol(e.to_string())
            }
            ExecError::WriterBusy => crate::Error::WriterBusy,
            ExecError::Stalled { committing } => crate::Error::WriteStalled {
                maybe_committed: committing,
            },
            ExecError::Unrecorded { txid, at } => {
                crate::Error::CommitNotRecorded { txid, local: at }
            }
            ExecError::Operation(error) => crate::Error::Operation {
                operation: String::new(),
                error,
            },
        }
    }
}

/// An I/O failure of the database as it crosses the wire.
pub(crate) fn io_failure(e: &DbErr) -> DbFailure {
    DbFailure {
        kind: DbFailureKind::Io,
        message: e.to_string(),
    }
}

/// Runs `work` in a transaction on `committer`'s writer; returns its value and the TXID
/// holding it (0 without LiteFS).
///
/// When other writes are committing on the writer, the transaction is shared with them (group
/// commit, [`crate::primary::group_commit`]): `work` then runs in a savepoint of its own, so its failure —
/// an `Err`, a panic, being dropped — rolls back only its own changes, and its TXID is the
/// shared commit's.
#[cfg(test)]
pub(crate) async fn in_transaction<T, F>(
    committer: &Arc<Committer>,
    work: F,
) -> Result<(T, u64), ExecError>
where
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFut<'t, Result<T, ExecError>>,
{
    in_transaction_until(committer, None, work).await
}

/// [`in_transaction`], ending at `deadline` whatever the database does: with
/// [`ExecError::WriterBusy`] — before `work` starts, so nothing is written — if the writer
/// is still busy with other writes then, and with [`ExecError::Stalled`] if the database
/// does not answer (a frozen LiteFS mount), saying whether the write had reached its commit.
pub(crate) async fn in_transaction_until<T, F>(
    committer: &Arc<Committer>,
    deadline: Option<Instant>,
    work: F,
) -> Result<(T, u64), ExecError>
where
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFut<'t, Result<T, ExecError>>,
{
    if batch::writing(committer) {
        // It would wait for the transaction it runs in: refuse rather than hang.
        return Err(ExecError::Db(DbErr::Custom(
            "a replicated write was started inside another replicated write's transaction on \
             the same database; run it after that write returns, or in the same transaction"
                .into(),
        )));
    }
    let progress = Progress::default();
    let write = batch::as_writing(committer, async {
        match batch::enter(committer) {
            batch::Entry::Alone(owner) => {
                let result = solo(
                    &committer.writer(),
                    committer.position.as_ref(),
                    &progress,
                    work,
                )
                .instrument(crate::observe::primary::commit_span(true))
                .await;
                drop(owner);
                result
            }
            batch::Entry::Queued(turn) => batch::follow(turn, &progress, work).await,
        }
    });
    match deadline {
        None => write.await,
        Some(deadline) => tokio::time::timeout_at(deadline.into(), write)
            .await
            .unwrap_or_else(|_| Err(progress.timed_out())),
    }
}

/// One write in a transaction of its own.
async fn solo<T, F>(
    writer: &DatabaseConnection,
    position: Option<&PositionTracker>,
    progress: &Progress,
    work: F,
) -> Result<(T, u64), ExecError>
where
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFut<'t, Result<T, ExecError>>,
{
    progress.working();
    let txn = begin(writer).await?;
    let Some(position) = position else {
        let value = work(&txn).await?;
        progress.committing();
        commit(txn, 0).await?;
        return Ok((value, 0));
    };
    let before = total_changes(&txn).await?;
    let value = work(&txn).await?;
    let wrote = total_changes(&txn).await? != before;
    // Under the write lock when `wrote`: see the module docs.
    let pos = position.read_now().await.map_err(ExecError::Position)?;
    let txid = position.txid_for(pos, wrote);
    progress.committing();
    commit(txn, txid).await?;
    if wrote {
        confirm(position, txid).await?;
    }
    Ok((value, txid))
}

/// Checks that LiteFS recorded the commit this node just made as `txid`.
pub(crate) async fn confirm(position: &PositionTracker, txid: u64) -> Result<(), ExecError> {
    position
        .confirm(txid, CONFIRM_WAIT)
        .await
        .map_err(|at| ExecError::Unrecorded { txid, at: at.txid })
}

/// Commits a write that ran alone, as TXID `txid`, and records it.
async fn commit(txn: DatabaseTransaction, txid: u64) -> Result<(), DbErr> {
    let committing = Instant::now();
    txn.commit().await?;
    crate::observe::primary::committed(1, committing.elapsed(), txid);
    Ok(())
}

/// Opens a write transaction with `BEGIN IMMEDIATE`: it takes SQLite's write lock up front,
/// waiting for it under the busy timeout. A deferred transaction that reads first (an
/// idempotency key, a hook, an operation) and then writes would have to upgrade its lock,
/// and SQLite fails such an upgrade at once with `database is locked` when another
/// connection is waiting for the write lock, rather than wait.
pub(crate) async fn begin(writer: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    writer
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
}

async fn total_changes(txn: &DatabaseTransaction) -> Result<i64, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT total_changes()",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("total_changes() returned no row".into()))?;
    row.try_get_by_index(0)
}
