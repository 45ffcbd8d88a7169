//! The local LiteFS position (`<db>-pos`), and one tracker per database that wakes every
//! caller waiting for a TXID.
//!
//! The tracker reads the file only while someone waits, once per tick for all of them, so
//! a hundred waiting writes cost what one does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::litefs::{self, EVENT_TX, Event, Pos, TxEventData};

/// How often the tracker re-reads `-pos` while callers wait. Reading it through FUSE costs
/// about 0.5 ms, and LiteFS replicates in about 2 ms on a fast network.
const TICK: Duration = Duration::from_millis(1);
/// The same while LiteFS's `/events` stream reports this database's transactions: they wake
/// waiters at once, and the file is only a safety net.
const EVENTS_TICK: Duration = Duration::from_millis(20);

/// Follows one database's `-pos` file. Cheap to clone; the polling task ends with the last
/// clone.
#[derive(Clone, Debug)]
pub struct PositionTracker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    pos: watch::Sender<Pos>,
    waiters: AtomicUsize,
    wake: Notify,
    /// LiteFS's `/events` stream is connected and feeding this tracker ([`TxFeed`]).
    events: AtomicBool,
    /// The latest positions this node went through, oldest first: their post-apply
    /// checksums tell whether another node's position is on this node's history.
    history: Mutex<std::collections::VecDeque<Pos>>,
}

/// Positions kept in [`Inner::history`]: a few seconds of transactions under load.
const HISTORY: usize = 4096;

impl Inner {
    /// Makes `pos` the current position, waking waiters if it changed. A position this node
    /// already went through (a `tx` event arriving after a read of the file showed later
    /// ones) is not news: the position does not go back for it. One at or below the current
    /// that this node never went through is another history (LiteFS replaced this node's):
    /// what was kept of the old one proves nothing any more.
    fn publish(&self, pos: Pos) {
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = history.back()
            && pos.txid <= last.txid
        {
            if history.contains(&pos) {
                return;
            }
            history.clear();
        }
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(pos);
        self.pos.send_replace(pos);
    }
}

/// A wait that ended before the position was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimedOut {
    /// The position when the wait gave up.
    pub last: Pos,
    /// How long it waited.
    pub waited: Duration,
}

impl PositionTracker {
    /// Tracks the `-pos` file beside database `db`.
    pub fn new(db: &std::path::Path) -> Self {
        let path = litefs::pos_path(db);
        let first = litefs::read_pos(&path).unwrap_or_default();
        let (pos, _) = watch::channel(first);
        let inner = Arc::new(Inner {
            path,
            pos,
            waiters: AtomicUsize::new(0),
            wake: Notify::new(),
            events: AtomicBool::new(false),
            history: Mutex::new(std::collections::VecDeque::from([first])),
        });
        tokio::spawn(poll(Arc::downgrade(&inner)));
        PositionTracker { inner }
    }

    /// Reads the file now. It blocks the calling thread while LiteFS does not answer (paused,
    /// or stuck); async code calls [`read_now`](Self::read_now).
    pub fn read(&self) -> std::io::Result<Pos> {
        let pos = litefs::read_pos(&self.inner.path)?;
        self.inner.publish(pos);
        Ok(pos)
    }

    /// Reads the file now, off the runtime's threads: a frozen mount holds this call, not
    /// the runtime.
    pub async fn read_now(&self) -> std::io::Result<Pos> {
        let path = self.inner.path.clone();
        let pos = litefs::off_runtime(move || litefs::read_pos(&path)).await?;
        self.inner.publish(pos);
        Ok(pos)
    }

    /// A transaction LiteFS reports applied here (a `tx` event): waiters up to it wake now,
    /// without reading the file. Like a read of the file, it is the position as of now (which
    /// can move back when a failover replaces this replica's history).
    pub fn observed(&self, pos: Pos) {
        self.inner.publish(pos);
    }

    /// The TXID of a transaction on the primary that read `pos` under the write lock: the
    /// next one when it wrote; otherwise the current one. This node's own earlier commits
    /// are in `pos`: each was confirmed there ([`PositionTracker::confirm`]) before the
    /// writer moved on.
    pub(crate) fn txid_for(&self, pos: Pos, wrote: bool) -> u64 {
        pos.txid + u64::from(wrote)
    }

    /// Whether LiteFS recorded the commit this node just made as TXID `txid`: its position
    /// reached it within `wait`. LiteFS records a commit before SQLite's `COMMIT` returns, so
    /// on a real mount the first read answers; a position that stays below means SQLite
    /// committed on a connection LiteFS no longer follows (see
    /// [`ExecError::Unrecorded`](crate::primary::executor::ExecError)).
    pub(crate) async fn confirm(&self, txid: u64, wait: Duration) -> Result<(), Pos> {
        match self.read_now().await {
            Ok(pos) if pos.txid >= txid => return Ok(()),
            _ => {}
        }
        self.wait_for(txid, wait)
            .await
            .map(|_| ())
            .map_err(|t| t.last)
    }

    /// The position as last read.
    pub fn last(&self) -> Pos {
        *self.inner.pos.borrow()
    }

    /// Whether this node went through `pos` — the same TXID with the same post-apply
    /// checksum — among its latest positions: a node at `pos` then holds this node's history
    /// up to it. `false` when this node never saw that TXID, or saw it with another checksum
    /// (another history).
    pub fn went_through(&self, pos: Pos) -> bool {
        let history = self
            .inner
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(first) = history.front() else {
            return false;
        };
        // Kept in TXID order, one entry per position seen: find it by its offset.
        let at = pos.txid.checked_sub(first.txid).map(|d| d as usize);
        match at.and_then(|i| history.get(i)) {
            Some(seen) if seen.txid == pos.txid => *seen == pos,
            _ => history.iter().any(|seen| *seen == pos),
        }
    }

    /// A receiver of every change of the position (a replica reporting it to the primary).
    pub(crate) fn subscribe(&self) -> watch::Receiver<Pos> {
        self.inner.pos.subscribe()
    }

    /// Waits until the local TXID is at least `txid`.
    pub async fn wait_for(&self, txid: u64, timeout: Duration) -> Result<Pos, WaitTimedOut> {
        let start = Instant::now();
        // While LiteFS's events feed the position it is current: no read of the file (a FUSE
        // round trip on a real mount) for a write whose transaction was already reported.
        let last = self.last();
        if self.inner.events.load(Ordering::Relaxed) && last.txid >= txid {
            return Ok(last);
        }
        if let Ok(pos) = self.read_now().await
            && pos.txid >= txid
        {
            return Ok(pos);
        }
        let _waiting = Waiting::new(&self.inner);
        let mut rx = self.inner.pos.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|p| p.txid >= txid)).await {
            Ok(Ok(pos)) => Ok(*pos),
            _ => Err(WaitTimedOut {
                last: self.last(),
                waited: start.elapsed(),
            }),
        }
    }
}

impl PositionTracker {
    /// Waits until the position differs from `from` (LiteFS applied a transaction, or
    /// replaced this replica's history), or `timeout` passes; returns the position then.
    pub async fn wait_for_change(&self, from: Pos, timeout: Duration) -> Pos {
        let _waiting = Waiting::new(&self.inner);
        let mut rx = self.inner.pos.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|p| *p != from)).await;
        self.last()
    }
}

/// The trackers that LiteFS's `tx` events feed, by database name. The role watcher reads
/// `/events` and hands every event here; cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct TxFeed(Arc<Mutex<Feed>>);

#[derive(Debug, Default)]
struct Feed {
    /// The `/events` stream is connected.
    live: bool,
    trackers: Vec<(String, PositionTracker)>,
}

impl TxFeed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Feed> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds `tracker` the transactions of database `db` (its name in the mount).
    pub(crate) fn add(&self, db: String, tracker: PositionTracker) {
        let mut feed = self.lock();
        tracker.inner.events.store(feed.live, Ordering::Relaxed);
        feed.trackers.push((db, tracker));
    }

    /// The stream connected (`true`) or broke: trackers poll the file slowly or quickly.
    pub(crate) fn set_live(&self, live: bool) {
        let mut feed = self.lock();
        feed.live = live;
        for (_, tracker) in &feed.trackers {
            tracker.inner.events.store(live, Ordering::Relaxed);
        }
    }

    /// Hands a `tx` event to the trackers of its database.
    pub(crate) fn on_event(&self, event: &Event) {
        if event.kind != EVENT_TX {
            return;
        }
        let pos = event
            .data
            .clone()
            .and_then(|d| serde_json::from_value::<TxEventData>(d).ok())
            .and_then(|d| d.pos());
        let (Some(db), Some(pos)) = (&event.db, pos) else {
            return;
        };
        for (name, tracker) in &self.lock().trackers {
            if name == db {
                tracker.observed(pos);
            }
        }
    }
}

/// Counts a waiter for as long as it lives, so the poller runs only while needed.
struct Waiting<'a>(&'a Inner);

impl<'a> Waiting<'a> {
    fn new(inner: &'a Inner) -> Self {
        if inner.waiters.fetch_add(1, Ordering::SeqCst) == 0 {
            inner.wake.notify_one();
        }
        Waiting(inner)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn poll(inner: std::sync::Weak<Inner>) {
    let mut failing = false;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong.waiters.load(Ordering::SeqCst) == 0 {
            // Sleep until a waiter arrives; re-check now and then so a dropped tracker ends us.
            let _ = tokio::time::timeout(Duration::from_secs(1), strong.wake.notified()).await;
            continue;
        }
        let path = strong.path.clone();
        drop(strong);
        let read = litefs::off_runtime(move || litefs::read_pos(&path)).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        match read {
            Ok(pos) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(path = %strong.path.display(), "the LiteFS position can be read again");
                }
                strong.publish(pos)
            }
            // Once when it starts failing, not at every tick.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(path = %strong.path.display(), error = %e, "cannot read LiteFS position")
            }
            Err(_) => {}
        }
        let tick = match strong.events.load(Ordering::Relaxed) {
            true => EVENTS_TICK,
            false => TICK,
        };
        drop(strong);
        tokio::time::sleep(tick).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &std::path::Path, txid: u64) {
        std::fs::write(
            litefs::pos_path(path),
            Pos { txid, checksum: 7 }.to_string(),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_commit_is_confirmed_once_the_position_reaches_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        write(&db, 5);
        let t = PositionTracker::new(&db);
        assert_eq!(
            t.confirm(6, Duration::from_millis(20))
                .await
                .unwrap_err()
                .txid,
            5
        );
        write(&db, 6);
        assert!(t.confirm(6, Duration::from_millis(20)).await.is_ok());
    }

    #[tokio::test]
    async fn a_transaction_that_wrote_nothing_answers_the_position_even_below_an_earlier_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        write(&db, 9);
        let t = PositionTracker::new(&db);
        assert_eq!(t.txid_for(t.read().unwrap(), true), 10);
        // A new primary term on a shorter history: LiteFS's position is what holds.
        write(&db, 7);
        assert_eq!(t.txid_for(t.read().unwrap(), false), 7);
    }

    #[tokio::test]
    async fn a_reached_position_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        write(&db, 5);
        let t = PositionTracker::new(&db);
        assert_eq!(
            t.wait_for(5, Duration::from_millis(1)).await.unwrap().txid,
            5
        );
    }

    #[tokio::test]
    async fn every_waiter_wakes_when_the_file_advances() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        write(&db, 1);
        let t = PositionTracker::new(&db);
        let waits: Vec<_> = (0..20)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { t.wait_for(3, Duration::from_secs(5)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        write(&db, 3);
        for w in waits {
            assert_eq!(w.await.unwrap().unwrap().txid, 3);
        }
    }

    #[tokio::test]
    async fn a_wait_past_its_deadline_reports_the_last_position() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        write(&db, 2);
        let t = PositionTracker::new(&db);
        let err = t.wait_for(9, Duration::from_millis(20)).await.unwrap_err();
        assert_eq!(err.last.txid, 2);
    }

    #[tokio::test]
    async fn a_missing_file_is_position_zero() {
        let dir = tempfile::tempdir().unwrap();
        let t = PositionTracker::new(&dir.path().join("none.db"));
        assert_eq!(t.read().unwrap(), Pos::default());
    }

    fn tx_event(db: &str, txid: u64) -> Event {
        serde_json::from_value(serde_json::json!({
            "type": "tx",
            "db": db,
            "data": {"txID": format!("{txid:016x}"), "postApplyChecksum": "00000000000000ff"},
        }))
        .unwrap()
    }

    /// A tracker of `app.db` whose file says TXID 1, fed by a live event stream.
    fn fed_tracker() -> (tempfile::TempDir, PositionTracker, TxFeed) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        write(&db, 1);
        let t = PositionTracker::new(&db);
        let feed = TxFeed::default();
        feed.add("app.db".into(), t.clone());
        feed.set_live(true);
        (dir, t, feed)
    }

    #[tokio::test]
    async fn a_tx_event_moves_the_position_at_once() {
        let (_dir, t, feed) = fed_tracker();
        let changes = t.inner.pos.subscribe();
        feed.on_event(&tx_event("app.db", 4));
        assert!(changes.has_changed().unwrap());
        assert_eq!((t.last().txid, t.last().checksum), (4, 0xff));
    }

    #[tokio::test]
    async fn a_transaction_reported_after_a_later_read_does_not_move_the_position_back() {
        let (_dir, t, feed) = fed_tracker();
        feed.on_event(&tx_event("app.db", 4));
        feed.on_event(&tx_event("app.db", 5));
        feed.on_event(&tx_event("app.db", 4));
        assert_eq!(t.last().txid, 5);
        assert!(t.went_through(t.last()));
    }

    #[tokio::test]
    async fn a_lower_position_never_gone_through_starts_another_history() {
        let (_dir, t, feed) = fed_tracker();
        feed.on_event(&tx_event("app.db", 5));
        let abandoned = t.last();
        // LiteFS replaced this node's history: TXID 3 with a checksum it never had.
        t.observed(Pos {
            txid: 3,
            checksum: 1,
        });
        assert_eq!(t.last().txid, 3);
        assert!(!t.went_through(abandoned));
    }

    #[tokio::test]
    async fn a_tx_event_of_another_database_is_ignored() {
        let (_dir, t, feed) = fed_tracker();
        feed.on_event(&tx_event("other.db", 9));
        assert_eq!(t.last().txid, 1);
    }

    #[tokio::test]
    async fn a_wait_for_a_reported_transaction_returns_without_reading_the_file() {
        let (_dir, t, feed) = fed_tracker();
        feed.on_event(&tx_event("app.db", 5));
        // The file still says 1: only the event can answer.
        assert_eq!(
            t.wait_for(5, Duration::from_millis(1)).await.unwrap().txid,
            5
        );
    }
}
