//! [`Cluster`]: starts the stand-in, shows each node, controls replication and the primary.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use tokio::runtime::Runtime;
use tokio::sync::{broadcast, watch};

use super::control::{Inner, Workers};
use super::error::{Error, Result};
use super::files::{header_says_wal, write_lag, write_pos, write_primary};
use super::fuse;
use super::fuse::{NodeMount, Trusted};
use super::options::{ClusterOptions, JournalMode, ReplicaWrites};
use super::state::{NodeShared, NodeState, PrimaryPos, Role, Shared, lock};
use super::{http, sync};
use litefs_orm::litefs::{LAG_NEVER_SYNCED_MS, MountPaths, Pos, read_pos};

/// A LiteFS cluster stand-in: one directory per node, node 0 primary at start.
///
/// Its workers run on a small runtime of its own, so it works the same under any test runtime
/// (current-thread, multi-thread, paused time). Dropping it stops everything and removes the
/// temporary root; [`shutdown`](Self::shutdown) does the same after letting workers finish.
///
/// ```no_run
/// # async fn demo() -> litefs_orm_testkit::Result<()> {
/// use litefs_orm_testkit::{Cluster, ClusterOptions};
///
/// let cluster = Cluster::start(ClusterOptions::default().nodes(2)).await?;
/// let primary_db = cluster.db_path(0); // open it with your app's SeaORM connection
/// // ... write through the primary ...
/// cluster.sync().await?; // every replica now has the primary's position
/// assert_eq!(cluster.pos(1), cluster.pos(0));
/// # Ok(()) }
/// ```
pub struct Cluster {
    inner: Arc<Inner>,
    rt: Option<Runtime>,
    root: PathBuf,
    journal_mode: JournalMode,
    sync_timeout: Duration,
    /// The nodes' FUSE mounts: dropped (detached) before the directory holding them.
    _mounts: Vec<NodeMount>,
    _temp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Creates the mounts and files, starts the HTTP API, the primary's watcher and the
    /// replicators, and returns once every replica's database file exists.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster> {
        if opts.nodes == 0 {
            return Err(Error::InvalidOptions(
                "a cluster needs at least one node".into(),
            ));
        }
        if !opts.hostnames.is_empty() && opts.hostnames.len() != opts.nodes {
            return Err(Error::InvalidOptions(format!(
                "{} hostnames for {} nodes",
                opts.hostnames.len(),
                opts.nodes
            )));
        }
        if opts.db_name.is_empty() || opts.db_name.contains(['/', '\\']) {
            return Err(Error::InvalidOptions(format!(
                "bad database name {:?}",
                opts.db_name
            )));
        }
        let temp = match &opts.root {
            Some(_) => None,
            None => Some(
                tempfile::Builder::new()
                    .prefix("litefs-testkit-")
                    .tempdir()?,
            ),
        };
        let root = opts.root.clone().unwrap_or_else(|| {
            temp.as_ref()
                .map(|t| t.path().to_owned())
                .unwrap_or_default()
        });
        let stage_dir = root.join(".testkit");
        std::fs::create_dir_all(&stage_dir)?;
        let trusted = match opts.replica_writes {
            ReplicaWrites::Refused if !fuse::available() => {
                return Err(Error::InvalidOptions(
                    "ReplicaWrites::Refused needs FUSE: /dev/fuse, and root or fusermount3 \
                     (apt-get install fuse3); elsewhere choose ReplicaWrites::Detected, or \
                     ReplicaWrites::best_available()"
                        .into(),
                ));
            }
            ReplicaWrites::Refused => Some(Trusted::new()),
            ReplicaWrites::Detected => None,
        };
        let mut mounts = Vec::new();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("litefs-testkit")
            .enable_all()
            .build()?;

        let mut nodes = Vec::with_capacity(opts.nodes);
        let mut listeners = Vec::new();
        for i in 0..opts.nodes {
            let dir = format!("n{}", i + 1);
            let hostname = opts
                .hostnames
                .get(i)
                .cloned()
                .unwrap_or_else(|| dir.clone());
            let paths = MountPaths::new(root.join(&dir), &opts.db_name);
            std::fs::create_dir_all(&paths.mount)?;
            let writable = Arc::new(AtomicBool::new(i == 0));
            if let Some(trusted) = &trusted {
                // The node's files live in the store; its directory shows them through FUSE.
                let store = stage_dir.join("store").join(&dir);
                std::fs::create_dir_all(&store)?;
                mounts.push(NodeMount::start(
                    &store,
                    &paths.mount,
                    &opts.db_name,
                    writable.clone(),
                    trusted.clone(),
                )?);
            }
            let pos = read_pos(&paths.pos()).unwrap_or_default();
            write_pos(&paths, pos)?;
            let http_addr = if opts.http_api {
                let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
                listener.set_nonblocking(true)?;
                let addr = listener.local_addr()?;
                listeners.push((i, listener));
                Some(addr)
            } else {
                None
            };
            let events = broadcast::channel(1024).0;
            let state = Mutex::new(NodeState::default());
            nodes.push(NodeShared {
                hostname,
                paths,
                events,
                state,
                http_addr,
                replication_error: Mutex::new(None),
                writable,
                paused: AtomicBool::new(false),
            });
        }
        let first = PrimaryPos::initial(1, read_pos(&nodes[0].paths.pos()).unwrap_or_default());
        let shared = Arc::new(Shared {
            db_name: opts.db_name.clone(),
            journal_mode: opts.journal_mode,
            poll_interval: opts.poll_interval,
            stage_dir,
            cluster_id: format!("LFSC{:016X}", rand::random::<u64>()),
            nodes,
            role: Mutex::new(Role {
                primary: Some(0),
                generation: 1,
            }),
            primary_pos: watch::channel(first).0,
            paused: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
            violations: Mutex::new(Vec::new()),
            flush_requested: AtomicU64::new(0),
            flush_done: AtomicU64::new(0),
            trusted,
        });
        for (i, node) in shared.nodes.iter().enumerate() {
            let primary = (i != 0).then_some(shared.nodes[0].hostname.as_str());
            write_primary(&node.paths, primary)?;
            write_lag(&node.paths, if i == 0 { 0 } else { LAG_NEVER_SYNCED_MS })?;
        }
        {
            let _entered = rt.enter();
            for (i, listener) in listeners {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let router = http::router(shared.clone(), i);
                rt.spawn(async move {
                    if let Err(e) = axum::serve(listener, router).await {
                        tracing::warn!("testkit http server stopped: {e}");
                    }
                });
            }
        }
        let inner = Arc::new(Inner {
            shared,
            workers: tokio::sync::Mutex::new(Workers::default()),
            rt: rt.handle().clone(),
        });
        let cluster = Cluster {
            inner: inner.clone(),
            rt: Some(rt),
            root,
            journal_mode: opts.journal_mode,
            sync_timeout: opts.sync_timeout,
            _mounts: mounts,
            _temp: temp,
        };
        cluster
            .on_rt(async move {
                let mut w = inner.workers.lock().await;
                inner.start_watcher(&mut w).await?;
                inner.start_replicators(&mut w).await
            })
            .await?;
        Ok(cluster)
    }

    /// Runs `fut` on the cluster's own runtime and waits for it.
    async fn on_rt<F, T>(&self, fut: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        match self.inner.rt.spawn(fut).await {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("testkit runtime stopped: {e}"),
        }
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.inner.shared.nodes.len()
    }

    /// The directory holding every mount.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Node `i`'s mount directory. Panics if `i >= nodes()`, as do all per-node methods.
    pub fn mount(&self, i: usize) -> &Path {
        &self.inner.shared.nodes[i].paths.mount
    }

    /// The LiteFS file paths of node `i` (`.primary`, `.lag`, `-pos`, the database).
    pub fn paths(&self, i: usize) -> &MountPaths {
        &self.inner.shared.nodes[i].paths
    }

    /// Node `i`'s database file: what the app on that node opens.
    pub fn db_path(&self, i: usize) -> PathBuf {
        self.inner.shared.nodes[i].paths.db.clone()
    }

    /// A SeaORM / sqlx URL for node `i`'s database (`sqlite://<path>?mode=rwc`).
    pub fn database_url(&self, i: usize) -> String {
        format!("sqlite://{}?mode=rwc", self.db_path(i).display())
    }

    /// sqlx options for node `i`'s database: create if missing, in the cluster's journal mode.
    ///
    /// The journal mode pragma is left out when the file is already in WAL mode: on a fresh
    /// connection `PRAGMA journal_mode = wal` briefly needs a lock the replicator may hold, and
    /// fails with `database is locked` instead of waiting.
    pub fn connect_options(&self, i: usize) -> SqliteConnectOptions {
        let path = self.db_path(i);
        let in_wal = is_wal_file(&path);
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        if in_wal {
            opts
        } else {
            opts.journal_mode(self.journal_mode.to_sqlx())
        }
    }

    /// Node `i`'s hostname: as given in [`ClusterOptions::hostnames`], else `n1`, `n2`, ...
    pub fn hostname(&self, i: usize) -> &str {
        &self.inner.shared.nodes[i].hostname
    }

    /// Address of node `i`'s LiteFS HTTP API (`None` when `http_api` is off).
    pub fn http_addr(&self, i: usize) -> Option<SocketAddr> {
        self.inner.shared.nodes[i].http_addr
    }

    /// The primary's index, or `None` after [`lose_primary`](Self::lose_primary).
    pub fn primary(&self) -> Option<usize> {
        self.inner.shared.role().primary
    }

    /// Node `i`'s `-pos` file (TXID 0 when the file is absent). Panics if it is malformed.
    pub fn pos(&self, i: usize) -> Pos {
        let path = self.inner.shared.nodes[i].paths.pos();
        read_pos(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Stops replication: replicas keep their position and their `.lag` grows.
    pub fn pause_replication(&self) {
        self.inner.shared.paused.store(true, Ordering::SeqCst);
    }

    /// Resumes replication; replicas catch up with the primary's current state.
    pub fn resume_replication(&self) {
        self.inner.shared.paused.store(false, Ordering::SeqCst);
    }

    /// Stops replication to node `i` alone: it keeps its position (and, after a primary
    /// change, the history of the old primary — a replica ahead on an abandoned history)
    /// while the others follow the primary.
    pub fn pause_replication_to(&self, i: usize) {
        self.inner.shared.nodes[i]
            .paused
            .store(true, Ordering::SeqCst);
    }

    /// Resumes replication to node `i`.
    pub fn resume_replication_to(&self, i: usize) {
        self.inner.shared.nodes[i]
            .paused
            .store(false, Ordering::SeqCst);
    }

    /// Each transaction reaches the replicas only `delay` after the primary's `-pos` showed it
    /// (`Duration::ZERO`, the default, replicates as fast as possible).
    pub fn set_replication_delay(&self, delay: Duration) {
        *lock(&self.inner.shared.delay) = delay;
    }

    /// Waits until every replica's position equals the primary's (taken after this call made
    /// the watcher look at every commit already made), up to `sync_timeout`.
    ///
    /// Fails with [`Error::NoPrimary`] without a primary and [`Error::SyncTimeout`] while
    /// replication is paused or the primary's write lock is held throughout.
    pub async fn sync(&self) -> Result<()> {
        self.sync_within(self.sync_timeout).await
    }

    /// [`sync`](Self::sync) with its own timeout.
    pub async fn sync_within(&self, timeout: Duration) -> Result<()> {
        let shared = self.inner.shared.clone();
        self.on_rt(async move { sync::wait_for_replicas(&shared, timeout).await })
            .await
    }

    /// Makes node `to` the primary: the new primary continues from its own position (writes
    /// not yet replicated to it are lost, as in LiteFS), every other node gets `.primary`,
    /// every event stream a `primaryChange`, and the other nodes replicate from `to`.
    pub async fn switch_primary(&self, to: usize) {
        assert!(to < self.nodes(), "no node {to}");
        let inner = self.inner.clone();
        self.on_rt(async move { inner.switch_primary(to).await })
            .await;
    }

    /// No node is primary any more (lease lost): `.primary` disappears everywhere, every
    /// node's `/info` says `isPrimary: false` with no primary hostname, `.lag` grows from each
    /// node's last contact (the old primary's from now, never 0).
    pub async fn lose_primary(&self) {
        let inner = self.inner.clone();
        self.on_rt(async move { inner.lose_primary().await }).await;
    }

    /// How many writes made directly to a replica's file were detected: with
    /// [`ReplicaWrites::Detected`]; with [`ReplicaWrites::Refused`] (the default) the mount
    /// refuses them, and none lands to be detected.
    pub fn replica_writes_detected(&self) -> usize {
        lock(&self.inner.shared.violations).len()
    }

    /// The messages of the detected replica writes, oldest first.
    pub fn replica_write_reports(&self) -> Vec<String> {
        lock(&self.inner.shared.violations).clone()
    }

    /// Stops the workers after their current step, then drops the cluster.
    pub async fn shutdown(self) {
        let inner = self.inner.clone();
        self.on_rt(async move {
            let mut w = inner.workers.lock().await;
            inner.stop_workers(&mut w).await;
        })
        .await;
    }
}

/// True when `path` is a database in WAL mode: its `-wal` file exists (a young WAL database
/// may still have an empty main file), or its header says so.
fn is_wal_file(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    Path::new(&wal).exists() || header_says_wal(path)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(mut w) = self.inner.workers.try_lock() {
            drop(w.watcher.take());
            w.replicators.clear();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
