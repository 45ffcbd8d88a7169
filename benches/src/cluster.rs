//! The benchmark's cluster: a primary and a replica on the LiteFS stand-in, each a real
//! `ReplicatedDb` serving its router over loopback HTTP, with timers on both ends of the
//! forwarded path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use litefs_orm::auth;
use litefs_orm::client::{HttpTransport, Transport};
use litefs_orm::{Config, Registry, ReplicatedDb};
use litefs_orm_testkit::{Cluster, ClusterOptions, JournalMode, ReplicaWrites};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sea_orm::sqlx::{self, Connection};
use sea_orm::{ConnectionTrait, DatabaseConnection, SqlxSqliteConnector};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::entity::item;
use crate::stats::Samples;

/// The RPC secret of the benchmark cluster.
pub const SECRET: &str = "benchmark secret, 32 bytes long..";
/// The replication timeout of a handle that does not wait for replication: the smallest one a
/// handle accepts. A forwarded write through it returns `ReplicationTimeout { committed: true }`
/// after at most this long, which the harness counts as written.
pub const NO_WAIT: Duration = Duration::from_millis(1);
/// A no-op route on the primary's server: one loopback HTTP round trip, nothing else.
pub const NOOP_PATH: &str = "/bench/noop";

/// Durations recorded while switched on; shared between a timer and the harness.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Option<Samples>>>);

impl Recorder {
    /// Starts recording (dropping anything recorded before).
    pub fn start(&self) {
        *self.lock() = Some(Samples::default());
    }

    /// Stops recording and returns what was recorded.
    pub fn take(&self) -> Samples {
        self.lock().take().unwrap_or_default()
    }

    fn record(&self, d: Duration) {
        if let Some(s) = self.lock().as_mut() {
            s.push(d);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Samples>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The HTTP transport with a stopwatch: how long each forwarded request took, signing,
/// HTTP and the primary's handler included.
pub struct TimedTransport {
    inner: HttpTransport,
    /// One sample per request.
    pub sends: Recorder,
}

impl Transport for TimedTransport {
    fn send<'a>(
        &'a self,
        url: &'a str,
        body: Bytes,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = litefs_orm::Result<Bytes>> + Send + 'a>>
    {
        Box::pin(async move {
            let start = Instant::now();
            let answer = self.inner.send(url, body, timeout).await;
            self.sends.record(start.elapsed());
            answer
        })
    }
}

/// One node: its handle and its router's address.
pub struct Node {
    /// The app's handle on this node.
    pub db: ReplicatedDb,
    /// Where its router listens.
    pub addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The cluster and the timers the harness reads.
pub struct Bench {
    /// The LiteFS stand-in.
    pub litefs: Cluster,
    /// Node 0, the primary.
    pub primary: Node,
    /// Node 1, a replica.
    pub replica: Node,
    /// A second handle on node 1 that does not wait for replication (a [`NO_WAIT`]
    /// replication timeout: a forwarded write returns `ReplicationTimeout { committed: true }`
    /// unless its TXID is already there): the forwarding path alone, coalescing included.
    pub replica_no_wait: ReplicatedDb,
    /// A plain SeaORM connection on the replica's file, opened like the handle's reader.
    pub plain: DatabaseConnection,
    /// The replica's transport timer.
    pub transport: Arc<TimedTransport>,
    /// The primary's handler timer (forwarded writes only).
    pub handler: Recorder,
}

/// The registry of both nodes.
pub fn registry() -> Registry {
    Registry::new().entity::<item::Entity>()
}

/// The primary's read-only pool options, as `ReplicatedDb` opens its reader.
fn reader_options(path: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(5))
        .pragma("query_only", "ON")
}

async fn timed_handler(State(rec): State<Recorder>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    rec.record(start.elapsed());
    response
}

/// The no-op route: answers the body's length, signed for the request's nonce as the
/// endpoint signs its answers (the transport trusts no unsigned answer), and nothing else.
async fn noop(headers: HeaderMap, body: Bytes) -> Response {
    let answer = body.len().to_string();
    let nonce = headers
        .get(auth::NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signature = auth::sign_answer(SECRET.as_bytes(), nonce, 200, answer.as_bytes());
    ([(auth::ANSWER_SIGNATURE_HEADER, signature)], answer).into_response()
}

impl Bench {
    /// Starts the stand-in (WAL), creates the schema on the primary and replicates it, and
    /// serves both nodes' routers on loopback.
    pub async fn start() -> Result<Bench> {
        let listeners = [
            TcpListener::bind("127.0.0.1:0").await?,
            TcpListener::bind("127.0.0.1:0").await?,
        ];
        let hostnames: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.to_string()))
            .collect::<std::io::Result<_>>()?;
        let litefs = stand_in(hostnames).await?;

        let handler = Recorder::default();
        let transport = Arc::new(TimedTransport {
            inner: HttpTransport::new(SECRET)?,
            sends: Recorder::default(),
        });
        let [l0, l1] = listeners;
        let primary = Self::node(&litefs, 0, l0, &handler, None).await?;
        let replica = Self::node(&litefs, 1, l1, &handler, Some(transport.clone())).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(replica.db.config().read_connections)
            .min_connections(0)
            .connect_with(reader_options(&litefs.db_path(1)))
            .await?;
        let plain = SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
        let no_wait = Config::litefs(litefs.mount(1), "app.db")
            .with_primary_url("http://{primary}")
            .with_rpc_secret(SECRET)
            .with_replication_timeout(NO_WAIT);
        let replica_no_wait =
            ReplicatedDb::connect_with_transport(no_wait, registry(), transport.clone()).await?;
        Ok(Bench {
            litefs,
            primary,
            replica,
            replica_no_wait,
            plain,
            transport,
            handler,
        })
    }

    async fn node(
        litefs: &Cluster,
        i: usize,
        listener: TcpListener,
        handler: &Recorder,
        transport: Option<Arc<TimedTransport>>,
    ) -> Result<Node> {
        let config = Config::litefs(litefs.mount(i), "app.db")
            .with_primary_url("http://{primary}")
            .with_rpc_secret(SECRET);
        let db = match transport {
            Some(t) => ReplicatedDb::connect_with_transport(config, registry(), t).await?,
            None => ReplicatedDb::connect(config, registry()).await?,
        };
        let app = litefs_orm::router(db.clone())
            .layer(middleware::from_fn_with_state(
                handler.clone(),
                timed_handler,
            ))
            .route(NOOP_PATH, axum::routing::post(noop));
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Node { db, addr, server })
    }

    /// The primary's URL for `path`.
    pub fn primary_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.primary.addr)
    }

    /// Empties the benchmark table and the idempotency records on the primary and waits
    /// until the replica has that. The stand-in copies the whole database to the replica at
    /// every sync, so its cost grows with the database: each write phase starts from an
    /// empty one.
    pub async fn reset(&self) -> Result<()> {
        self.clear().await?;
        self.litefs.sync().await?;
        Ok(())
    }

    /// [`reset`](Bench::reset) while replication is paused: empties without waiting.
    pub async fn reset_paused(&self) -> Result<()> {
        self.clear().await
    }

    async fn clear(&self) -> Result<()> {
        clear(&self.primary.db).await
    }

    /// Rows in the table, read on the primary.
    pub async fn rows(&self) -> Result<i64> {
        let row = self
            .primary
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT count(*) FROM item",
            ))
            .await?
            .context("count(*) returned no row")?;
        Ok(row.try_get_by_index(0)?)
    }
}

/// Empties the benchmark table and the idempotency records through `primary`'s handle.
pub async fn clear(primary: &ReplicatedDb) -> Result<()> {
    primary.execute_unprepared("DELETE FROM item").await?;
    let records = format!("DELETE FROM {}", litefs_orm::IDEMPOTENCY_TABLE);
    match primary.execute_unprepared(&records).await {
        Err(e) if !e.to_string().contains("no such table") => Err(e.into()),
        _ => Ok(()),
    }
}

/// The LiteFS stand-in for two nodes named `hostnames` (their routers' addresses), in WAL,
/// with the benchmark's table created on the primary and replicated.
pub async fn stand_in(hostnames: Vec<String>) -> Result<Cluster> {
    // The role comes from `.primary`: no `/events` stream costs CPU per commit. Plain
    // directories, no FUSE mount: the bench measures litefs-orm's costs, and the stand-in's
    // mount would add its own to every file access of both sides.
    let litefs = Cluster::start(
        ClusterOptions::default()
            .nodes(2)
            .hostnames(hostnames)
            .http_api(false)
            .journal_mode(JournalMode::Wal)
            .replica_writes(ReplicaWrites::Detected),
    )
    .await
    .context("starting the LiteFS stand-in")?;
    let mut setup = sqlx::SqliteConnection::connect_with(&litefs.connect_options(0)).await?;
    sqlx::raw_sql(item::SCHEMA).execute(&mut setup).await?;
    setup.close().await?;
    litefs.sync().await.context("replicating the schema")?;
    Ok(litefs)
}
