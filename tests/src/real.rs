//! Clusters of `ReplicatedDb` nodes on real LiteFS: each node's app opens its database through
//! its own LiteFS FUSE mount and serves its router on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use litefs_orm::{Config, ReplicatedDb};
use litefs_orm_testkit::real::{RealCluster, RealOptions};
use sea_orm::ConnectionTrait;
use tokio::net::TcpListener;

use crate::{Node, SECRET, entities, operations, registry};

/// How to start a [`RealTestCluster`].
#[derive(Clone, Debug)]
pub struct RealSetup {
    /// Number of nodes.
    pub nodes: usize,
    /// The database's journal mode, set on the primary before the schema (`wal`, `delete`).
    pub journal_mode: &'static str,
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
            journal_mode: "wal",
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
    /// The LiteFS processes.
    pub litefs: RealCluster,
    /// The nodes' apps, in cluster order; `None` while a node's app is stopped.
    pub nodes: Vec<Option<Node>>,
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
        let mode = format!("PRAGMA journal_mode = {}", self.setup.journal_mode);
        db.execute_unprepared(&mode).await.unwrap();
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
            .with_write_timeout(self.setup.write_timeout);
        for (node, addr) in self.addrs.iter().enumerate() {
            config =
                config.with_primary_url_for(self.litefs.hostname(node), format!("http://{addr}"));
        }
        config
    }

    async fn serve(&self, i: usize, listener: TcpListener) -> Node {
        let db = ReplicatedDb::connect(self.config(i), registry())
            .await
            .unwrap_or_else(|e| panic!("open node {i}'s handle: {e}"));
        let addr = listener.local_addr().unwrap();
        let app = litefs_orm::router(db.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Node { db, addr, server }
    }

    /// Stops node `i`'s app (its router and handle), as a crashed app process would; its
    /// LiteFS keeps running.
    pub fn stop_app(&mut self, i: usize) {
        self.nodes[i] = None;
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
