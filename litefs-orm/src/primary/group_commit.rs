//! Group commit: writes that reach the primary while another commit is in flight share one
//! SQLite transaction, each in its own savepoint.
//!
//! Each database's writer and queue live in its [`Committer`], which its
//! [`ReplicatedDb`](crate::ReplicatedDb) owns. A write that finds its writer idle runs alone,
//! exactly as a single transaction ([`executor::solo`](crate::primary::executor)) — unless it
//! is one of the calls of a batch request ([`together`]), which queue for one leader even on an
//! idle writer. A write that finds it busy queues a ticket. When
//! the busy writer is done, a leader task opens one transaction for the queue and takes the
//! tickets in turn: `SAVEPOINT`, hand the transaction to that caller, which runs its own
//! work in its own task (so its value, hooks and panics stay its own), then `RELEASE` — or
//! `ROLLBACK TO` the savepoint when the work failed, panicked or was cancelled, so only that
//! caller fails. Tickets that arrive while the batch runs join it, up to [`MAX_WRITES`]
//! writes or [`MAX_OPEN`] after it opened. Then the leader reads `-pos` (under the write
//! lock, as a single write does), commits once and gives every successful caller the
//! batch's TXID.
//!
//! An error that ends the whole transaction — SQLite refusing a write the way a LiteFS
//! replica does, a savepoint statement failing, `-pos` unreadable, the commit failing —
//! fails every write of the batch with it; nothing of the batch is committed then.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::BoxFut;
use crate::litefs::position::PositionTracker;
use crate::primary::executor::{ExecError, Progress};

/// Most writes in one batch.
pub(crate) const MAX_WRITES: usize = 64;
/// A batch admits no more writes once it has been open this long.
pub(crate) const MAX_OPEN: Duration = Duration::from_millis(10);

/// The savepoint each write of a batch runs in (one at a time, so one name serves).
const SAVEPOINT: &str = "litefs_orm_batch";

static ENABLED: AtomicBool = AtomicBool::new(true);

tokio::task_local! {
    /// The committer (by [`Committer::id`]) whose write the current task is running.
    static WRITING: usize;
    /// Set while the calls of one request run together ([`together`]).
    static TOGETHER: ();
}

/// Turns group commit on (the default) or off for the whole process. Off, every write runs
/// in a transaction of its own, as before group commit; for benchmarks.
#[doc(hidden)]
pub fn set_group_commit(enabled: bool) {
    ENABLED.store(enabled, Ordering::SeqCst);
}

/// A database's single writer connection, its LiteFS position, and the queue of writes
/// waiting while it is busy. One per [`ReplicatedDb`](crate::ReplicatedDb).
pub(crate) struct Committer {
    /// The writer connection; replaced when the handle reopens its database (after the
    /// LiteFS mount went away under it). A write in flight keeps the one it began on.
    writer: RwLock<DatabaseConnection>,
    pub(crate) position: Option<PositionTracker>,
    /// `None` while the writer is idle; while a lone write or a leader owns it, the tickets
    /// queued behind it.
    busy: Mutex<Option<VecDeque<Ticket>>>,
}

impl Committer {
    pub(crate) fn new(writer: DatabaseConnection, position: Option<PositionTracker>) -> Arc<Self> {
        Arc::new(Committer {
            writer: RwLock::new(writer),
            position,
            busy: Mutex::new(None),
        })
    }

    /// The writer connection now.
    pub(crate) fn writer(&self) -> DatabaseConnection {
        self.writer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `writer` in place of the writer connection; returns the old one.
    pub(crate) fn replace_writer(&self, writer: DatabaseConnection) -> DatabaseConnection {
        std::mem::replace(
            &mut *self.writer.write().unwrap_or_else(PoisonError::into_inner),
            writer,
        )
    }

    /// Identifies this committer for [`writing`] while it lives.
    fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    fn lock(&self) -> MutexGuard<'_, Option<VecDeque<Ticket>>> {
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next ticket for a running batch.
    fn pop(&self) -> Option<Ticket> {
        self.lock().as_mut()?.pop_front()
    }

    /// The next ticket for a new batch; with none, the writer is idle again.
    fn next_or_retire(&self) -> Option<Ticket> {
        let mut busy = self.lock();
        let ticket = busy.as_mut()?.pop_front();
        if ticket.is_none() {
            *busy = None;
        }
        ticket
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.lock().as_ref().map_or(0, VecDeque::len)
    }
}

/// True when the current task is inside a write on `committer`: another write from it
/// would wait for its own transaction.
pub(crate) fn writing(committer: &Arc<Committer>) -> bool {
    WRITING
        .try_with(|id| *id == committer.id())
        .unwrap_or(false)
}

/// Runs `write` as the current task's write on `committer` (see [`writing`]).
pub(crate) async fn as_writing<F: Future>(committer: &Arc<Committer>, write: F) -> F::Output {
    WRITING.scope(committer.id(), write).await
}

/// A queued write: where the leader sends its turn (or the error that prevents it).
type Ticket = oneshot::Sender<Result<Turn, ExecError>>;

/// A write's turn in a batch: the shared transaction, and later the commit's outcome.
pub(crate) struct Turn {
    lease: Lease,
    committed: oneshot::Receiver<Result<u64, ExecError>>,
}

/// The batch's transaction lent to one caller. Returned by [`Lease::finish`], or on drop
/// (panic, cancellation) as [`Ran::Abandoned`]; the transaction's reference is always let
/// go before the leader hears back, so the leader ends up its only owner.
struct Lease {
    txn: Option<Arc<DatabaseTransaction>>,
    done: Option<oneshot::Sender<Ran>>,
}

/// How a write's work ended.
enum Ran {
    Ok,
    /// Failed; `fatal` holds the error when it ends the transaction (this node is not the
    /// primary, or its database's I/O failed).
    Failed {
        fatal: Option<ExecError>,
    },
    /// Panicked or was cancelled.
    Abandoned,
}

impl Lease {
    fn txn(&self) -> &DatabaseTransaction {
        self.txn
            .as_deref()
            .expect("a lease holds its transaction until it ends")
    }

    fn finish(mut self, ran: Ran) {
        self.give_back(ran);
    }

    fn give_back(&mut self, ran: Ran) {
        self.txn = None;
        if let Some(done) = self.done.take() {
            let _ = done.send(ran);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back(Ran::Abandoned);
    }
}

/// How a write enters: alone on an idle writer, or queued behind a busy one.
pub(crate) enum Entry {
    /// Run as a single transaction; dropping the guard hands the writer to the queue.
    Alone(Alone),
    /// Wait for a turn in a batch ([`follow`]).
    Queued(oneshot::Receiver<Result<Turn, ExecError>>),
}

/// Owns an idle writer for one lone write; on drop, starts a leader for whatever queued.
pub(crate) struct Alone {
    owner: Option<Arc<Committer>>,
}

impl Drop for Alone {
    fn drop(&mut self) {
        let Some(committer) = self.owner.take() else {
            return;
        };
        let mut busy = committer.lock();
        if busy.as_ref().is_some_and(|q| !q.is_empty()) {
            drop(busy);
            spawn_leader(committer);
        } else {
            *busy = None;
        }
    }
}

/// Runs `calls`, the writes of one request polled together (a batch from a replica), so that
/// they share a transaction even when they find the writer idle: the first of them then
/// queues and starts a leader instead of running alone, and the others, entering in the same
/// poll, join its batch. Without this a request's first call would be a LiteFS transaction of
/// its own, and a request's calls would cost two transactions instead of one.
pub(crate) async fn together<F: Future>(calls: F) -> F::Output {
    TOGETHER.scope((), calls).await
}

/// Claims `committer`'s writer for one write, or queues behind its current owner.
pub(crate) fn enter(committer: &Arc<Committer>) -> Entry {
    if !ENABLED.load(Ordering::Relaxed) {
        return Entry::Alone(Alone { owner: None });
    }
    let mut busy = committer.lock();
    match busy.as_mut() {
        Some(queue) => {
            let (ticket, turn) = oneshot::channel();
            queue.push_back(ticket);
            Entry::Queued(turn)
        }
        None if TOGETHER.try_with(|()| ()).is_ok() => {
            let (ticket, turn) = oneshot::channel();
            *busy = Some(VecDeque::from([ticket]));
            drop(busy);
            spawn_leader(committer.clone());
            Entry::Queued(turn)
        }
        None => {
            *busy = Some(VecDeque::new());
            Entry::Alone(Alone {
                owner: Some(committer.clone()),
            })
        }
    }
}

/// Waits for the turn, runs `work` in the batch's transaction, waits for the commit,
/// telling `progress` how far it got. Giving up before the turn comes writes nothing: the
/// leader finds the turn unclaimed and goes on.
pub(crate) async fn follow<T, F>(
    turn: oneshot::Receiver<Result<Turn, ExecError>>,
    progress: &Progress,
    work: F,
) -> Result<(T, u64), ExecError>
where
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFut<'t, Result<T, ExecError>>,
{
    let Turn { lease, committed } = turn.await.map_err(|_| stopped())??;
    progress.working();
    match work(lease.txn()).await {
        Ok(value) => {
            lease.finish(Ran::Ok);
            // Its savepoint is released: the batch commits it, whatever this caller does.
            progress.committing();
            let txid = committed.await.map_err(|_| stopped())??;
            Ok((value, txid))
        }
        Err(e) => {
            let fatal = e.ends_the_transaction().then(|| e.share());
            lease.finish(Ran::Failed { fatal });
            Err(e)
        }
    }
}

fn stopped() -> ExecError {
    ExecError::Db(DbErr::Custom(
        "the primary stopped before this write was committed (is it shutting down?)".into(),
    ))
}

fn spawn_leader(committer: Arc<Committer>) {
    // Made before the task first runs, so that dropping the task unpolled still frees the
    // writer.
    let leading = Leading {
        committer,
        finished: false,
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn(lead(leading))),
        // No runtime left to commit on: the queued writes fail with `stopped`.
        Err(_) => drop(leading),
    }
}

/// Ends the busy state if the leader dies (panic, runtime shutdown): its callers then fail
/// instead of waiting forever, and later writes find the writer idle.
struct Leading {
    committer: Arc<Committer>,
    finished: bool,
}

impl Drop for Leading {
    fn drop(&mut self) {
        if !self.finished {
            *self.committer.lock() = None;
        }
    }
}

async fn lead(mut leading: Leading) {
    while let Some(first) = leading.committer.next_or_retire() {
        leader::run_batch(&leading.committer, first)
            .instrument(crate::observe::primary::commit_span(false))
            .await;
    }
    leading.finished = true;
}

mod leader;

#[cfg(test)]
mod tests;
