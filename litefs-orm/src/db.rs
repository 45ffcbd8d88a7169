//! [`ReplicatedDb`]: the handle the app holds — local reads, replicated writes.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult,
    SqlxSqliteConnector, Statement,
};

use crate::auth::Verifier;
use crate::batch::Committer;
use crate::client::{self, HttpTransport, Transport};
use crate::config::Config;
use crate::error::{Error, Result, is_replica_write_error};
use crate::executor::in_transaction;
use crate::idempotency::{self, Ledger};
use crate::job::{Job, OperationJob, WriteJob};
use crate::operation::{OpError, Operation};
use crate::ops::{Applied, ReplicatedActiveModel};
use crate::outbox::Outbox;
use crate::position::PositionTracker;
use crate::registry::Registry;
use crate::role::{Role, RoleWatch};
use crate::server;
use crate::sql;
use crate::wire::Op;

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

/// First pause between attempts that were not applied; it doubles up to [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Longest pause between attempts.
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(500);

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

    /// Where work runs: locally in a transaction on the primary (or standalone), forwarded
    /// from a replica, waited for while no primary is known. Attempts that were not applied
    /// ("not primary", a refused connection) and attempts whose fate is unknown (a lost
    /// answer, a primary change mid-request) are retried against the current primary until
    /// the write deadline: every attempt carries the call's idempotency key, so a primary
    /// that already committed it answers from its record instead of writing again.
    async fn dispatch<J: Job>(&self, job: J) -> Result<J::Output> {
        if !self.inner.registry.contains(job.name()) {
            return Err(Error::UnknownEntity(job.name().to_owned()));
        }
        let cfg = &self.inner.config;
        let deadline = Instant::now() + cfg.write_timeout;
        let remaining = || deadline.saturating_duration_since(Instant::now());
        // Encoded once, at the first forward: every later attempt sends the same bytes,
        // under the same key.
        let mut sent: Option<Bytes> = None;
        let mut attempts = Attempts::default();
        let mut pause = RETRY_PAUSE;
        loop {
            if remaining().is_zero() {
                return Err(job.name_error(attempts.timed_out(cfg.write_timeout)));
            }
            let role = self.role();
            let result = match &role {
                Role::Standalone | Role::Primary => self.run_here(&job, sent.as_ref()).await,
                Role::Replica { primary } => {
                    let body = match &sent {
                        Some(b) => b.clone(),
                        None => sent.insert(job.request(&idempotency::new_key())?).clone(),
                    };
                    self.forward(&job, primary, &role, body, remaining()).await
                }
                Role::NoPrimary => {
                    let wait = cfg.primary_wait.min(remaining());
                    match self.inner.role.wait_for_primary(wait).await {
                        Some(_) => continue,
                        None => {
                            let none = Error::NoPrimary { waited: wait };
                            return Err(job.name_error(attempts.ended_by(none)));
                        }
                    }
                }
            };
            let error = match result {
                Ok(out) => return Ok(out),
                Err(e @ (Error::NotPrimary { .. } | Error::Transport { .. })) => e,
                Err(e) => return Err(job.name_error(attempts.ended_by(e))),
            };
            tracing::debug!(error = %error, "replicated write not done; retrying");
            attempts.failed(error);
            self.refresh_role();
            self.inner
                .role
                .changed_from(&role, pause.min(remaining()))
                .await;
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
        }
    }

    /// Runs `job` on this node, the primary (or standalone).
    async fn run_here<J: Job>(&self, job: &J, sent: Option<&Bytes>) -> Result<J::Output> {
        let Some(body) = sent else {
            // Never sent anywhere: no other node can have committed it, so there is no key
            // to honour.
            let attempt = job.clone();
            return in_transaction(&self.inner.committer, move |txn| {
                Box::pin(async move { attempt.local(txn).await })
            })
            .await
            .map(|(out, _)| out)
            .map_err(|e| e.into_error(None));
        };
        // An earlier attempt was sent, and may have committed there and replicated here:
        // run the very request the primary would have run, under its key.
        let answer = server::run_body(self, J::PATH, body)
            .await
            .map_err(|refused| client::error_from_body(*refused.body))?;
        job.answer(&answer).map(|(out, _)| out)
    }

    /// Sends `job`'s request `body` to `primary` and waits for this replica to catch up with
    /// the commit. A primary change while the answer is awaited ends the attempt as one of
    /// unknown fate: the old primary may never answer, and the key makes asking the new one
    /// safe.
    async fn forward<J: Job>(
        &self,
        job: &J,
        primary: &str,
        role: &Role,
        body: Bytes,
        timeout: Duration,
    ) -> Result<J::Output> {
        let base = self.inner.config.primary_url_for(primary, "");
        let answer = tokio::select! {
            answer = self.inner.outbox.send(&base, J::PATH, body, timeout) => answer?,
            () = self.inner.role.until_changed(role) => {
                return Err(Error::Transport {
                    message: format!("the primary changed (this node is now {}) before it answered", self.role()),
                    url: format!("{base}{}", J::PATH),
                    maybe_committed: true,
                    attempts: 1,
                });
            }
        };
        let (out, txid) = job.answer(&answer)?;
        self.wait_for_txid(txid).await?;
        Ok(out)
    }

    /// Read-your-writes: waits until the local replica has reached `txid`.
    async fn wait_for_txid(&self, txid: u64) -> Result<()> {
        let Some(position) = self.position() else {
            return Ok(());
        };
        let wait = self.inner.config.replication_timeout;
        position
            .wait_for(txid, wait)
            .await
            .map(drop)
            .map_err(|t| Error::ReplicationTimeout {
                txid,
                local: t.last.txid,
                waited: t.waited,
                committed: true,
            })
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

    fn map_err(&self, e: DbErr) -> DbErr {
        if is_replica_write_error(&e) {
            self.refresh_role();
            replica_write_refused(&self.role())
        } else {
            e
        }
    }
}

/// The failed attempts of one call, for the error it ends with.
#[derive(Default)]
struct Attempts {
    count: u32,
    last: Option<Error>,
    /// Where and how the first attempt of unknown fate failed: the call may have been
    /// committed.
    uncertain: Option<(String, String)>,
}

impl Attempts {
    fn failed(&mut self, e: Error) {
        self.count += 1;
        if let Error::Transport {
            url,
            message,
            maybe_committed: true,
            ..
        } = &e
        {
            self.uncertain
                .get_or_insert_with(|| (url.clone(), message.clone()));
        }
        self.last = Some(e);
    }

    /// The error of a call that `last` ended: an attempt that cannot be retried, or no
    /// primary for the whole wait.
    fn ended_by(mut self, last: Error) -> Error {
        self.count += 1;
        self.describe(last)
    }

    /// The error of a call whose deadline passed: the last retried attempt's, or no primary
    /// when none was made.
    fn timed_out(mut self, waited: Duration) -> Error {
        let last = self.last.take().unwrap_or(Error::NoPrimary { waited });
        self.describe(last)
    }

    /// `last`, said to be of unknown outcome when an earlier attempt may have committed and
    /// `last` does not prove otherwise.
    fn describe(self, last: Error) -> Error {
        let attempts = self.count.max(1);
        match (last, self.uncertain) {
            (
                Error::Transport {
                    url,
                    message,
                    maybe_committed,
                    ..
                },
                uncertain,
            ) => Error::Transport {
                url,
                message,
                maybe_committed: maybe_committed || uncertain.is_some(),
                attempts,
            },
            // Answers from a primary that looked the key up before running the call: its
            // history does not hold this call's write. And a commit is a commit.
            (
                e @ (Error::Rejected(_)
                | Error::Operation { .. }
                | Error::ReplicationTimeout { .. }),
                _,
            ) => e,
            (other, Some((url, message))) => Error::Transport {
                url,
                message: format!("{message}; then, at the last attempt: {other}"),
                maybe_committed: true,
                attempts,
            },
            (other, None) => other,
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
        conn.execute_raw(stmt).await.map_err(|e| self.map_err(e))
    }

    async fn execute_unprepared(&self, sql_text: &str) -> Result<ExecResult, DbErr> {
        let conn = self.route(sql_text)?;
        conn.execute_unprepared(sql_text)
            .await
            .map_err(|e| self.map_err(e))
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let conn = self.route(&stmt.sql)?;
        conn.query_one_raw(stmt).await.map_err(|e| self.map_err(e))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let conn = self.route(&stmt.sql)?;
        conn.query_all_raw(stmt).await.map_err(|e| self.map_err(e))
    }

    fn support_returning(&self) -> bool {
        self.inner.reader.support_returning()
    }
}
