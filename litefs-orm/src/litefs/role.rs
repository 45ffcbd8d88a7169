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
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

mod files;

use crate::litefs::position::{PositionTracker, TxFeed};
use crate::litefs::{EVENT_INIT, EVENT_PRIMARY_CHANGE, Event, NodeInfo, PrimaryEventData};
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
const POLL: Duration = Duration::from_millis(250);
/// How long connecting to `/events` and getting its headers may take.
const EVENTS_CONNECT: Duration = Duration::from_secs(2);
/// How long `/events` may stay silent before it is connected again.
const EVENTS_IDLE: Duration = Duration::from_secs(30);
/// Gap between the two `.lag` reads that confirm a primary.
const CONFIRM_GAP: Duration = Duration::from_millis(5);
/// How long a "replica of X" seen on `/events` after "no primary" is held before `/info`
/// confirms it. LiteFS sends a flap's two events in the same millisecond.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(75);

impl RoleWatch {
    /// A standalone node: the role never changes.
    pub fn standalone() -> Self {
        let (tx, rx) = watch::channel(Role::Standalone);
        RoleWatch {
            rx,
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
            refresh: Arc::new(Notify::new()),
            feed: TxFeed::default(),
            source: None,
            _fixed: None,
        };
        (watch, tx)
    }

    /// Follows a LiteFS mount, through its HTTP API when `http` is given.
    pub async fn litefs(mount: PathBuf, http: Option<String>) -> Self {
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
            )),
            None => tokio::spawn(follow_files(source.clone(), tx, task_refresh)),
        };
        RoleWatch {
            rx,
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

async fn follow_files(source: Arc<Source>, tx: watch::Sender<Role>, refresh: Arc<Notify>) {
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

/// Holds a "replica of X" that `/events` reports after "no primary" until it has lasted
/// [`DEBOUNCE`]: the events of a flap cancel each other, a real change comes out.
#[derive(Debug, Default)]
struct Debounce {
    pending: Option<(Role, Instant)>,
}

impl Debounce {
    /// Folds in a role `/events` reported, `current` being the published one; returns the
    /// role to publish now, if any.
    fn on_event(&mut self, current: &Role, role: Role, now: Instant) -> Option<Role> {
        let from_no_primary = *current == Role::NoPrimary || self.pending.is_some();
        match role {
            Role::Replica { .. } if from_no_primary => {
                if *current == role {
                    self.pending = None;
                    return None;
                }
                match &self.pending {
                    // The same change again: it keeps its first deadline.
                    Some((held, _)) if *held == role => {}
                    _ => self.pending = Some((role, now + DEBOUNCE)),
                }
                None
            }
            role => {
                self.pending = None;
                Some(role)
            }
        }
    }

    /// When the held change is due.
    fn due(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, at)| *at)
    }

    /// The held change, once due.
    fn take_due(&mut self, now: Instant) -> Option<Role> {
        match &self.pending {
            Some((_, at)) if *at <= now => self.pending.take().map(|(role, _)| role),
            _ => None,
        }
    }
}

/// Publishes `role` if it differs from the current one; a change is logged once.
fn publish(tx: &watch::Sender<Role>, role: Role) {
    tx.send_if_modified(|cur| {
        if *cur != role {
            tracing::info!(from = %cur, to = %role, "LiteFS role changed");
            crate::observe::primary::role_changed(&role);
            *cur = role;
            true
        } else {
            false
        }
    });
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}

/// LiteFS's `/info` at API base URL `base`, within 2 s.
pub(crate) async fn fetch_info(client: &reqwest::Client, base: &str) -> reqwest::Result<NodeInfo> {
    client
        .get(format!("{}/info", base.trim_end_matches('/')))
        .timeout(Duration::from_secs(2))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

/// Follows `/events`; while the stream is down, polls `/info`, and while LiteFS's API is
/// unreachable altogether, falls back to the files.
async fn follow_http(
    base: String,
    source: Arc<Source>,
    tx: watch::Sender<Role>,
    refresh: Arc<Notify>,
    feed: TxFeed,
) {
    let client = &source.client;
    let events_url = format!("{}/events", base.trim_end_matches('/'));
    loop {
        if tx.is_closed() {
            return;
        }
        let connect = tokio::time::timeout(EVENTS_CONNECT, client.get(&events_url).send());
        let connected = match connect.await {
            Err(_) => Err(format!("no answer within {EVENTS_CONNECT:?}")),
            Ok(sent) => sent
                .and_then(|r| r.error_for_status())
                .map_err(|e| e.to_string()),
        };
        match connected {
            Ok(resp) => {
                let mut stream = resp.bytes_stream();
                let mut buf = Vec::new();
                let mut debounce = Debounce::default();
                let mut idle_at = Instant::now() + EVENTS_IDLE;
                feed.set_live(true);
                loop {
                    let due = debounce.due();
                    tokio::select! {
                        _ = tx.closed() => return,
                        // A stream gone quiet may be a connection that died without a word
                        // (a half-open TCP connection): ask again; `init` restates the role.
                        () = tokio::time::sleep_until(idle_at) => {
                            tracing::debug!("LiteFS /events quiet for {EVENTS_IDLE:?}; reconnecting");
                            break;
                        }
                        _ = refresh.notified() => {
                            if let Ok(info) = fetch_info(client, &base).await {
                                debounce = Debounce::default();
                                publish(&tx, Role::from_flags(info.is_primary, &info.primary.hostname));
                            }
                        }
                        () = sleep_until(due) => {
                            if let Some(held) = debounce.take_due(Instant::now()) {
                                // It lasted: publish what `/info` says now (the held role
                                // when LiteFS's API does not answer).
                                let role = match fetch_info(client, &base).await {
                                    Ok(info) => Role::from_flags(info.is_primary, &info.primary.hostname),
                                    Err(_) => held,
                                };
                                publish(&tx, role);
                            }
                        }
                        chunk = stream.next() => {
                            let Some(Ok(chunk)) = chunk else { break };
                            idle_at = Instant::now() + EVENTS_IDLE;
                            buf.extend_from_slice(&chunk);
                            while let Some(n) = buf.iter().position(|b| *b == b'\n') {
                                let line: Vec<u8> = buf.drain(..=n).collect();
                                let Ok(event) = serde_json::from_slice::<Event>(&line) else {
                                    continue;
                                };
                                feed.on_event(&event);
                                if let Some(role) = role_from_event(event) {
                                    let current = tx.borrow().clone();
                                    if let Some(role) = debounce.on_event(&current, role, Instant::now()) {
                                        publish(&tx, role);
                                    }
                                }
                            }
                        }
                    }
                }
                feed.set_live(false);
            }
            Err(e) => {
                tracing::debug!(error = %e, "LiteFS /events unavailable");
                let role = match fetch_info(client, &base).await {
                    Ok(info) => Role::from_flags(info.is_primary, &info.primary.hostname),
                    Err(_) => source.files.read().await,
                };
                publish(&tx, role);
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(POLL) => {}
            _ = refresh.notified() => {}
        }
    }
}

/// Sleeps until `at`; forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn role_from_event(event: Event) -> Option<Role> {
    if event.kind != EVENT_INIT && event.kind != EVENT_PRIMARY_CHANGE {
        return None;
    }
    let data: PrimaryEventData = serde_json::from_value(event.data?).ok()?;
    Some(Role::from_flags(data.is_primary, &data.hostname))
}

#[cfg(test)]
mod tests;
