//! Where this node stands: standalone, LiteFS primary, replica of a known primary, or a
//! replica with no primary — followed while the app runs.
//!
//! With LiteFS's HTTP API configured the role comes from `GET /info` and is followed on
//! `GET /events`; otherwise from the mount's files. A missing `.primary` alone is never
//! taken as "primary": LiteFS also removes it on a replica that lost its primary, so the
//! file reader requires `.lag` to read zero, twice, a few milliseconds apart.
//!
//! A replica whose primary went away retries it once a second, and LiteFS's `/events` then
//! sends a `primaryChange` naming the old primary immediately followed by one naming none:
//! a flap, not a primary. So a change from "no primary" to "replica of X" seen on
//! `/events` is held for 75 ms and dropped if a "no primary" event follows; if none
//! does, `/info` is read to confirm it before it is published. Changes to "primary" and to
//! "no primary" are published at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

mod events;
mod files;

#[cfg(test)]
use crate::litefs::Event;
use crate::litefs::position::{PositionTracker, TxFeed};
#[cfg(test)]
use events::{DEBOUNCE, Debounce, role_from_event};
use events::{EVENTS_IDLE, follow_http};
pub(crate) use events::{fetch_info, http_client};
use files::FileSource;
#[cfg(test)]
use files::Health;

/// The role of this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// No LiteFS: one node on a plain SQLite file.
    Standalone,
    /// The LiteFS primary: writes run here.
    Primary,
    /// A replica; writes are forwarded to `primary` (its LiteFS hostname).
    Replica {
        /// The primary's `lease.hostname`.
        primary: String,
    },
    /// A replica that knows of no primary (an election is under way, or it lost contact).
    NoPrimary,
}

impl Role {
    /// True when writes may run on this node's own database.
    pub fn writes_locally(&self) -> bool {
        matches!(self, Role::Standalone | Role::Primary)
    }

    /// The primary's hostname when this node is a replica of a known primary.
    pub fn primary(&self) -> Option<&str> {
        match self {
            Role::Replica { primary } => Some(primary),
            _ => None,
        }
    }

    fn from_flags(is_primary: bool, hostname: &str) -> Role {
        match (is_primary, hostname) {
            (true, _) => Role::Primary,
            (false, "") => Role::NoPrimary,
            (false, h) => Role::Replica {
                primary: h.to_owned(),
            },
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Standalone => f.write_str("standalone"),
            Role::Primary => f.write_str("primary"),
            Role::Replica { primary } => write!(f, "replica of {primary}"),
            Role::NoPrimary => f.write_str("replica with no primary"),
        }
    }
}

/// Follows the role in the background; cheap to clone. The background task ends when the
/// last clone is dropped.
#[derive(Clone, Debug)]
pub struct RoleWatch {
    rx: watch::Receiver<Role>,
    /// How many times this node became the primary since the watch began: see
    /// [`RoleWatch::primary_term`].
    terms: Arc<AtomicU64>,
    refresh: Arc<Notify>,
    /// The position trackers fed by the `tx` events of `/events`.
    feed: TxFeed,
    /// Where a fresh look at the role reads it (`None` when standalone).
    source: Option<Arc<Source>>,
    /// Holds the sender of a role that never changes.
    _fixed: Option<Arc<watch::Sender<Role>>>,
}

/// Where the role is read: LiteFS's HTTP API when configured, else the mount's files.
#[derive(Debug)]
struct Source {
    files: FileSource,
    http: Option<String>,
    client: reqwest::Client,
}

impl Source {
    /// The role as LiteFS says it now, or `None` when neither its API nor its files answer.
    async fn read(&self) -> Option<Role> {
        if let Some(url) = &self.http
            && let Ok(info) = fetch_info(&self.client, url).await
        {
            return Some(Role::from_flags(info.is_primary, &info.primary.hostname));
        }
        self.files.try_read().await.ok()
    }
}

/// How often the file reader re-reads `.primary` and `.lag`, and the HTTP reader polls
/// `/info` while `/events` is down.
pub(crate) const POLL: Duration = Duration::from_millis(250);
/// Gap between the two `.lag` reads that confirm a primary.
const CONFIRM_GAP: Duration = Duration::from_millis(5);

impl RoleWatch {
    /// A standalone node: the role never changes.
    pub fn standalone() -> Self {
        let (tx, rx) = watch::channel(Role::Standalone);
        RoleWatch {
            rx,
            terms: Arc::default(),
            refresh: Arc::new(Notify::new()),
            feed: TxFeed::default(),
            source: None,
            _fixed: Some(Arc::new(tx)),
        }
    }

    /// A role set by hand through the returned sender, for tests.
    #[cfg(test)]
    pub(crate) fn manual(role: Role) -> (Self, watch::Sender<Role>) {
        let (tx, rx) = watch::channel(role);
        let watch = RoleWatch {
            rx,
            terms: Arc::default(),
            refresh: Arc::new(Notify::new()),
            feed: TxFeed::default(),
            source: None,
            _fixed: None,
        };
        (watch, tx)
    }

    /// Follows a LiteFS mount, through its HTTP API when `http` is given.
    pub async fn litefs(mount: PathBuf, http: Option<String>) -> Self {
        Self::following(mount, http, EVENTS_IDLE).await
    }

    /// [`litefs`](Self::litefs), reconnecting to `/events` after it stays silent for `idle`.
    async fn following(mount: PathBuf, http: Option<String>, idle: Duration) -> Self {
        let source = Arc::new(Source {
            files: FileSource::new(mount),
            http,
            client: http_client(),
        });
        let first = match source.read().await {
            Some(role) => role,
            None => source.files.read().await,
        };
        let (tx, rx) = watch::channel(first);
        let tx = Publisher {
            tx,
            terms: Arc::default(),
        };
        let terms = tx.terms.clone();
        let refresh = Arc::new(Notify::new());
        let task_refresh = refresh.clone();
        let feed = TxFeed::default();
        match source.http.clone() {
            Some(url) => tokio::spawn(follow_http(
                url,
                source.clone(),
                tx,
                task_refresh,
                feed.clone(),
                idle,
            )),
            None => tokio::spawn(follow_files(source.clone(), tx, task_refresh)),
        };
        RoleWatch {
            rx,
            terms,
            refresh,
            feed,
            source: Some(source),
            _fixed: None,
        }
    }

    /// Reads the role from LiteFS now (`/info`, or the files), rather than as last seen;
    /// `None` when LiteFS cannot be asked (its API is down and its files unreadable, as when
    /// the mount went away). What it reads is not published: the watcher follows changes.
    pub async fn check(&self) -> Option<Role> {
        match &self.source {
            Some(source) => source.read().await,
            None => Some(self.current()),
        }
    }

    /// The role as last seen.
    pub fn current(&self) -> Role {
        self.rx.borrow().clone()
    }

    /// How many times this node became the LiteFS primary since the watch began (0 when it
    /// started as the primary and stayed so). Each time LiteFS takes the lease it has just
    /// recovered the database under the app's open connections — rolled back a journal,
    /// checkpointed and truncated the WAL, rewritten the shared-memory index — even when it
    /// takes back a lease it had a moment before (after a pause, or a cut from its lease):
    /// writes of a new term need connections opened in it.
    ///
    /// ```
    /// let role = litefs_orm::role::RoleWatch::standalone();
    /// assert_eq!(role.primary_term(), 0);
    /// ```
    pub fn primary_term(&self) -> u64 {
        self.terms.load(Ordering::SeqCst)
    }

    /// Starts a new primary term by hand, for tests of what a new term does.
    #[cfg(test)]
    pub(crate) fn begin_term(&self) {
        self.terms.fetch_add(1, Ordering::SeqCst);
    }

    /// Feeds `tracker` the transactions LiteFS's `/events` stream reports applied to
    /// database `db` (its file name in the mount), so that waiters wake at once instead of at
    /// the tracker's next read of `-pos`. Without the HTTP API, nothing is fed and the
    /// tracker reads the file as before.
    ///
    /// ```no_run
    /// # async fn run() {
    /// use litefs_orm::position::PositionTracker;
    /// use litefs_orm::role::RoleWatch;
    /// let role = RoleWatch::litefs("/litefs".into(), Some("http://127.0.0.1:20202".into())).await;
    /// let tracker = PositionTracker::new(std::path::Path::new("/litefs/app.db"));
    /// role.follow_transactions("app.db", tracker.clone());
    /// let reached = tracker.wait_for(42, std::time::Duration::from_secs(5)).await;
    /// # }
    /// ```
    pub fn follow_transactions(&self, db: impl Into<String>, tracker: PositionTracker) {
        self.feed.add(db.into(), tracker);
    }

    /// Asks the background task to re-read the role now (after a "not primary" answer).
    pub fn refresh(&self) {
        self.refresh.notify_one();
    }

    /// Waits until the role differs from `from`, or `timeout` passes; returns the role then.
    pub async fn changed_from(&self, from: &Role, timeout: Duration) -> Role {
        let mut rx = self.rx.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|r| r != from)).await;
        rx.borrow().clone()
    }

    /// Waits until the role differs from `from`; never returns if it does not change.
    pub(crate) async fn until_changed(&self, from: &Role) {
        let mut rx = self.rx.clone();
        if rx.wait_for(|r| r != from).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until a primary is known (this node or another), or `timeout` passes.
    pub async fn wait_for_primary(&self, timeout: Duration) -> Option<Role> {
        let mut rx = self.rx.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|r| *r != Role::NoPrimary)).await {
            Ok(Ok(role)) => Some(role.clone()),
            _ => None,
        }
    }
}

async fn follow_files(source: Arc<Source>, tx: Publisher, refresh: Arc<Notify>) {
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(POLL) => {}
            _ = refresh.notified() => {}
        }
        let role = source.files.read().await;
        publish(&tx, role);
    }
}

/// Where the watcher publishes the role, counting the primary terms as it goes.
#[derive(Debug)]
pub(super) struct Publisher {
    tx: watch::Sender<Role>,
    terms: Arc<AtomicU64>,
}

impl Publisher {
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn closed(&self) {
        self.tx.closed().await
    }

    fn current(&self) -> Role {
        self.tx.borrow().clone()
    }
}

/// Publishes `role` if it differs from the current one; a change is logged once, and a
/// change to primary begins a new primary term.
fn publish(tx: &Publisher, role: Role) {
    tx.tx.send_if_modified(|cur| {
        if *cur != role {
            tracing::info!(from = %cur, to = %role, "LiteFS role changed");
            crate::observe::primary::role_changed(&role);
            if role == Role::Primary {
                tx.terms.fetch_add(1, Ordering::SeqCst);
            }
            *cur = role;
            true
        } else {
            false
        }
    });
}

#[cfg(test)]
mod tests;
