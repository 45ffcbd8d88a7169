//! The local LiteFS position (`<db>-pos`), and one tracker per database that wakes every
//! caller waiting for a TXID.
//!
//! The tracker reads the file only while someone waits, once per tick for all of them, so
//! a hundred waiting writes cost what one does.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::litefs::{self, Pos};

/// How often the tracker re-reads `-pos` while callers wait. Reading it through FUSE costs
/// about 0.5 ms, and LiteFS replicates in about 2 ms on a fast network.
const TICK: Duration = Duration::from_millis(1);

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
        });
        tokio::spawn(poll(Arc::downgrade(&inner)));
        PositionTracker { inner }
    }

    /// Reads the file now.
    pub fn read(&self) -> std::io::Result<Pos> {
        let pos = litefs::read_pos(&self.inner.path)?;
        self.inner.pos.send_if_modified(|cur| {
            let newer = pos != *cur;
            if newer {
                *cur = pos;
            }
            newer
        });
        Ok(pos)
    }

    /// The position as last read.
    pub fn last(&self) -> Pos {
        *self.inner.pos.borrow()
    }

    /// Waits until the local TXID is at least `txid`.
    pub async fn wait_for(&self, txid: u64, timeout: Duration) -> Result<Pos, WaitTimedOut> {
        let start = Instant::now();
        if let Ok(pos) = self.read()
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
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong.waiters.load(Ordering::SeqCst) == 0 {
            // Sleep until a waiter arrives; re-check now and then so a dropped tracker ends us.
            let _ = tokio::time::timeout(Duration::from_secs(1), strong.wake.notified()).await;
            continue;
        }
        match litefs::read_pos(&strong.path) {
            Ok(pos) => {
                strong.pos.send_if_modified(|cur| {
                    let newer = pos != *cur;
                    if newer {
                        *cur = pos;
                    }
                    newer
                });
            }
            Err(e) => {
                tracing::warn!(path = %strong.path.display(), error = %e, "cannot read LiteFS position")
            }
        }
        drop(strong);
        tokio::time::sleep(TICK).await;
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
}
