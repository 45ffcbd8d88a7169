//! Where this node stands: standalone, LiteFS primary, replica of a known primary, or a
//! replica with no primary — followed while the app runs.
//!
//! With LiteFS's HTTP API configured the role comes from `GET /info` and is followed on
//! `GET /events`; otherwise from the mount's files. A missing `.primary` alone is never
//! taken as "primary": LiteFS also removes it on a replica that lost its primary, so the
//! file reader requires `.lag` to read zero, twice, a few milliseconds apart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use crate::litefs::position::{PositionTracker, TxFeed};
use crate::litefs::{self, EVENT_INIT, EVENT_PRIMARY_CHANGE, Event, NodeInfo, PrimaryEventData};

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
    /// Holds the sender of a role that never changes.
    _fixed: Option<Arc<watch::Sender<Role>>>,
}

/// How often the file reader re-reads `.primary` and `.lag`, and the HTTP reader polls
/// `/info` while `/events` is down.
const POLL: Duration = Duration::from_millis(250);
/// Gap between the two `.lag` reads that confirm a primary.
const CONFIRM_GAP: Duration = Duration::from_millis(5);

impl RoleWatch {
    /// A standalone node: the role never changes.
    pub fn standalone() -> Self {
        let (tx, rx) = watch::channel(Role::Standalone);
        RoleWatch {
            rx,
            refresh: Arc::new(Notify::new()),
            feed: TxFeed::default(),
            _fixed: Some(Arc::new(tx)),
        }
    }

    /// Follows a LiteFS mount, through its HTTP API when `http` is given.
    pub async fn litefs(mount: PathBuf, http: Option<String>) -> Self {
        let files = FileSource { mount };
        let first = match &http {
            Some(url) => match fetch_info(&http_client(), url).await {
                Ok(info) => Role::from_flags(info.is_primary, &info.primary.hostname),
                Err(_) => files.read().await,
            },
            None => files.read().await,
        };
        let (tx, rx) = watch::channel(first);
        let refresh = Arc::new(Notify::new());
        let task_refresh = refresh.clone();
        let feed = TxFeed::default();
        match http {
            Some(url) => tokio::spawn(follow_http(url, files, tx, task_refresh, feed.clone())),
            None => tokio::spawn(follow_files(files, tx, task_refresh)),
        };
        RoleWatch {
            rx,
            refresh,
            feed,
            _fixed: None,
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

/// Reads the role from `.primary` and `.lag`.
struct FileSource {
    mount: PathBuf,
}

impl FileSource {
    async fn read(&self) -> Role {
        let primary_file = self.mount.join(litefs::PRIMARY_FILE);
        let lag_file = self.mount.join(litefs::LAG_FILE);
        let read = || {
            let primary = litefs::read_primary(&primary_file);
            let lag = litefs::read_lag(&lag_file);
            (primary, lag)
        };
        match read() {
            (Ok(Some(host)), _) if !host.is_empty() => Role::Replica { primary: host },
            (Ok(_), Ok(Some(0))) => {
                // Absent `.primary` and zero lag: confirm, since a replica that just lost
                // its primary may read zero lag for a moment.
                tokio::time::sleep(CONFIRM_GAP).await;
                match read() {
                    (Ok(None), Ok(Some(0))) => Role::Primary,
                    (Ok(Some(host)), _) if !host.is_empty() => Role::Replica { primary: host },
                    _ => Role::NoPrimary,
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(mount = %self.mount.display(), error = %e, "cannot read the LiteFS role files");
                Role::NoPrimary
            }
            _ => Role::NoPrimary,
        }
    }
}

async fn follow_files(files: FileSource, tx: watch::Sender<Role>, refresh: Arc<Notify>) {
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(POLL) => {}
            _ = refresh.notified() => {}
        }
        let role = files.read().await;
        publish(&tx, role);
    }
}

fn publish(tx: &watch::Sender<Role>, role: Role) {
    tx.send_if_modified(|cur| {
        if *cur != role {
            tracing::info!(from = %cur, to = %role, "LiteFS role changed");
            *cur = role;
            true
        } else {
            false
        }
    });
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}

async fn fetch_info(client: &reqwest::Client, base: &str) -> reqwest::Result<NodeInfo> {
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
    files: FileSource,
    tx: watch::Sender<Role>,
    refresh: Arc<Notify>,
    feed: TxFeed,
) {
    let client = http_client();
    let events_url = format!("{}/events", base.trim_end_matches('/'));
    loop {
        if tx.is_closed() {
            return;
        }
        match client
            .get(&events_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
        {
            Ok(resp) => {
                let mut stream = resp.bytes_stream();
                let mut buf = Vec::new();
                feed.set_live(true);
                loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = refresh.notified() => {
                            if let Ok(info) = fetch_info(&client, &base).await {
                                publish(&tx, Role::from_flags(info.is_primary, &info.primary.hostname));
                            }
                        }
                        chunk = stream.next() => {
                            let Some(Ok(chunk)) = chunk else { break };
                            buf.extend_from_slice(&chunk);
                            while let Some(n) = buf.iter().position(|b| *b == b'\n') {
                                let line: Vec<u8> = buf.drain(..=n).collect();
                                let Ok(event) = serde_json::from_slice::<Event>(&line) else {
                                    continue;
                                };
                                feed.on_event(&event);
                                if let Some(role) = role_from_event(event) {
                                    publish(&tx, role);
                                }
                            }
                        }
                    }
                }
                feed.set_live(false);
            }
            Err(e) => {
                tracing::debug!(error = %e, "LiteFS /events unavailable");
                let role = match fetch_info(&client, &base).await {
                    Ok(info) => Role::from_flags(info.is_primary, &info.primary.hostname),
                    Err(_) => files.read().await,
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

fn role_from_event(event: Event) -> Option<Role> {
    if event.kind != EVENT_INIT && event.kind != EVENT_PRIMARY_CHANGE {
        return None;
    }
    let data: PrimaryEventData = serde_json::from_value(event.data?).ok()?;
    Some(Role::from_flags(data.is_primary, &data.hostname))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: &[u8]) -> Event {
        serde_json::from_slice(line).unwrap()
    }

    #[test]
    fn init_event_of_a_replica_names_the_primary() {
        let line = br#"{"type":"init","data":{"isPrimary":false,"hostname":"n1"}}"#;
        assert_eq!(
            role_from_event(event(line)),
            Some(Role::Replica {
                primary: "n1".into()
            })
        );
    }

    #[test]
    fn primary_change_without_hostname_means_no_primary() {
        let line = br#"{"type":"primaryChange","data":{"isPrimary":false}}"#;
        assert_eq!(role_from_event(event(line)), Some(Role::NoPrimary));
    }

    #[test]
    fn tx_events_do_not_change_the_role() {
        let line = br#"{"type":"tx","db":"app.db","data":{"txID":"0000000000000002"}}"#;
        assert_eq!(role_from_event(event(line)), None);
    }

    #[tokio::test]
    async fn absent_primary_file_with_growing_lag_is_not_primary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".lag"), litefs::format_lag(1200)).unwrap();
        let files = FileSource {
            mount: dir.path().into(),
        };
        assert_eq!(files.read().await, Role::NoPrimary);
    }

    #[tokio::test]
    async fn absent_primary_file_with_zero_lag_is_primary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".lag"), litefs::format_lag(0)).unwrap();
        let files = FileSource {
            mount: dir.path().into(),
        };
        assert_eq!(files.read().await, Role::Primary);
    }

    #[tokio::test]
    async fn a_mount_without_litefs_files_is_not_primary() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileSource {
            mount: dir.path().into(),
        };
        assert_eq!(files.read().await, Role::NoPrimary);
    }

    #[tokio::test]
    async fn primary_file_names_the_primary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".primary"), "n3\n").unwrap();
        let files = FileSource {
            mount: dir.path().into(),
        };
        assert_eq!(
            files.read().await,
            Role::Replica {
                primary: "n3".into()
            }
        );
    }
}
