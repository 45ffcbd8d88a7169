//! State shared by the cluster handle, the primary's watcher, the replicators and the HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use super::fuse::Trusted;
use super::options::JournalMode;
use litefs_orm::litefs::{
    EVENT_INIT, EVENT_PRIMARY_CHANGE, EVENT_TX, Event, MountPaths, NodeInfo, Pos, PrimaryEventData,
    PrimaryInfo,
};

/// Locks a mutex, ignoring poisoning (a panicking test must not wedge the stand-in).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the workers of one cluster share.
pub(crate) struct Shared {
    pub db_name: String,
    pub journal_mode: JournalMode,
    pub poll_interval: Duration,
    pub stage_dir: PathBuf,
    pub cluster_id: String,
    pub nodes: Vec<NodeShared>,
    pub role: Mutex<Role>,
    /// The primary's latest position, published by the watcher after each bump.
    pub primary_pos: watch::Sender<PrimaryPos>,
    pub paused: AtomicBool,
    pub delay: Mutex<Duration>,
    pub violations: Mutex<Vec<String>>,
    /// Bumped by `sync` to ask the watcher for one full check of `data_version`.
    pub flush_requested: AtomicU64,
    /// The highest request the watcher has answered.
    pub flush_done: AtomicU64,
    /// With [`ReplicaWrites::Refused`](super::ReplicaWrites::Refused): the replicators'
    /// threads, which the mounts let write a replica.
    pub trusted: Option<Arc<Trusted>>,
}

/// Which node is primary; `generation` grows at every role change.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Role {
    pub primary: Option<usize>,
    pub generation: u64,
}

/// A position of the primary and what the `tx` event says about it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PrimaryPos {
    pub generation: u64,
    pub pos: Pos,
    /// When the watcher bumped the TXID (replication delay counts from here).
    pub bumped_at: Instant,
    pub page_size: u32,
    pub commit: u32,
    pub timestamp_ms: i64,
}

impl PrimaryPos {
    /// The position a primary starts from, before its first bump.
    pub fn initial(generation: u64, pos: Pos) -> Self {
        PrimaryPos {
            generation,
            pos,
            bumped_at: Instant::now(),
            page_size: 0,
            commit: 0,
            timestamp_ms: 0,
        }
    }
}

/// One node: its mount, its event stream, what the replicator knows about it.
pub(crate) struct NodeShared {
    pub hostname: String,
    pub paths: MountPaths,
    pub events: broadcast::Sender<Event>,
    pub state: Mutex<NodeState>,
    pub http_addr: Option<SocketAddr>,
    /// The replicator's last failure, until it next applies a snapshot: `sync` names it when
    /// it times out.
    pub replication_error: Mutex<Option<String>>,
    /// True while this node is the primary: its mount lets the app write the database.
    pub writable: Arc<AtomicBool>,
    /// Replication to this node alone is paused.
    pub paused: AtomicBool,
}

/// Replication state of one node.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NodeState {
    /// Last contact with a primary: a replicator tick while connected and not paused, or the
    /// moment this node lost its lease.
    pub last_contact: Option<Instant>,
    /// `(generation, pos)` of the last snapshot applied to this node.
    pub applied: Option<(u64, Pos)>,
    /// Someone else wrote this replica's file since the last sync.
    pub dirty: bool,
}

impl Shared {
    pub fn role(&self) -> Role {
        *lock(&self.role)
    }

    /// Makes `role` the cluster's: from now on only its primary's mount takes the app's
    /// writes.
    pub fn set_role(&self, role: Role) {
        let mut current = lock(&self.role);
        for (i, node) in self.nodes.iter().enumerate() {
            node.writable
                .store(role.primary == Some(i), Ordering::SeqCst);
        }
        *current = role;
    }

    pub fn delay(&self) -> Duration {
        *lock(&self.delay)
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Replication to node `i` is paused: for the whole cluster, or for it alone.
    pub fn paused_to(&self, i: usize) -> bool {
        self.paused() || self.nodes[i].paused.load(Ordering::SeqCst)
    }

    pub fn node_state(&self, i: usize) -> NodeState {
        *lock(&self.nodes[i].state)
    }

    /// `GET /info` for node `i`.
    pub fn info(&self, i: usize) -> NodeInfo {
        let role = self.role();
        NodeInfo {
            cluster_id: self.cluster_id.clone(),
            is_primary: role.primary == Some(i),
            candidate: true,
            path: self.nodes[i].paths.mount.display().to_string(),
            primary: PrimaryInfo {
                hostname: role
                    .primary
                    .map(|p| self.nodes[p].hostname.clone())
                    .unwrap_or_default(),
            },
        }
    }

    /// The data of `init` and `primaryChange` for node `i`. Like LiteFS, the hostname is that of
    /// the *remote* primary: empty on the primary itself and when there is no primary.
    fn primary_data(&self, i: usize) -> serde_json::Value {
        let role = self.role();
        let hostname = match role.primary {
            Some(p) if p != i => self.nodes[p].hostname.clone(),
            _ => String::new(),
        };
        let data = PrimaryEventData {
            is_primary: role.primary == Some(i),
            hostname,
        };
        serde_json::to_value(data).unwrap_or_default()
    }

    /// The first event of every `/events` stream of node `i`.
    pub fn init_event(&self, i: usize) -> Event {
        Event {
            kind: EVENT_INIT.to_owned(),
            db: None,
            data: Some(self.primary_data(i)),
        }
    }

    /// Sends `primaryChange` to every node's event stream.
    pub fn notify_primary_change(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            let event = Event {
                kind: EVENT_PRIMARY_CHANGE.to_owned(),
                db: None,
                data: Some(self.primary_data(i)),
            };
            let _ = node.events.send(event);
        }
    }

    /// Sends the pair of `primaryChange` events a LiteFS replica sends at each retry of a lost
    /// primary — `lost` named, then no primary — to every node but `lost`.
    pub fn blink_primary(&self, lost: usize) {
        let hostname = self.nodes[lost].hostname.clone();
        for (_, node) in self.nodes.iter().enumerate().filter(|(i, _)| *i != lost) {
            for hostname in [hostname.clone(), String::new()] {
                let data = PrimaryEventData {
                    is_primary: false,
                    hostname,
                };
                let _ = node.events.send(Event {
                    kind: EVENT_PRIMARY_CHANGE.to_owned(),
                    db: None,
                    data: Some(serde_json::to_value(data).unwrap_or_default()),
                });
            }
        }
    }

    /// Sends a `tx` event for `p` on node `i`'s stream.
    pub fn notify_tx(&self, i: usize, p: &PrimaryPos) {
        let timestamp = chrono::DateTime::from_timestamp_millis(p.timestamp_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        let data = serde_json::json!({
            "txID": format!("{:016x}", p.pos.txid),
            "postApplyChecksum": format!("{:016x}", p.pos.checksum),
            "pageSize": p.page_size,
            "commit": p.commit,
            "timestamp": timestamp,
        });
        let event = Event {
            kind: EVENT_TX.to_owned(),
            db: Some(self.db_name.clone()),
            data: Some(data),
        };
        let _ = self.nodes[i].events.send(event);
    }

    /// Records a write made directly to a replica's file.
    pub fn record_violation(&self, message: String) {
        tracing::error!("{message}");
        lock(&self.violations).push(message);
    }
}
