//! Shared support for the workspace's integration tests: entities, and clusters of real
//! `ReplicatedDb` nodes serving their routers over loopback HTTP on the LiteFS stand-in.

pub mod endpoint;
pub mod entities;
pub mod failover;
pub mod history;
pub mod observe;
pub mod operations;
pub mod proxy;
pub mod real;
pub mod rolling;

use std::net::SocketAddr;
use std::time::Duration;

use litefs_orm::{Config, Registry, ReplicatedDb};
use litefs_orm_testkit::{Cluster, ClusterOptions};
use sea_orm::ConnectionTrait;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Waits until `check` holds, looking every 10 ms; panics naming `what` after `within`.
pub async fn until(what: &str, within: Duration, check: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` distinct free loopback ports: bound together, then released for the apps to take.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

/// The shared RPC secret of test clusters.
pub const SECRET: &str = litefs_orm_testkit::apps::SECRET;

/// The registry every test node uses.
pub fn registry() -> Registry {
    Registry::new()
        .entity::<entities::post::Entity>()
        .entity::<entities::kitchen::Entity>()
        .operation::<operations::IncrementPage>()
        .operation::<operations::InsertPair>()
        .operation::<operations::HoldWriter>()
}

/// One node: its handle and the address its router listens on.
pub struct Node {
    /// The app's database handle on this node.
    pub db: ReplicatedDb,
    /// Where this node's RPC router listens.
    pub addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A server started by [`TestCluster::serve`]; stops when dropped.
pub struct Served(JoinHandle<()>);

impl Drop for Served {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A LiteFS stand-in cluster with a `ReplicatedDb` and a router per node.
pub struct TestCluster {
    /// The stand-in.
    pub litefs: Cluster,
    /// The nodes, in cluster order; node 0 starts as primary.
    pub nodes: Vec<Node>,
    /// With [`Setup::proxied`]: the proxy in front of each node, in node order.
    pub proxies: Vec<proxy::FaultProxy>,
    /// Each node's configuration, to open more handles on its database.
    pub configs: Vec<Config>,
}

/// How to start a [`TestCluster`].
#[derive(Clone, Debug)]
pub struct Setup {
    /// Number of nodes.
    pub nodes: usize,
    /// Follow the role over LiteFS's HTTP API (else from `.primary`/`.lag`).
    pub http_api: bool,
    /// Replication wait deadline of every node.
    pub replication_timeout: Duration,
    /// Wait for a primary.
    pub primary_wait: Duration,
    /// Whole-write deadline.
    pub write_timeout: Duration,
    /// Put a [`proxy::FaultProxy`] in front of every node's router: the LiteFS hostnames
    /// (and so every forwarded write) go through the proxies.
    pub proxied: bool,
    /// SQLite's journal mode on every node.
    pub journal_mode: litefs_orm::JournalMode,
    /// Every node's durability.
    pub durability: litefs_orm::Durability,
    /// Every node's durability timeout.
    pub durability_timeout: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            nodes: 3,
            http_api: true,
            replication_timeout: Duration::from_secs(5),
            primary_wait: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
            proxied: false,
            journal_mode: litefs_orm::JournalMode::Wal,
            durability: litefs_orm::Durability::Local,
            durability_timeout: Duration::from_secs(1),
        }
    }
}

impl TestCluster {
    /// A primary and two replicas, following roles over LiteFS's HTTP API.
    pub async fn start() -> TestCluster {
        Self::start_with(Setup::default()).await
    }

    /// A cluster as `setup` says, with the test schema created on the primary and
    /// replicated everywhere.
    pub async fn start_with(setup: Setup) -> TestCluster {
        let mut listeners = Vec::new();
        for _ in 0..setup.nodes {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        // A node's LiteFS hostname is its router's address (or its proxy's), so the URL
        // template is plain.
        let mut proxies = Vec::new();
        if setup.proxied {
            for l in &listeners {
                proxies.push(proxy::FaultProxy::start(l.local_addr().unwrap()).await);
            }
        }
        let hostnames: Vec<String> = match setup.proxied {
            true => proxies.iter().map(|p| p.addr().to_string()).collect(),
            false => listeners
                .iter()
                .map(|l| l.local_addr().unwrap().to_string())
                .collect(),
        };
        let litefs = Cluster::start(
            ClusterOptions::default()
                .nodes(setup.nodes)
                .hostnames(hostnames)
                .http_api(setup.http_api),
        )
        .await
        .expect("start the LiteFS stand-in");
        let mut nodes = Vec::new();
        let mut configs = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let mut config = Config::litefs(litefs.mount(i), "app.db")
                .with_primary_url("http://{primary}")
                .with_rpc_secret(SECRET)
                .with_replication_timeout(setup.replication_timeout)
                .with_primary_wait(setup.primary_wait)
                .with_write_timeout(setup.write_timeout)
                .with_journal_mode(setup.journal_mode)
                .with_durability(setup.durability)
                .with_durability_timeout(setup.durability_timeout);
            if setup.http_api {
                let addr = litefs.http_addr(i).expect("stand-in HTTP API");
                config = config.with_litefs_http(format!("http://{addr}"));
            }
            if i == 0 {
                let db = ReplicatedDb::connect(config.clone(), registry())
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
                litefs.sync().await.expect("replicate the schema");
            }
            configs.push(config.clone());
            let db = ReplicatedDb::connect(config, registry()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = litefs_orm::router(db.clone());
            let server = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            nodes.push(Node { db, addr, server });
        }
        TestCluster {
            litefs,
            nodes,
            proxies,
            configs,
        }
    }

    /// Three nodes with a [`proxy::FaultProxy`] in front of each, and `write_timeout`.
    pub async fn proxied(write_timeout: Duration) -> TestCluster {
        Self::start_with(Setup {
            proxied: true,
            write_timeout,
            ..Setup::default()
        })
        .await
    }

    /// Node `i`'s handle.
    pub fn db(&self, i: usize) -> &ReplicatedDb {
        &self.nodes[i].db
    }

    /// Node `i`'s LiteFS hostname: its router's address (or its proxy's).
    pub fn hostname(&self, i: usize) -> String {
        match self.proxies.get(i) {
            Some(p) => p.addr().to_string(),
            None => self.nodes[i].addr.to_string(),
        }
    }

    /// Serves `router` on a fresh loopback port; returns its base URL and the server task
    /// (aborted on drop of the handle).
    pub async fn serve(router: axum::Router) -> (String, Served) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        (url, Served(task))
    }

    /// Node `i`'s RPC URL.
    pub fn rpc_url(&self, i: usize) -> String {
        self.url(i, litefs_orm::RPC_PATH)
    }

    /// The URL of `path` on node `i`'s router.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.nodes[i].addr)
    }
}

/// The wire body of a forwarded insert of a post titled `title` (body `b`), carrying the
/// idempotency key `key`.
pub fn post_insert_body(title: &str, key: &str) -> Vec<u8> {
    let request = serde_json::json!({
        "v": litefs_orm::wire::WIRE_VERSION,
        "entity": "post",
        "op": "insert",
        "model": {
            "title": {"set": {"String": title}},
            "body": {"set": {"String": "b"}}
        },
        "key": key,
    });
    serde_json::to_vec(&request).expect("a JSON body")
}

/// A fresh idempotency key, unique in this process: every forwarded write carries one.
pub fn fresh_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("test-{nanos:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// POSTs `body` to `url`, signed with [`SECRET`] for the URL's path.
pub async fn post_signed(url: &str, body: Vec<u8>) -> reqwest::Response {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let sig = litefs_orm::auth::sign(SECRET.as_bytes(), path, &body);
    post_with(url, body, &sig).await
}

/// POSTs `body` to `url` with the signature headers of `sig` (right or, on purpose, wrong).
pub async fn post_with(
    url: &str,
    body: Vec<u8>,
    sig: &litefs_orm::auth::Signature,
) -> reqwest::Response {
    use litefs_orm::auth;
    reqwest::Client::new()
        .post(url)
        .header(auth::TIMESTAMP_HEADER, sig.timestamp_ms.to_string())
        .header(auth::NONCE_HEADER, &sig.nonce)
        .header(auth::SIGNATURE_HEADER, &sig.signature)
        .body(body)
        .send()
        .await
        .expect("POST to a test node")
}

/// A standalone node on a plain SQLite file in `dir`, with the test schema.
pub async fn standalone(dir: &std::path::Path) -> ReplicatedDb {
    standalone_with(Config::standalone(dir.join("app.db"))).await
}

/// A standalone node as `config` says, with the test schema.
pub async fn standalone_with(config: Config) -> ReplicatedDb {
    let db = ReplicatedDb::connect(config, registry()).await.unwrap();
    for schema in [
        entities::post::SCHEMA,
        entities::kitchen::SCHEMA,
        operations::PAGE_VIEW_SCHEMA,
    ] {
        db.execute_unprepared(schema).await.unwrap();
    }
    db
}
