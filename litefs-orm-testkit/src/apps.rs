//! Your own app on a test cluster: N nodes, each a `ReplicatedDb` and your Axum router served on
//! loopback, on the stand-in or on real LiteFS, in a few lines.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use litefs_orm::{Registry, ReplicatedDb};
//! use litefs_orm_testkit::apps::{AppCluster, AppOptions, Engine};
//!
//! fn app(db: ReplicatedDb) -> axum::Router {
//!     axum::Router::new().merge(litefs_orm::router(db))
//! }
//!
//! let cluster = AppCluster::start(
//!     AppOptions::new(Engine::StandIn).schema("CREATE TABLE post (id INTEGER PRIMARY KEY, title TEXT UNIQUE)"),
//!     Registry::new, // your entities and operations
//!     app,
//! )
//! .await?;
//! let replica = cluster.db(1); // write through it, read it back at once
//! let page = reqwest::get(cluster.url(1)).await?; // your app, on a replica
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use litefs_orm::{Config, Durability, JournalMode, Registry, ReplicatedDb};
use sea_orm::ConnectionTrait;
use tokio::net::TcpListener;

use crate::real::{Lease, RealCluster, RealOptions};
use crate::{Cluster, ClusterOptions};

/// The shared secret of test clusters' nodes.
pub const SECRET: &str = "litefs-orm-testkit cluster secret";

/// How long closing a node's handle may take when its app stops.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Which LiteFS the nodes run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The stand-in ([`Cluster`]): a test double in this process.
    StandIn,
    /// Real LiteFS ([`RealCluster`]): a process and a FUSE mount per node.
    Real,
}

/// How to start an [`AppCluster`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AppOptions {
    /// The engine. No default: say which.
    pub engine: Engine,
    /// Number of nodes (node 0 is the primary). Default: 3.
    pub nodes: usize,
    /// Statements run on the primary before the other nodes start. Default: none.
    pub schema: Vec<String>,
    /// The database's journal mode. Default: WAL.
    pub journal_mode: JournalMode,
    /// Wait for a primary. Default: 2 s.
    pub primary_wait: Duration,
    /// Read-your-writes wait of a forwarded write. Default: 5 s.
    pub replication_timeout: Duration,
    /// Whole-write deadline. Default: 10 s.
    pub write_timeout: Duration,
    /// Real LiteFS's lease ([`Engine::Real`] only). Default: static, node 0 the primary. With
    /// a Consul lease, give it `promote: false` so that node 0, started first, stays the
    /// primary the schema is created on.
    pub lease: Lease,
    /// Every node's [`Config::durability`]. Default: local.
    pub durability: Durability,
}

impl AppOptions {
    /// Three nodes on `engine`, no schema, WAL.
    pub fn new(engine: Engine) -> Self {
        AppOptions {
            engine,
            nodes: 3,
            schema: Vec::new(),
            journal_mode: JournalMode::Wal,
            primary_wait: Duration::from_secs(2),
            replication_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            lease: Lease::Static,
            durability: Durability::Local,
        }
    }

    /// Sets real LiteFS's lease.
    pub fn lease(mut self, lease: Lease) -> Self {
        self.lease = lease;
        self
    }

    /// Sets every node's durability.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the number of nodes.
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }

    /// Adds a statement to run on the primary before the other nodes start.
    pub fn schema(mut self, statement: impl Into<String>) -> Self {
        self.schema.push(statement.into());
        self
    }

    /// Sets the journal mode.
    pub fn journal_mode(mut self, mode: JournalMode) -> Self {
        self.journal_mode = mode;
        self
    }

    /// Sets the wait for a primary.
    pub fn primary_wait(mut self, wait: Duration) -> Self {
        self.primary_wait = wait;
        self
    }

    /// Sets the read-your-writes wait.
    pub fn replication_timeout(mut self, timeout: Duration) -> Self {
        self.replication_timeout = timeout;
        self
    }

    /// Sets the whole-write deadline.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }
}

/// The LiteFS under an [`AppCluster`].
pub enum Litefs {
    /// The stand-in.
    StandIn(Cluster),
    /// Real LiteFS.
    Real(RealCluster),
}

impl Litefs {
    fn mount(&self, i: usize) -> &std::path::Path {
        match self {
            Litefs::StandIn(c) => c.mount(i),
            Litefs::Real(c) => c.mount(i),
        }
    }

    fn hostname(&self, i: usize) -> &str {
        match self {
            Litefs::StandIn(c) => c.hostname(i),
            Litefs::Real(c) => c.hostname(i),
        }
    }

    fn http_url(&self, i: usize) -> String {
        match self {
            Litefs::StandIn(c) => format!("http://{}", c.http_addr(i).expect("HTTP API on")),
            Litefs::Real(c) => c.http_url(i),
        }
    }

    /// Waits until every replica has the primary's position.
    pub async fn sync(&mut self) -> Result<(), String> {
        match self {
            Litefs::StandIn(c) => c.sync().await.map_err(|e| e.to_string()),
            Litefs::Real(c) => c
                .sync(Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// One node's app: its handle and your router, on a runtime of its own, so that stopping it
/// ends every task it runs, as a process exit would.
pub struct App {
    /// The node's database handle.
    pub db: ReplicatedDb,
    /// Where the node's router listens.
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

type MakeRegistry = Box<dyn Fn() -> Registry + Send + Sync>;
type MakeRouter = Box<dyn Fn(ReplicatedDb) -> axum::Router + Send + Sync>;

/// N nodes of your app on a test cluster; see the [module docs](self).
pub struct AppCluster {
    /// The nodes' apps; `None` while one is stopped. Declared before `litefs`: apps stop
    /// before LiteFS does.
    pub apps: Vec<Option<App>>,
    /// The LiteFS under them.
    pub litefs: Litefs,
    addrs: Vec<SocketAddr>,
    options: AppOptions,
    registry: MakeRegistry,
    router: MakeRouter,
}

impl AppCluster {
    /// Starts the engine and every node's app; returns once every node has the schema.
    pub async fn start(
        options: AppOptions,
        registry: impl Fn() -> Registry + Send + Sync + 'static,
        router: impl Fn(ReplicatedDb) -> axum::Router + Send + Sync + 'static,
    ) -> Result<AppCluster, String> {
        let mut listeners = Vec::new();
        for _ in 0..options.nodes {
            listeners.push(
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let litefs = match options.engine {
            Engine::StandIn => Litefs::StandIn(
                Cluster::start(
                    ClusterOptions::default()
                        .nodes(options.nodes)
                        .journal_mode(standin_mode(options.journal_mode)),
                )
                .await
                .map_err(|e| format!("cannot start the LiteFS stand-in: {e}"))?,
            ),
            Engine::Real => Litefs::Real(
                RealCluster::start(
                    RealOptions::default()
                        .with_nodes(options.nodes)
                        .with_lease(options.lease.clone()),
                )
                .await
                .map_err(|e| format!("cannot start real LiteFS: {e}"))?,
            ),
        };
        let mut cluster = AppCluster {
            apps: Vec::new(),
            litefs,
            addrs,
            options,
            registry: Box::new(registry),
            router: Box::new(router),
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            let app = cluster.serve(i, listener).await?;
            if i == 0 {
                for statement in &cluster.options.schema {
                    app.db
                        .execute_unprepared(statement)
                        .await
                        .map_err(|e| format!("schema statement {statement:?}: {e}"))?;
                }
                cluster.litefs.sync().await?;
            }
            cluster.apps.push(Some(app));
        }
        Ok(cluster)
    }

    /// Node `i`'s configuration: its mount, its LiteFS HTTP API, [`SECRET`], and every node's
    /// hostname mapped to its app ([`Config::with_primary_url_for`]).
    pub fn config(&self, i: usize) -> Config {
        let mut config = Config::litefs(self.litefs.mount(i), "app.db")
            .with_litefs_http(self.litefs.http_url(i))
            .with_rpc_secret(SECRET)
            .with_primary_wait(self.options.primary_wait)
            .with_replication_timeout(self.options.replication_timeout)
            .with_write_timeout(self.options.write_timeout)
            .with_journal_mode(self.options.journal_mode)
            .with_durability(self.options.durability);
        for (node, addr) in self.addrs.iter().enumerate() {
            config =
                config.with_primary_url_for(self.litefs.hostname(node), format!("http://{addr}"));
        }
        config
    }

    async fn serve(&self, i: usize, listener: TcpListener) -> Result<App, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name(format!("app-n{}", i + 1))
            .build()
            .map_err(|e| e.to_string())?;
        let (config, registry) = (self.config(i), (self.registry)());
        let listener = listener.into_std().map_err(|e| e.to_string())?;
        let db = runtime
            .spawn(async move { ReplicatedDb::connect(config, registry).await })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("node {i}'s handle: {e}"))?;
        let app = (self.router)(db.clone());
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("a listener");
            axum::serve(listener, app).await.expect("serve");
        });
        Ok(App {
            db,
            addr: self.addrs[i],
            runtime: Some(runtime),
        })
    }

    /// Node `i`'s handle (its app must be running).
    pub fn db(&self, i: usize) -> &ReplicatedDb {
        &self.apps[i].as_ref().expect("the node's app is running").db
    }

    /// Node `i`'s app's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.addrs[i])
    }

    /// The URL forwarded writes are POSTed to on node `i`'s app.
    pub fn rpc_url(&self, i: usize) -> String {
        format!("{}{}", self.url(i), litefs_orm::RPC_PATH)
    }

    /// Waits until every replica has the primary's position.
    pub async fn sync(&mut self) -> Result<(), String> {
        self.litefs.sync().await
    }

    /// The real LiteFS cluster; panics on the stand-in.
    pub fn real(&self) -> &RealCluster {
        match &self.litefs {
            Litefs::Real(c) => c,
            Litefs::StandIn(_) => panic!("this cluster runs on the stand-in"),
        }
    }

    /// The real LiteFS cluster, to stop, restart or change its nodes; panics on the stand-in.
    pub fn real_mut(&mut self) -> &mut RealCluster {
        match &mut self.litefs {
            Litefs::Real(c) => c,
            Litefs::StandIn(_) => panic!("this cluster runs on the stand-in"),
        }
    }

    /// The stand-in; panics on real LiteFS.
    pub fn standin(&self) -> &Cluster {
        match &self.litefs {
            Litefs::StandIn(c) => c,
            Litefs::Real(_) => panic!("this cluster runs on real LiteFS"),
        }
    }

    /// Stops node `i`'s app — router, connections, handle — as a crashed process would, and
    /// returns once it has ended; its LiteFS keeps running.
    pub async fn stop_app(&mut self, i: usize) {
        if let Some(mut app) = self.apps[i].take() {
            let _ = tokio::time::timeout(CLOSE_WAIT, app.db.close()).await;
            if let Some(rt) = app.runtime.take() {
                let _ = tokio::task::spawn_blocking(move || rt.shutdown_timeout(CLOSE_WAIT)).await;
            }
        }
    }

    /// Starts node `i`'s app again on the same address.
    pub async fn start_app(&mut self, i: usize) -> Result<(), String> {
        let listener = TcpListener::bind(self.addrs[i])
            .await
            .map_err(|e| e.to_string())?;
        let app = self.serve(i, listener).await?;
        self.apps[i] = Some(app);
        Ok(())
    }
}

impl Drop for AppCluster {
    /// Closes every app's connections before LiteFS stops: a WAL connection left open on a
    /// mount whose LiteFS is gone ends the process with SIGBUS at its next use of `-shm`.
    fn drop(&mut self) {
        let dbs: Vec<ReplicatedDb> = self.apps.iter().flatten().map(|a| a.db.clone()).collect();
        let closing = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                for db in dbs {
                    // Bounded: a connection held by a task of a runtime blocked on this drop
                    // is never returned.
                    let _ = tokio::time::timeout(CLOSE_WAIT, db.close()).await;
                }
            });
        });
        let _ = closing.join();
    }
}

fn standin_mode(mode: JournalMode) -> crate::JournalMode {
    match mode {
        JournalMode::Delete => crate::JournalMode::Delete,
        JournalMode::Truncate => crate::JournalMode::Truncate,
        JournalMode::Persist => crate::JournalMode::Persist,
        _ => crate::JournalMode::Wal,
    }
}
