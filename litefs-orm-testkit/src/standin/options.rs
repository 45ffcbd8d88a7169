//! [`ClusterOptions`]: how many nodes, which database, journal mode, HTTP API, timings.

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::sqlx::sqlite::SqliteJournalMode;

/// SQLite journal modes LiteFS supports.
///
/// The stand-in creates replica database files in this mode; open your own connections with
/// the same mode ([`Cluster::connect_options`](super::Cluster::connect_options) does). A
/// connection switching a replica's file into or out of WAL writes to the replica, and is
/// reported as a replica write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalMode {
    /// `PRAGMA journal_mode = DELETE` (SQLite's default).
    #[default]
    Delete,
    /// `PRAGMA journal_mode = TRUNCATE`.
    Truncate,
    /// `PRAGMA journal_mode = PERSIST`.
    Persist,
    /// `PRAGMA journal_mode = WAL`.
    Wal,
}

impl JournalMode {
    /// The same mode as sqlx names it, for your own `SqliteConnectOptions::journal_mode`.
    pub fn to_sqlx(self) -> SqliteJournalMode {
        match self {
            JournalMode::Delete => SqliteJournalMode::Delete,
            JournalMode::Truncate => SqliteJournalMode::Truncate,
            JournalMode::Persist => SqliteJournalMode::Persist,
            JournalMode::Wal => SqliteJournalMode::Wal,
        }
    }

    /// The pragma value, lower case (`delete`, `truncate`, `persist`, `wal`).
    pub fn as_str(self) -> &'static str {
        match self {
            JournalMode::Delete => "delete",
            JournalMode::Truncate => "truncate",
            JournalMode::Persist => "persist",
            JournalMode::Wal => "wal",
        }
    }
}

/// How to start a [`Cluster`](super::Cluster).
///
/// ```
/// use std::time::Duration;
/// use litefs_orm_testkit::{ClusterOptions, JournalMode};
///
/// let opts = ClusterOptions::default()
///     .nodes(2)
///     .journal_mode(JournalMode::Wal)
///     .http_api(false)
///     .poll_interval(Duration::from_micros(250));
/// assert_eq!(opts.nodes, 2);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// Number of nodes, at least 1. Node 0 starts as primary. Default: 3.
    pub nodes: usize,
    /// File name of the replicated database inside each mount. Default: `app.db`.
    pub db_name: String,
    /// Journal mode of the replica database files the stand-in creates. Default: DELETE.
    pub journal_mode: JournalMode,
    /// Serve LiteFS's `GET /info` and `GET /events` per node on `127.0.0.1:0`. Default: true.
    pub http_api: bool,
    /// How often the primary's watcher polls `PRAGMA data_version` (the bound on how late
    /// `-pos` advances after a commit) and each replicator looks for a new position to copy.
    /// Default: 500 µs.
    pub poll_interval: Duration,
    /// Directory holding the mounts (`<root>/n1`, `<root>/n2`, ...). Default: `None`, a fresh
    /// temporary directory removed when the cluster is dropped.
    pub root: Option<PathBuf>,
    /// How long [`Cluster::sync`](super::Cluster::sync) waits before failing. Default: 10 s.
    pub sync_timeout: Duration,
    /// Each node's LiteFS `lease.hostname`, as `.primary` shows it. Empty (the default):
    /// `n1`, `n2`, ... Tests on one machine often use each node's app address instead, so
    /// the primary URL template is just `http://{primary}`.
    pub hostnames: Vec<String>,
    /// What an app's write to a replica's database meets. Default:
    /// [`ReplicaWrites::Refused`], as on LiteFS.
    pub replica_writes: ReplicaWrites,
}

/// What an app's write to a replica's database meets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaWrites {
    /// Refused as LiteFS refuses it: each node's directory is a FUSE mount of the stand-in's,
    /// which answers `EACCES` to the app's writes to a replica's database files, so SQLite
    /// fails them with `SQLITE_READONLY` (8) in rollback journal modes and `SQLITE_IOERR`
    /// (10) in WAL mode. Needs `/dev/fuse`, and root or `fusermount3` (Debian's `fuse3`).
    #[default]
    Refused,
    /// Let through to a plain directory, then noticed, counted
    /// ([`Cluster::replica_writes_detected`](super::Cluster::replica_writes_detected)) and
    /// overwritten at the next sync. For machines without FUSE.
    Detected,
}

impl ReplicaWrites {
    /// [`Refused`](Self::Refused) where this process can mount FUSE, else
    /// [`Detected`](Self::Detected): for a demo that should run anywhere.
    ///
    /// ```
    /// use litefs_orm_testkit::{ClusterOptions, ReplicaWrites};
    ///
    /// let opts = ClusterOptions::default().replica_writes(ReplicaWrites::best_available());
    /// assert!(matches!(opts.replica_writes, ReplicaWrites::Refused | ReplicaWrites::Detected));
    /// ```
    pub fn best_available() -> ReplicaWrites {
        match super::fuse::available() {
            true => ReplicaWrites::Refused,
            false => ReplicaWrites::Detected,
        }
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            db_name: "app.db".to_owned(),
            journal_mode: JournalMode::Delete,
            http_api: true,
            poll_interval: Duration::from_micros(500),
            root: None,
            sync_timeout: Duration::from_secs(10),
            hostnames: Vec::new(),
            replica_writes: ReplicaWrites::default(),
        }
    }
}

impl ClusterOptions {
    /// Sets [`hostnames`](Self::hostnames), one per node.
    pub fn hostnames<S: Into<String>>(mut self, hostnames: impl IntoIterator<Item = S>) -> Self {
        self.hostnames = hostnames.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`nodes`](Self::nodes).
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }
    /// Sets [`db_name`](Self::db_name).
    pub fn db_name(mut self, db_name: impl Into<String>) -> Self {
        self.db_name = db_name.into();
        self
    }
    /// Sets [`journal_mode`](Self::journal_mode).
    pub fn journal_mode(mut self, journal_mode: JournalMode) -> Self {
        self.journal_mode = journal_mode;
        self
    }
    /// Sets [`http_api`](Self::http_api).
    pub fn http_api(mut self, http_api: bool) -> Self {
        self.http_api = http_api;
        self
    }
    /// Sets [`poll_interval`](Self::poll_interval).
    pub fn poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }
    /// Sets [`root`](Self::root).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }
    /// Sets [`replica_writes`](Self::replica_writes).
    pub fn replica_writes(mut self, replica_writes: ReplicaWrites) -> Self {
        self.replica_writes = replica_writes;
        self
    }
    /// Sets [`sync_timeout`](Self::sync_timeout).
    pub fn sync_timeout(mut self, sync_timeout: Duration) -> Self {
        self.sync_timeout = sync_timeout;
        self
    }
}
