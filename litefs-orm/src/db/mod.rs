//! [`ReplicatedDb`]: the handle the app holds — local reads, replicated writes.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use sea_orm::DatabaseConnection;

use crate::api::active_model::{Applied, ReplicatedActiveModel};
use crate::api::operation::{OpError, Operation};
use crate::api::registry::Registry;
use crate::config::Config;
use crate::db::job::{OperationJob, WriteJob};
use crate::error::{Error, Result};
use crate::litefs::position::PositionTracker;
use crate::litefs::role::{Role, RoleWatch};
use crate::observe::Stats;
use crate::primary::group_commit::Committer;
use crate::primary::idempotency::Ledger;
use crate::protocol::auth::Verifier;
use crate::protocol::wire::Op;
use crate::replica::client::{HttpTransport, NoSecret, Transport};
use crate::replica::outbox::Outbox;

mod connection;
mod dispatch;
mod durable;
mod open;
mod proofs;
mod recovery;
mod status;
mod wait;

use open::{note_journal_mode, open, wait_for_file};
use recovery::{MountId, watch_mount};
pub(crate) mod job;
pub(crate) mod sql;

/// The database handle an app holds: cheap to clone into Axum state.
///
/// Reads through it (`Entity::find().all(&db)`) are ordinary SeaORM reads on the local
/// SQLite file — the LiteFS replica — through a read-only pool. Writes go through
/// [`ReplicatedActiveModel`]'s methods, which run on the primary from any node. A plain
/// SeaORM write through it runs on the primary or standalone, and on a replica fails with
/// an error naming the replicated method, instead of SQLite's `disk I/O error`.
///
/// ```no_run
/// # async fn run() -> litefs_orm::Result<()> {
/// use litefs_orm::{Config, Registry, ReplicatedDb};
/// let db = ReplicatedDb::connect(Config::from_env()?, Registry::new()).await?;
/// println!("this node is {}", db.role());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReplicatedDb {
    inner: Arc<Inner>,
    /// The durability this handle's writes ask for ([`ReplicatedDb::with_durability`]).
    durability: crate::durability::Durability,
}

struct Inner {
    /// The database's name ([`Config::database_name`]), derived once: every forwarded
    /// request, token and endpoint check names it.
    name: String,
    config: Config,
    /// The read-only pool; replaced when the database is reopened.
    reader: RwLock<DatabaseConnection>,
    /// The writer connection, the position and the group-commit queue.
    committer: Arc<Committer>,
    role: RoleWatch,
    registry: Registry,
    outbox: Arc<Outbox>,
    verifier: Verifier,
    ledger: Ledger,
    /// An I/O failure was logged and the database has not been reopened since.
    io_failing: AtomicBool,
    /// The LiteFS mount directory's identity when the connections were (re)opened.
    mount: Mutex<Option<MountId>>,
    /// Held while the connections are reopened: when they last were (or last failed to be).
    reopening: tokio::sync::Mutex<Option<Instant>>,
    /// How many times the connections were reopened.
    reopened: AtomicU64,
    /// The primary term the connections were opened in ([`RoleWatch::primary_term`]).
    connections_term: AtomicU64,
    /// On the primary: the other nodes' reported positions, for durable acknowledgements.
    peers: crate::durability::Peers,
    /// What [`ReplicatedDb::status`] reports beside the role and position.
    stats: Stats,
    /// Reads of the idempotency records that prove a commit is here, shared by waiters.
    proofs: proofs::Proofs,
}

impl std::fmt::Debug for ReplicatedDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedDb")
            .field("database", &self.inner.config.db_path())
            .field("role", &self.role())
            .field("entities", &self.inner.registry)
            .finish_non_exhaustive()
    }
}

impl ReplicatedDb {
    /// Opens the database and starts following the node's role.
    pub async fn connect(config: Config, registry: Registry) -> Result<Self> {
        let transport: Arc<dyn Transport> = match config.rpc_secret.as_deref() {
            Some(secret) => Arc::new(HttpTransport::new(secret)?),
            None => Arc::new(NoSecret),
        };
        Self::connect_with_transport(config, registry, transport).await
    }

    /// Like [`connect`](ReplicatedDb::connect), sending forwarded writes through `transport`.
    pub async fn connect_with_transport(
        config: Config,
        registry: Registry,
        transport: Arc<dyn Transport>,
    ) -> Result<Self> {
        config.validate()?;
        registry.check()?;
        let (role, position) = match &config.litefs_mount {
            None => (RoleWatch::standalone(), None),
            Some(mount) => {
                crate::litefs::startup::check(&config, mount).await?;
                let role = RoleWatch::litefs(mount.clone(), config.litefs_http.clone()).await;
                let tracker = PositionTracker::new(&config.db_path());
                role.follow_transactions(config.database_name(), tracker.clone());
                (role, Some(tracker))
            }
        };
        Self::open_with(config, registry, transport, role, position).await
    }

    /// Opens the database of `config` for a node whose role `role` follows.
    async fn open_with(
        config: Config,
        registry: Registry,
        transport: Arc<dyn Transport>,
        role: RoleWatch,
        position: Option<PositionTracker>,
    ) -> Result<Self> {
        let path = config.db_path();
        let may_create = role.current().writes_locally();
        if !may_create {
            wait_for_file(&path, config.primary_wait + config.replication_timeout).await?;
        }
        // LiteFS replicates the journal mode from the primary: only a node that writes
        // sets it.
        let journal = may_create.then_some(config.journal_mode);
        let writer = open(&path, 1, false, may_create, journal).await?;
        let reader = open(&path, config.read_connections, true, false, None).await?;
        if !may_create {
            note_journal_mode(&reader, config.journal_mode).await;
        }
        let verifier = Verifier::new(config.rpc_secret.as_deref(), config.max_clock_skew)?;
        let ledger = Ledger::new(config.idempotency_window);
        let name = config.database_name();
        let outbox = Outbox::new(transport, config.max_body_bytes, name.clone());
        let mount = config.litefs_mount.as_deref().and_then(MountId::of);
        let term = role.primary_term();
        let durability = config.durability;
        let db = ReplicatedDb {
            durability,
            inner: Arc::new(Inner {
                name,
                config,
                reader: RwLock::new(reader),
                committer: Committer::new(writer, position),
                role,
                registry,
                outbox,
                verifier,
                ledger,
                io_failing: AtomicBool::new(false),
                mount: Mutex::new(mount),
                reopening: tokio::sync::Mutex::new(None),
                reopened: AtomicU64::new(0),
                connections_term: AtomicU64::new(term),
                peers: crate::durability::Peers::default(),
                stats: Stats::default(),
                proofs: proofs::Proofs::default(),
            }),
        };
        if db.inner.config.litefs_mount.is_some() {
            tokio::spawn(watch_mount(Arc::downgrade(&db.inner)));
            tokio::spawn(status::sample(Arc::downgrade(&db.inner)));
            if db.inner.config.rpc_secret.is_some() {
                let weak = Arc::downgrade(&db.inner);
                tokio::spawn(crate::durability::report_positions(move || {
                    weak.upgrade().map(ReplicatedDb::from_inner)
                }));
            }
        }
        Ok(db)
    }

    /// Closes the handle's database connections; calls through it and its clones fail from
    /// then on. For a graceful shutdown, before the LiteFS mount goes away: in WAL mode SQLite
    /// keeps `<db>-shm` mapped from the mount until its connections close.
    ///
    /// ```no_run
    /// # async fn stop(db: litefs_orm::ReplicatedDb) -> litefs_orm::Result<()> {
    /// db.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) -> Result<()> {
        self.writer().close_by_ref().await?;
        self.reader().close_by_ref().await?;
        Ok(())
    }

    /// This node's role as last seen.
    pub fn role(&self) -> Role {
        self.inner.role.current()
    }

    /// The role watcher, to wait for role changes.
    pub fn role_watch(&self) -> &RoleWatch {
        &self.inner.role
    }

    /// The local read-only connection pool (the replica on a LiteFS replica). The handle
    /// replaces it when it reopens the database (after LiteFS was restarted under the app):
    /// take it anew for each use rather than keeping it.
    pub fn reader(&self) -> DatabaseConnection {
        self.inner
            .reader
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The local LiteFS position (`None` when standalone).
    pub fn local_position(&self) -> Option<crate::litefs::Pos> {
        self.position().and_then(|p| p.read().ok())
    }

    /// The configuration this handle was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The registered entities.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn writer(&self) -> DatabaseConnection {
        self.inner.committer.writer()
    }

    pub(crate) fn committer(&self) -> &Arc<Committer> {
        &self.inner.committer
    }

    pub(crate) fn position(&self) -> Option<&PositionTracker> {
        self.inner.committer.position.as_ref()
    }

    pub(crate) fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// A handle on the state `inner`, its writes asking for the configured durability.
    fn from_inner(inner: Arc<Inner>) -> Self {
        let durability = inner.config.durability;
        ReplicatedDb { inner, durability }
    }

    /// The same handle, its writes acknowledged with `durability` instead of
    /// [`Config::durability`]: for the writes that must survive a failover (or those that
    /// need not wait). A forwarded write carries it to the primary, which waits for it.
    ///
    /// ```no_run
    /// # async fn run(db: litefs_orm::ReplicatedDb, model: impl litefs_orm::ReplicatedActiveModel) -> litefs_orm::Result<()> {
    /// use litefs_orm::Durability;
    /// let durable = db.with_durability(Durability::Candidates);
    /// model.insert_replicated(&durable).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_durability(&self, durability: crate::durability::Durability) -> ReplicatedDb {
        ReplicatedDb {
            inner: self.inner.clone(),
            durability,
        }
    }

    /// The durability this handle's writes ask for.
    pub fn durability(&self) -> crate::durability::Durability {
        self.durability
    }

    pub(crate) fn peers(&self) -> &crate::durability::Peers {
        &self.inner.peers
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    pub(crate) fn refresh_role(&self) {
        self.inner.role.refresh();
    }

    /// Runs `op` where it must run: locally on the primary, forwarded from a replica.
    pub(crate) async fn write<A: ReplicatedActiveModel>(
        &self,
        op: Op,
        model: A,
    ) -> Result<Applied<A>> {
        self.dispatch(WriteJob { op, model }).await
    }

    /// Runs operation `op` on the primary, in one transaction, from any node; returns once
    /// this node's replica has its commit.
    ///
    /// ```no_run
    /// # use litefs_orm::{DbFailure, Operation, OpError, ReplicatedDb};
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct IncrementPage { page: String }
    /// # impl Operation for IncrementPage {
    /// #     const NAME: &'static str = "increment_page";
    /// #     type Output = i64;
    /// #     type Error = DbFailure;
    /// #     async fn run(self, _txn: &sea_orm::DatabaseTransaction) -> Result<i64, DbFailure> { Ok(1) }
    /// # }
    /// # async fn count(db: &ReplicatedDb) -> Result<(), OpError<DbFailure>> {
    /// let views: i64 = db.run(IncrementPage { page: "home".into() }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<O: Operation>(&self, op: O) -> Result<O::Output, OpError<O::Error>> {
        let args = serde_json::to_value(&op)
            .map_err(|e| Error::Protocol(format!("serializing operation `{}`: {e}", O::NAME)))?;
        match self
            .dispatch(OperationJob::<O> {
                args,
                _op: PhantomData,
            })
            .await
        {
            Ok(out) => Ok(out),
            Err(Error::Operation { error, .. }) => match serde_json::from_value(error) {
                Ok(e) => Err(OpError::Failed(e)),
                Err(e) => Err(Error::Protocol(format!(
                    "operation `{}` failed with an error of another shape: {e}",
                    O::NAME
                ))
                .into()),
            },
            Err(e) => Err(OpError::Replicated(e)),
        }
    }
}

#[cfg(test)]
mod tests;
