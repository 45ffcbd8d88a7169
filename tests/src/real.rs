//! Clusters of `ReplicatedDb` nodes on real LiteFS: each node's app opens its database through
//! its own LiteFS FUSE mount and serves its router on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use litefs_orm::{Config, JournalMode, ReplicatedDb};
use litefs_orm_testkit::real::{RealCluster, RealOptions};
use sea_orm::ConnectionTrait;
use tokio::net::TcpListener;

use crate::{SECRET, entities, operations, registry};

/// One node's app: its handle and router, on a runtime of its own, so that stopping it ends
/// every task it runs — its server's connections and the handle's own work — as a process
/// exit would.
pub struct RealNode {
    /// The app's database handle on this node.
    pub db: ReplicatedDb,
    /// Where this node's RPC router listens.
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for RealNode {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// How long closing an app's handle may take when its app stops.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How to start a [`RealTestCluster`].
#[derive(Clone, Debug)]
pub struct RealSetup {
    /// Number of nodes.
    pub nodes: usize,
    /// Every node's journal mode (the primary sets it; replicas get it by replication).
    pub journal_mode: JournalMode,
    /// Replication wait deadline of every node.
    pub replication_timeout: Duration,
    /// Wait for a primary.
    pub primary_wait: Duration,
    /// Whole-write deadline.
    pub write_timeout: Duration,
}

impl Default for RealSetup {
    fn default() -> Self {
        RealSetup {
            nodes: 3,
            journal_mode: JournalMode::Wal,
            replication_timeout: Duration::from_secs(5),
            primary_wait: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A real LiteFS cluster with a `ReplicatedDb` and a router per node. Nodes have static-lease
/// hostnames (`n1`, `n2`, ...) that do not resolve by DNS; each node's configuration maps them
/// to the routers' addresses ([`Config::with_primary_url_for`]).
pub struct RealTestCluster {
    /// The nodes' apps, in cluster order; `None` while a node's app is stopped. Declared
    /// before `litefs`: apps stop before LiteFS does.
    pub nodes: Vec<Option<RealNode>>,
    /// The LiteFS processes.
    pub litefs: RealCluster,
    addrs: Vec<SocketAddr>,
    setup: RealSetup,
}

impl RealTestCluster {
    /// Three nodes in WAL mode, node 0 the static primary.
    pub async fn start() -> RealTestCluster {
        Self::start_with(RealSetup::default()).await
    }

    /// A cluster as `setup` says, with the test schema created on the primary and replicated
    /// everywhere.
    pub async fn start_with(setup: RealSetup) -> RealTestCluster {
        let mut listeners = Vec::new();
        for _ in 0..setup.nodes {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let litefs = RealCluster::start(RealOptions::default().with_nodes(setup.nodes))
            .await
            .unwrap_or_else(|e| panic!("cannot start real LiteFS: {e}"));
        let mut cluster = RealTestCluster {
            litefs,
            nodes: Vec::new(),
            addrs,
            setup,
        };
        cluster.create_schema().await;
        for (i, listener) in listeners.into_iter().enumerate() {
            let node = cluster.serve(i, listener).await;
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    async fn create_schema(&mut self) {
        let p = self.litefs.primary();
        let db = ReplicatedDb::connect(self.config(p), registry())
            .await
            .unwrap();
        for schema in [
            entities::post::SCHEMA,
            entities::kitchen::SCHEMA,
            entities::secret::SCHEMA,
            operations::PAGE_VIEW_SCHEMA,
        ] {
            db.execute_unprepared(schema).await.unwrap();
        }
        drop(db);
        self.sync().await;
    }

    /// Node `i`'s configuration: its mount, its LiteFS HTTP API, the test secret and deadlines.
    pub fn config(&self, i: usize) -> Config {
        let mut config = Config::litefs(self.litefs.mount(i), "app.db")
            .with_litefs_http(self.litefs.http_url(i))
            .with_rpc_secret(SECRET)
            .with_replication_timeout(self.setup.replication_timeout)
            .with_primary_wait(self.setup.primary_wait)
            .with_write_timeout(self.setup.write_timeout)
            .with_journal_mode(self.setup.journal_mode);
        for (node, addr) in self.addrs.iter().enumerate() {
            config =
                config.with_primary_url_for(self.litefs.hostname(node), format!("http://{addr}"));
        }
        config
    }

    async fn serve(&self, i: usize, listener: TcpListener) -> RealNode {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name(format!("app-n{}", i + 1))
            .build()
            .unwrap();
        let config = self.config(i);
        let listener = listener.into_std().unwrap();
        let db = runtime
            .spawn(async move {
                let db = ReplicatedDb::connect(config, registry())
                    .await
                    .unwrap_or_else(|e| panic!("open node {i}'s handle: {e}"));
                let listener = TcpListener::from_std(listener).unwrap();
                let app = litefs_orm::router(db.clone());
                tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
                db
            })
            .await
            .unwrap();
        RealNode {
            db,
            addr: self.addrs[i],
            runtime: Some(runtime),
        }
    }

    /// Stops node `i`'s app (its router, its connections and its handle's tasks), as a crashed
    /// app process would, and returns once they have ended; its LiteFS keeps running. Clones of
    /// its handle the test still holds keep working as a second app on the node.
    pub async fn stop_app(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            let _ = tokio::time::timeout(CLOSE_WAIT, node.db.close()).await;
            if let Some(rt) = node.runtime.take() {
                tokio::task::spawn_blocking(move || rt.shutdown_timeout(Duration::from_secs(5)))
                    .await
                    .unwrap();
            }
        }
    }

    /// Starts node `i`'s app again on the same address.
    pub async fn start_app(&mut self, i: usize) {
        let listener = TcpListener::bind(self.addrs[i]).await.unwrap();
        let node = self.serve(i, listener).await;
        self.nodes[i] = Some(node);
    }

    /// Waits until every running replica has the primary's position.
    pub async fn sync(&mut self) {
        self.litefs
            .sync(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("replicas did not catch up: {e}"));
    }

    /// Node `i`'s handle (its app must be running).
    pub fn db(&self, i: usize) -> &ReplicatedDb {
        &self.nodes[i].as_ref().expect("node's app is running").db
    }

    /// Node `i`'s RPC URL.
    pub fn rpc_url(&self, i: usize) -> String {
        format!("http://{}{}", self.addrs[i], litefs_orm::RPC_PATH)
    }
}

impl Drop for RealTestCluster {
    /// Closes every app's connections before LiteFS stops: a WAL connection left open on a
    /// mount whose LiteFS is gone ends the process with SIGBUS at its next use of `-shm`.
    fn drop(&mut self) {
        let dbs: Vec<ReplicatedDb> = self.nodes.iter().flatten().map(|n| n.db.clone()).collect();
        let closing = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to close the handles on");
            rt.block_on(async {
                for db in dbs {
                    // Bounded: a connection still held by a task of the test's own (blocked
                    // here) runtime is never returned to its pool.
                    let _ = tokio::time::timeout(CLOSE_WAIT, db.close()).await;
                }
            });
        });
        let _ = closing.join();
    }
}
