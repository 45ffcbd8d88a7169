//! [`ReplicatedDb`]: the handle the app holds — local reads, replicated writes.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult,
    SqlxSqliteConnector, Statement,
};

use crate::api::active_model::{Applied, ReplicatedActiveModel};
use crate::api::operation::{OpError, Operation};
use crate::api::registry::Registry;
use crate::config::Config;
use crate::db::job::{OperationJob, WriteJob};
use crate::error::{Error, Result, SqliteFailure, classify};
use crate::litefs::position::PositionTracker;
use crate::litefs::role::{Role, RoleWatch};
use crate::primary::executor::ExecError;
use crate::primary::group_commit::Committer;
use crate::primary::idempotency::Ledger;
use crate::protocol::auth::Verifier;
use crate::protocol::wire::Op;
use crate::replica::client::{HttpTransport, Transport};
use crate::replica::outbox::Outbox;

mod dispatch;
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
}

struct Inner {
    config: Config,
    reader: DatabaseConnection,
    /// The writer connection, the position and the group-commit queue.
    committer: Arc<Committer>,
    role: RoleWatch,
    registry: Registry,
    outbox: Arc<Outbox>,
    verifier: Verifier,
    ledger: Ledger,
    /// An I/O failure was logged and the database has not been reopened since.
    io_failing: AtomicBool,
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
        let transport = HttpTransport::new(config.rpc_secret.as_deref().unwrap_or_default())?;
        Self::connect_with_transport(config, registry, Arc::new(transport)).await
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
                let role = RoleWatch::litefs(mount.clone(), config.litefs_http.clone()).await;
                let tracker = PositionTracker::new(&config.db_path());
                if let Some(name) = config.database.file_name() {
                    role.follow_transactions(name.to_string_lossy(), tracker.clone());
                }
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
        let writer = open(&path, 1, false, may_create).await?;
        let reader = open(&path, config.read_connections, true, false).await?;
        let verifier = Verifier::new(config.rpc_secret.as_deref(), config.max_clock_skew);
        let ledger = Ledger::new(config.idempotency_window);
        let outbox = Outbox::new(transport, config.max_body_bytes);
        Ok(ReplicatedDb {
            inner: Arc::new(Inner {
                config,
                reader,
                committer: Committer::new(writer, position),
                role,
                registry,
                outbox,
                verifier,
                ledger,
                io_failing: AtomicBool::new(false),
            }),
        })
    }

    /// This node's role as last seen.
    pub fn role(&self) -> Role {
        self.inner.role.current()
    }

    /// The role watcher, to wait for role changes.
    pub fn role_watch(&self) -> &RoleWatch {
        &self.inner.role
    }

    /// The local read-only connection pool (the replica on a LiteFS replica).
    pub fn reader(&self) -> &DatabaseConnection {
        &self.inner.reader
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

    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.inner.committer.writer
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

    fn route(&self, sql_text: &str) -> Result<&DatabaseConnection, DbErr> {
        if sql::is_read(sql_text) {
            return Ok(&self.inner.reader);
        }
        match self.role() {
            Role::Standalone | Role::Primary => Ok(self.writer()),
            role => Err(replica_write_refused(&role)),
        }
    }

    /// A failed SeaORM call: "not primary" when SQLite refused the write the way a LiteFS
    /// replica does and a fresh look at the role agrees; otherwise SQLite's own error (an
    /// I/O failure is noted, see [`ReplicatedDb::io_failed`]).
    async fn map_err(&self, e: DbErr) -> DbErr {
        match classify(&e) {
            SqliteFailure::ReplicaRefusal => {
                if self.confirms_not_primary().await {
                    return replica_write_refused(&self.role());
                }
                // Still the primary: the read-only pool refusing a write, or a mount that
                // went away.
                e
            }
            SqliteFailure::Io => {
                self.io_failed(&e);
                e
            }
            SqliteFailure::Other => e,
        }
    }

    /// Whether a fresh look at the role (LiteFS's `/info`, or its files) says this node is
    /// not the primary. A role that cannot be read does not say so.
    pub(crate) async fn confirms_not_primary(&self) -> bool {
        self.refresh_role();
        matches!(self.inner.role.check().await, Some(role) if !role.writes_locally())
    }

    /// What a failure of SQLite on this node's writer means once the role was looked at: a
    /// replica-style refusal becomes [`ExecError::NotPrimary`] when LiteFS says this node is
    /// not the primary, and an I/O failure otherwise; other failures are what they are.
    pub(crate) async fn resolve(&self, e: ExecError) -> ExecError {
        let e = match e {
            ExecError::ReadOnly(err) => {
                if self.confirms_not_primary().await {
                    return ExecError::NotPrimary;
                }
                ExecError::Io(err)
            }
            e => e,
        };
        if let ExecError::Io(err) = &e {
            self.io_failed(err);
        }
        e
    }

    /// Notes an I/O failure of this node's database: logged once until the database works
    /// again.
    pub(crate) fn io_failed(&self, e: &DbErr) {
        if !self.inner.io_failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                database = %self.inner.config.db_path().display(),
                error = %e,
                "SQLite I/O error: the LiteFS mount may have gone away (LiteFS stopped or restarted under this app)"
            );
        }
    }
}

fn replica_write_refused(role: &Role) -> DbErr {
    DbErr::Custom(format!(
        "litefs-orm: this node is a {role}, and SQLite writes only run on the LiteFS primary; \
         write through the ActiveModel's insert_replicated / update_replicated / save_replicated / \
         delete_replicated (litefs_orm::ReplicatedActiveModel) so the write is forwarded to the primary"
    ))
}

async fn wait_for_file(path: &Path, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > timeout {
            return Err(Error::Config(format!(
                "{} does not exist on this replica after {timeout:?}: has the primary created it, and is LiteFS replicating?",
                path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn open(
    path: &Path,
    connections: u32,
    read_only: bool,
    create: bool,
) -> Result<DatabaseConnection> {
    let mut options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .busy_timeout(Duration::from_secs(5));
    if read_only {
        // Writes on this pool fail inside SQLite, whatever the node's role.
        options = options.pragma("query_only", "ON");
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(0)
        .connect_with(options)
        .await
        .map_err(|e| Error::Database(DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(e)))))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

#[async_trait::async_trait]
impl ConnectionTrait for ReplicatedDb {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let conn = self.route(&stmt.sql)?;
        match conn.execute_raw(stmt).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.map_err(e).await),
        }
    }

    async fn execute_unprepared(&self, sql_text: &str) -> Result<ExecResult, DbErr> {
        let conn = self.route(sql_text)?;
        match conn.execute_unprepared(sql_text).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.map_err(e).await),
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let conn = self.route(&stmt.sql)?;
        match conn.query_one_raw(stmt).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.map_err(e).await),
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let conn = self.route(&stmt.sql)?;
        match conn.query_all_raw(stmt).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.map_err(e).await),
        }
    }

    fn support_returning(&self) -> bool {
        self.inner.reader.support_returning()
    }
}
