//! [`ReplicatedDb`]: the handle the app holds — local reads, replicated writes.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult,
    SqlxSqliteConnector, Statement,
};

use crate::api::active_model::{Applied, ReplicatedActiveModel};
use crate::api::operation::{OpError, Operation};
use crate::api::registry::Registry;
use crate::config::{Config, JournalMode};
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
}

/// Shortest time between two reopenings: failures of the connections a reopening replaces
/// keep arriving for a moment after it, and must not start another.
const REOPEN_GAP: Duration = Duration::from_secs(1);
/// How often the handle looks at the LiteFS mount's identity, to reopen its connections
/// on a mount that LiteFS has mounted again.
const MOUNT_CHECK: Duration = Duration::from_secs(1);

/// A directory's identity: device and inode. A new FUSE mount has a new device (LiteFS
/// mounted again, e.g. 39 → 42); a directory put in the place of another, a new inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MountId {
    dev: u64,
    ino: u64,
}

impl MountId {
    /// `path`'s identity, or `None` when it cannot be read (a dead FUSE mount answers
    /// `ENOTCONN`).
    pub(crate) fn of(path: &Path) -> Option<MountId> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(path).ok()?;
            Some(MountId {
                dev: m.dev(),
                ino: m.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            None
        }
    }
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
        // LiteFS replicates the journal mode from the primary: only a node that writes
        // sets it.
        let journal = may_create.then_some(config.journal_mode);
        let writer = open(&path, 1, false, may_create, journal).await?;
        let reader = open(&path, config.read_connections, true, false, None).await?;
        if !may_create {
            note_journal_mode(&reader, config.journal_mode).await;
        }
        let verifier = Verifier::new(config.rpc_secret.as_deref(), config.max_clock_skew);
        let ledger = Ledger::new(config.idempotency_window);
        let outbox = Outbox::new(transport, config.max_body_bytes);
        let mount = config.litefs_mount.as_deref().and_then(MountId::of);
        let db = ReplicatedDb {
            inner: Arc::new(Inner {
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
            }),
        };
        if db.inner.config.litefs_mount.is_some() {
            tokio::spawn(watch_mount(Arc::downgrade(&db.inner)));
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

    fn route(&self, sql_text: &str) -> Result<DatabaseConnection, DbErr> {
        if sql::is_read(sql_text) {
            return Ok(self.reader());
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

    /// Whether a read that failed with `e` should run once more: it is a read, SQLite failed
    /// with an I/O error, and the connections were just reopened on a LiteFS mount that came
    /// back (a read has no effect, so running it again is safe).
    async fn read_again_after(&self, sql_text: &str, e: &DbErr) -> bool {
        if !sql::is_read(sql_text) || !matches!(classify(e), SqliteFailure::Io) {
            return false;
        }
        let before = self.inner.reopened.load(Ordering::Relaxed);
        self.io_failed(e);
        self.check_mount().await || self.inner.reopened.load(Ordering::Relaxed) != before
    }

    /// Notes `e` if it is an I/O failure, and returns it.
    fn io_noted(&self, e: DbErr) -> DbErr {
        if matches!(classify(&e), SqliteFailure::Io) {
            self.io_failed(&e);
        }
        e
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

    /// Notes an I/O failure of this node's database (logged once until the database is
    /// reopened) and reopens the connections in the background: a connection that saw the
    /// LiteFS mount go away never works again, even once LiteFS is back.
    pub(crate) fn io_failed(&self, e: &DbErr) {
        if !self.inner.io_failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                database = %self.inner.config.db_path().display(),
                error = %e,
                "SQLite I/O error: the LiteFS mount may have gone away (LiteFS stopped or restarted under this app); reopening the database connections"
            );
        }
        let db = self.clone();
        tokio::spawn(async move { db.reopen().await });
    }

    /// Reopens the reader pool and the writer connection, unless they were reopened (or
    /// tried to be) within [`REOPEN_GAP`]: concurrent failures reopen once. True when
    /// this call reopened them.
    pub(crate) async fn reopen(&self) -> bool {
        let mut last = self.inner.reopening.lock().await;
        if last.is_some_and(|at| at.elapsed() < REOPEN_GAP) {
            return false;
        }
        *last = Some(Instant::now());
        let config = &self.inner.config;
        let path = config.db_path();
        let mount = config.litefs_mount.as_deref().and_then(MountId::of);
        let journal = self.role().writes_locally().then_some(config.journal_mode);
        let opened = async {
            let writer = open(&path, 1, false, false, journal).await?;
            let reader = open(&path, config.read_connections, true, false, None).await?;
            Ok::<_, Error>((writer, reader))
        };
        let (writer, reader) = match opened.await {
            Ok(pools) => pools,
            Err(e) => {
                tracing::debug!(error = %e, "cannot reopen the database yet");
                return false;
            }
        };
        // The old connections close once the calls still holding them end.
        drop(self.inner.committer.replace_writer(writer));
        drop(std::mem::replace(
            &mut *self
                .inner
                .reader
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            reader,
        ));
        *self
            .inner
            .mount
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = mount;
        self.inner.io_failing.store(false, Ordering::Relaxed);
        self.inner.reopened.fetch_add(1, Ordering::Relaxed);
        tracing::info!(database = %path.display(), "reopened the database connections");
        true
    }

    /// Reopens the connections when the LiteFS mount is not the one they were opened on
    /// (LiteFS mounted again), or when an I/O failure is pending and the mount can be read.
    /// True when it reopened them.
    pub(crate) async fn check_mount(&self) -> bool {
        let Some(dir) = self.inner.config.litefs_mount.as_deref() else {
            return false;
        };
        let Some(now) = MountId::of(dir) else {
            // Dead (ENOTCONN) or absent: nothing to reopen on yet.
            return false;
        };
        let opened_on = *self
            .inner
            .mount
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let moved = opened_on != Some(now);
        if moved || self.inner.io_failing.load(Ordering::Relaxed) {
            if moved {
                tracing::info!(mount = %dir.display(), "the LiteFS mount changed (LiteFS mounted again)");
            }
            return self.reopen().await;
        }
        false
    }
}

/// Looks at the LiteFS mount every [`MOUNT_CHECK`] while the handle lives.
async fn watch_mount(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(MOUNT_CHECK).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        ReplicatedDb { inner }.check_mount().await;
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

/// Logs the journal mode a replica's database has (the primary's choice) when it is not
/// the configured one.
async fn note_journal_mode(conn: &DatabaseConnection, configured: JournalMode) {
    let mode = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get_by_index::<String>(0).ok());
    match mode {
        Some(mode) if !mode.eq_ignore_ascii_case(configured.as_str()) => tracing::info!(
            journal_mode = %mode,
            configured = %configured,
            "this replica's database is in the journal mode the primary set, not the configured one"
        ),
        _ => {}
    }
}

/// Opens a pool on `path`; `journal` sets the journal mode on each of its connections.
async fn open(
    path: &Path,
    connections: u32,
    read_only: bool,
    create: bool,
    journal: Option<JournalMode>,
) -> Result<DatabaseConnection> {
    let mut options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .busy_timeout(Duration::from_secs(5));
    if let Some(mode) = journal {
        options = options.journal_mode(match mode {
            JournalMode::Delete => SqliteJournalMode::Delete,
            JournalMode::Truncate => SqliteJournalMode::Truncate,
            JournalMode::Persist => SqliteJournalMode::Persist,
            _ => SqliteJournalMode::Wal,
        });
    }
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
        match conn.query_one_raw(stmt.clone()).await {
            Ok(r) => Ok(r),
            Err(e) if self.read_again_after(&stmt.sql, &e).await => {
                let conn = self.route(&stmt.sql)?;
                conn.query_one_raw(stmt).await.map_err(|e| self.io_noted(e))
            }
            Err(e) => Err(self.map_err(e).await),
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let conn = self.route(&stmt.sql)?;
        match conn.query_all_raw(stmt.clone()).await {
            Ok(r) => Ok(r),
            Err(e) if self.read_again_after(&stmt.sql, &e).await => {
                let conn = self.route(&stmt.sql)?;
                conn.query_all_raw(stmt).await.map_err(|e| self.io_noted(e))
            }
            Err(e) => Err(self.map_err(e).await),
        }
    }

    fn support_returning(&self) -> bool {
        self.reader().support_returning()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::client::HttpTransport;

    async fn rows(conn: &DatabaseConnection) -> Vec<i64> {
        conn.query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT id FROM t ORDER BY id",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect()
    }

    /// A primary's handle on `<mount>/app.db`, with a table `t` holding row 1.
    async fn primary_on(mount: &Path) -> ReplicatedDb {
        let (role, tx) = RoleWatch::manual(Role::Primary);
        std::mem::forget(tx);
        let db = ReplicatedDb::open_with(
            Config::litefs(mount, "app.db"),
            Registry::new(),
            Arc::new(HttpTransport::new("").unwrap()),
            role,
            None,
        )
        .await
        .unwrap();
        db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        db
    }

    /// Puts a new directory in `mount`'s place, holding a database whose `t` has row 2, as
    /// LiteFS mounting again does; returns where the old one went.
    async fn remount(mount: &Path) -> std::path::PathBuf {
        let old = mount.with_extension("old");
        std::fs::rename(mount, &old).unwrap();
        std::fs::create_dir(mount).unwrap();
        let fresh = open(&mount.join("app.db"), 1, false, true, None)
            .await
            .unwrap();
        fresh
            .execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (2)")
            .await
            .unwrap();
        old
    }

    #[test]
    fn a_directory_put_in_the_mount_s_place_has_another_identity() {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("litefs");
        std::fs::create_dir(&mount).unwrap();
        let before = MountId::of(&mount).unwrap();
        assert_eq!(MountId::of(&mount), Some(before));
        std::fs::rename(&mount, dir.path().join("old")).unwrap();
        std::fs::create_dir(&mount).unwrap();
        assert_ne!(MountId::of(&mount), Some(before));
        assert_eq!(MountId::of(&dir.path().join("absent")), None);
    }

    #[tokio::test]
    async fn an_unchanged_mount_does_not_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = primary_on(dir.path()).await;
        assert!(!db.check_mount().await);
        assert_eq!(db.inner.reopened.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_changed_mount_reopens_reads_and_writes_on_the_new_database() {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("litefs");
        std::fs::create_dir(&mount).unwrap();
        let db = primary_on(&mount).await;
        let old = remount(&mount).await;
        // The background check may get there first.
        db.check_mount().await;
        assert_eq!(db.inner.reopened.load(Ordering::Relaxed), 1);
        assert_eq!(rows(&db.reader()).await, vec![2]);
        db.execute_unprepared("INSERT INTO t VALUES (3)")
            .await
            .unwrap();
        assert_eq!(rows(&db.reader()).await, vec![2, 3]);
        let before = open(&old.join("app.db"), 1, true, false, None)
            .await
            .unwrap();
        assert_eq!(rows(&before).await, vec![1]);
    }

    #[tokio::test]
    async fn concurrent_failures_reopen_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = primary_on(dir.path()).await;
        let tries: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { db.reopen().await })
            })
            .collect();
        let mut reopened = 0;
        for t in tries {
            reopened += usize::from(t.await.unwrap());
        }
        assert_eq!(reopened, 1);
        assert_eq!(db.inner.reopened.load(Ordering::Relaxed), 1);
        assert_eq!(rows(&db.reader()).await, vec![1]);
    }

    #[tokio::test]
    async fn an_io_failure_reopens_the_connections() {
        let dir = tempfile::tempdir().unwrap();
        let db = primary_on(dir.path()).await;
        let e = DbErr::Query(sea_orm::RuntimeErr::SqlxError(Arc::new(
            sea_orm::sqlx::Error::Io(std::io::Error::from_raw_os_error(107)),
        )));
        assert!(db.map_err(e).await.to_string().contains("107"));
        for _ in 0..100 {
            if db.inner.reopened.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(db.inner.reopened.load(Ordering::Relaxed), 1);
        assert!(!db.inner.io_failing.load(Ordering::Relaxed));
    }

    async fn journal_mode(conn: &DatabaseConnection) -> String {
        conn.query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
    }

    #[tokio::test]
    async fn a_primary_opens_its_database_in_wal_mode_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let db = primary_on(dir.path()).await;
        assert_eq!(journal_mode(&db.writer()).await, "wal");
        assert_eq!(journal_mode(&db.reader()).await, "wal");
    }

    #[tokio::test]
    async fn a_standalone_node_sets_the_configured_journal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            Config::standalone(dir.path().join("app.db")).with_journal_mode(JournalMode::Truncate);
        let db = ReplicatedDb::connect(config, Registry::new())
            .await
            .unwrap();
        assert_eq!(journal_mode(&db.writer()).await, "truncate");
    }

    #[tokio::test]
    async fn a_replica_keeps_the_journal_mode_the_primary_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let primary = open(&path, 1, false, true, Some(JournalMode::Delete))
            .await
            .unwrap();
        primary
            .execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        let (role, tx) = RoleWatch::manual(Role::NoPrimary);
        std::mem::forget(tx);
        let replica = ReplicatedDb::open_with(
            Config::standalone(&path),
            Registry::new(),
            Arc::new(HttpTransport::new("").unwrap()),
            role,
            None,
        )
        .await
        .unwrap();
        assert_eq!(journal_mode(&replica.writer()).await, "delete");
    }
}
