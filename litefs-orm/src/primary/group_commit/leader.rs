//! One batch, run by the leader: savepoints between the writes, one commit for all.

use std::sync::Arc;
use std::time::Instant;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};
use tokio::sync::oneshot;

use super::{Committer, Lease, MAX_OPEN, MAX_WRITES, Ran, SAVEPOINT, Ticket, Turn, stopped};
use crate::litefs::position::PositionTracker;
use crate::primary::executor::ExecError;

/// How the previous write of a batch ended, for the statements that close its savepoint.
#[derive(Clone, Copy)]
enum Prev {
    None,
    Ok { changes_before: Option<i64> },
    Failed,
}

/// The statements between two writes of a batch (or before the commit), in one round trip:
/// close the previous write's savepoint, open the next one, count changes (only when asked
/// and when the previous write succeeded or a next one starts: the statement then ends with
/// `SELECT total_changes()`).
fn boundary(prev: Prev, open: bool, count: bool) -> Option<&'static str> {
    Some(match (prev, open, count) {
        (Prev::None, true, true) => "SAVEPOINT litefs_orm_batch; SELECT total_changes()",
        (Prev::None, true, false) => "SAVEPOINT litefs_orm_batch",
        (Prev::Ok { .. }, true, true) => {
            "RELEASE litefs_orm_batch; SAVEPOINT litefs_orm_batch; SELECT total_changes()"
        }
        (Prev::Ok { .. }, true, false) => "RELEASE litefs_orm_batch; SAVEPOINT litefs_orm_batch",
        (Prev::Failed, true, true) => {
            "ROLLBACK TO litefs_orm_batch; RELEASE litefs_orm_batch; \
             SAVEPOINT litefs_orm_batch; SELECT total_changes()"
        }
        (Prev::Failed, true, false) => {
            "ROLLBACK TO litefs_orm_batch; RELEASE litefs_orm_batch; SAVEPOINT litefs_orm_batch"
        }
        // Closing: COMMIT releases the savepoint itself.
        (Prev::Ok { .. }, false, true) => "SELECT total_changes()",
        (Prev::Failed, false, _) => "ROLLBACK TO litefs_orm_batch",
        (Prev::Ok { .. } | Prev::None, false, false) | (Prev::None, false, true) => return None,
    })
}

/// Runs one boundary; the change count when it reads one.
async fn step(txn: &DatabaseTransaction, sql: &str) -> Result<Option<i64>, DbErr> {
    debug_assert!(sql.contains(SAVEPOINT) || sql.contains("total_changes"));
    if !sql.ends_with("total_changes()") {
        txn.execute_unprepared(sql).await?;
        return Ok(None);
    }
    let row = txn
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
        .await?
        .ok_or_else(|| DbErr::Custom("total_changes() returned no row".into()))?;
    row.try_get_by_index(0).map(Some)
}

/// The writes of one batch that succeeded, waiting for the commit.
#[derive(Default)]
struct Members {
    waiting: Vec<oneshot::Sender<Result<u64, ExecError>>>,
    /// Some successful write changed a row: the commit is a LiteFS transaction of its own.
    wrote: bool,
}

impl Members {
    fn fail(self, error: &ExecError) {
        for m in self.waiting {
            let _ = m.send(Err(share(error)));
        }
    }
}

/// Runs one batch from `first` on: see the module docs.
pub(super) async fn run_batch(committer: &Committer, first: Ticket) {
    let position = committer.position.as_ref();
    let txn = match crate::primary::executor::begin(&committer.writer()).await {
        Ok(txn) => Arc::new(txn),
        Err(e) => {
            let _ = first.send(Err(e.into()));
            return;
        }
    };
    let count = position.is_some();
    let opened = Instant::now();
    let mut members = Members::default();
    let mut prev = Prev::None;
    let mut ticket = first;
    let mut writes = 0;
    loop {
        let sql = boundary(prev, true, count).expect("opening a savepoint is a statement");
        let changes = match step(&txn, sql).await {
            Ok(c) => c,
            Err(e) => {
                let e = ExecError::from(e);
                let _ = ticket.send(Err(share(&e)));
                return abort(txn, members, e).await;
            }
        };
        if let Prev::Ok { changes_before } = prev {
            members.wrote |= changes != changes_before;
        }
        let (done, ran) = oneshot::channel();
        let (committed, turn_committed) = oneshot::channel();
        let lease = Lease {
            txn: Some(txn.clone()),
            done: Some(done),
        };
        // A caller that has gone away drops the turn, and with it the lease: `Abandoned`.
        let _ = ticket.send(Ok(Turn {
            lease,
            committed: turn_committed,
        }));
        prev = match ran.await.unwrap_or(Ran::Abandoned) {
            Ran::Ok => {
                members.waiting.push(committed);
                Prev::Ok {
                    changes_before: changes,
                }
            }
            Ran::Failed { fatal: Some(e) } => {
                return abort(txn, members, e).await;
            }
            Ran::Failed { fatal: None } | Ran::Abandoned => Prev::Failed,
        };
        writes += 1;
        if writes >= MAX_WRITES || opened.elapsed() >= MAX_OPEN {
            break;
        }
        match committer.pop() {
            Some(next) => ticket = next,
            None => break,
        }
    }
    if let Some(sql) = boundary(prev, false, count) {
        match step(&txn, sql).await {
            Ok(changes) => {
                if let Prev::Ok { changes_before } = prev {
                    members.wrote |= changes != changes_before;
                }
            }
            Err(e) => return abort(txn, members, e.into()).await,
        }
    }
    #[cfg(test)]
    super::tests::record(committer, writes);
    commit(txn, members, position, writes).await;
}

/// Reads `-pos` under the write lock, commits, answers every member.
async fn commit(
    txn: Arc<DatabaseTransaction>,
    members: Members,
    position: Option<&PositionTracker>,
    writes: usize,
) {
    if members.waiting.is_empty() {
        return rollback(txn).await;
    }
    let wrote = members.wrote;
    let txid = match position {
        None => 0,
        Some(t) => match t.read_now().await {
            Ok(pos) => t.txid_for(pos, wrote),
            Err(e) => return abort(txn, members, ExecError::Position(e)).await,
        },
    };
    let Some(txn) = sole(txn) else {
        return members.fail(&stopped());
    };
    let committing = Instant::now();
    if let Err(e) = txn.commit().await {
        return members.fail(&e.into());
    }
    if let (Some(position), true) = (position, wrote)
        && let Err(e) = crate::primary::executor::confirm(position, txid).await
    {
        return members.fail(&e);
    }
    crate::observe::primary::committed(writes, committing.elapsed(), txid);
    for m in members.waiting {
        let _ = m.send(Ok(txid));
    }
}

/// Rolls the whole batch back and fails every member with `error`.
async fn abort(txn: Arc<DatabaseTransaction>, members: Members, error: ExecError) {
    rollback(txn).await;
    members.fail(&error);
}

async fn rollback(txn: Arc<DatabaseTransaction>) {
    if let Some(txn) = sole(txn)
        && let Err(e) = txn.rollback().await
    {
        tracing::warn!(error = %e, "rolling back a write batch");
    }
}

/// The transaction, once every lease has let it go (dropping the last clone rolls back).
fn sole(txn: Arc<DatabaseTransaction>) -> Option<DatabaseTransaction> {
    Arc::try_unwrap(txn).ok()
}

/// A copy of a batch-wide error for each caller it fails.
fn share(e: &ExecError) -> ExecError {
    e.share()
}
