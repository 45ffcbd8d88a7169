//! A replica's replicator: copies the primary into the replica, writes `-pos` and `.lag`, and
//! detects writes made directly to the replica's file.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::sqlx::{self, sqlite::SqliteConnection};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::copy::{CopyCache, copy_database};
use super::files::{has_header, header_says_wal, write_lag, write_pos};
use super::fuse::trust_connection;
use super::options::JournalMode;
use super::sqlite::{SqlResult, close, data_version, exec, exec_static, open, retry, ro_uri};
use super::state::{PrimaryPos, Role, Shared, lock};
use super::worker::Worker;
use litefs_orm::litefs::LAG_NEVER_SYNCED_MS;

/// At most this many snapshots wait out the replication delay per replica; further commits
/// are staged once the oldest has been applied.
const MAX_STAGED: usize = 256;
/// How often a replica's `data_version` is checked for writes made by others.
const DETECT_EVERY: Duration = Duration::from_millis(1);

/// Starts replicating into node `index`. The receiver fires once the replica's database file
/// exists and the write-detection baseline is taken.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    index: usize,
) -> io::Result<(Worker, oneshot::Receiver<()>)> {
    let name = format!("litefs-testkit-replicate-{}", shared.nodes[index].hostname);
    Worker::spawn(name, move |rt, stop, ready| {
        run(rt, shared, index, stop, ready)
    })
}

fn run(
    rt: &Runtime,
    shared: Arc<Shared>,
    index: usize,
    stop: &AtomicBool,
    ready: oneshot::Sender<()>,
) {
    let poll = shared.poll_interval;
    let mut r = Replica::new(shared, index);
    if let Err(e) = rt.block_on(r.connect()) {
        r.report(e);
    }
    let _ = ready.send(());
    while !stop.load(Ordering::SeqCst) {
        if let Err(e) = rt.block_on(r.tick()) {
            r.report(e);
            if let Some(c) = r.conn.take() {
                rt.block_on(close(c));
            }
        }
        std::thread::sleep(poll);
    }
    if let Some(c) = r.conn.take() {
        rt.block_on(close(c));
    }
}

/// A snapshot of the primary waiting out the replication delay; its file goes with it.
struct Staged {
    primary: PrimaryPos,
    path: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Replica {
    shared: Arc<Shared>,
    index: usize,
    conn: Option<SqliteConnection>,
    /// `data_version` after our own last write: any other value means someone else wrote.
    baseline: Option<i64>,
    staged: VecDeque<Staged>,
    last_applied_stage: Option<Staged>,
    stage_seq: u64,
    written_lag: Option<i64>,
    last_detect: Option<Instant>,
    /// The file attached as `src` on `conn`.
    attached: Option<PathBuf>,
    cache: CopyCache,
}

impl Replica {
    fn new(shared: Arc<Shared>, index: usize) -> Self {
        Replica {
            shared,
            index,
            conn: None,
            baseline: None,
            staged: VecDeque::new(),
            last_applied_stage: None,
            stage_seq: 0,
            written_lag: None,
            last_detect: None,
            attached: None,
            cache: CopyCache::default(),
        }
    }

    fn hostname(&self) -> &str {
        &self.shared.nodes[self.index].hostname
    }

    fn report(&mut self, e: sqlx::Error) {
        let msg = e.to_string();
        let mut last = lock(&self.shared.nodes[self.index].replication_error);
        if last.as_deref() != Some(msg.as_str()) {
            tracing::warn!("testkit replicator on {}: {msg}", self.hostname());
            *last = Some(msg);
        }
        drop(last);
        self.baseline = None;
    }

    /// Opens (creating) the replica's file; sets the cluster's journal mode where that needs no
    /// exclusive access (new file, or a rollback mode on a file not in WAL).
    async fn connect(&mut self) -> SqlResult<&mut SqliteConnection> {
        if self.conn.is_none() {
            let db = &self.shared.nodes[self.index].paths.db;
            let existed = db.exists();
            let mut conn = open(db, true, false).await?;
            if let Some(trusted) = &self.shared.trusted {
                let mount = &self.shared.nodes[self.index].paths.mount;
                trust_connection(&mut conn, trusted, mount).await?;
            }
            let mode: String =
                retry!(sqlx::query_scalar("PRAGMA main.journal_mode").fetch_one(&mut conn))?;
            let want = self.shared.journal_mode;
            let settable = !existed || (mode != "wal" && want != JournalMode::Wal);
            if settable && !mode.eq_ignore_ascii_case(want.as_str()) {
                let sql = format!("PRAGMA main.journal_mode = {}", want.as_str());
                retry!(exec(&mut conn, sql.clone()))?;
            }
            if want == JournalMode::Wal && !header_says_wal(db) {
                // Put the WAL marker into the main file's header now (a write, then a
                // checkpoint): until it is there, an app connection's own
                // `PRAGMA journal_mode = wal` tries to write the header and fails with
                // `database is locked` while this connection is open.
                let sql = "PRAGMA main.user_version = 0; PRAGMA main.wal_checkpoint(TRUNCATE);";
                retry!(exec_static(&mut conn, sql))?;
            }
            self.baseline = Some(retry!(data_version(&mut conn))?);
            self.attached = None;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    async fn tick(&mut self) -> SqlResult<()> {
        self.detect_writes().await?;
        let role = self.shared.role();
        let connected = matches!(role.primary, Some(p) if p != self.index);
        if connected && !self.shared.paused_to(self.index) {
            self.replicate(role).await?;
            let mut state = lock(&self.shared.nodes[self.index].state);
            let synced = state.applied.is_some();
            if synced {
                state.last_contact = Some(Instant::now());
            }
            drop(state);
            self.set_lag(if synced { 0 } else { LAG_NEVER_SYNCED_MS });
        } else {
            let last = self.shared.node_state(self.index).last_contact;
            let lag = last.map_or(LAG_NEVER_SYNCED_MS, |t| {
                (t.elapsed().as_millis() as i64).max(1)
            });
            self.set_lag(lag);
        }
        Ok(())
    }

    fn set_lag(&mut self, ms: i64) {
        if self.written_lag != Some(ms) {
            match write_lag(&self.shared.nodes[self.index].paths, ms) {
                Ok(()) => self.written_lag = Some(ms),
                Err(e) => tracing::warn!("testkit: writing .lag on {}: {e}", self.hostname()),
            }
        }
    }

    /// Records a violation when `data_version` moved without us writing.
    async fn detect_writes(&mut self) -> SqlResult<()> {
        if self.conn.is_some() && self.last_detect.is_some_and(|t| t.elapsed() < DETECT_EVERY) {
            return Ok(());
        }
        let conn = self.connect().await?;
        let dv = retry!(data_version(conn))?;
        self.last_detect = Some(Instant::now());
        self.check_baseline(dv);
        Ok(())
    }

    fn check_baseline(&mut self, dv: i64) {
        if self.baseline.is_some_and(|b| b != dv) {
            let node = &self.shared.nodes[self.index];
            let msg = format!(
                "testkit: a connection wrote to {} on {}, which is not the primary; real LiteFS \
                 fails such writes (SQLITE_IOERR in WAL mode, SQLITE_READONLY otherwise); the next \
                 sync overwrites it",
                node.paths.db.display(),
                node.hostname
            );
            self.shared.record_violation(msg);
            lock(&node.state).dirty = true;
        }
        self.baseline = Some(dv);
    }

    async fn replicate(&mut self, role: Role) -> SqlResult<()> {
        // The position first: the snapshot taken after it covers at least that transaction.
        let p = *self.shared.primary_pos.borrow();
        let Some(primary) = role.primary else {
            return Ok(());
        };
        if p.generation != role.generation {
            return Ok(());
        }
        let primary_db = self.shared.nodes[primary].paths.db.clone();
        let state = self.shared.node_state(self.index);
        let current = Some((p.generation, p.pos));
        let delay = self.shared.delay();
        if delay.is_zero() {
            self.staged.clear();
            self.last_applied_stage = None;
            if state.dirty || state.applied != current {
                self.apply(&primary_db, &p).await?;
            }
            return Ok(());
        }
        self.staged.retain(|s| s.primary.generation == p.generation);
        let newest = self
            .staged
            .back()
            .map(|s| (s.primary.generation, s.primary.pos));
        if newest.or(state.applied) != current && self.staged.len() < MAX_STAGED {
            self.stage(&primary_db, p).await?;
        }
        let now = Instant::now();
        if let Some(i) = self
            .staged
            .iter()
            .rposition(|s| s.primary.bumped_at + delay <= now)
        {
            let ready = self
                .staged
                .drain(..=i)
                .next_back()
                .expect("non-empty range");
            self.apply(&ready.path.clone(), &ready.primary).await?;
            self.last_applied_stage = Some(ready);
        } else if state.dirty
            && let Some(last) = &self.last_applied_stage
            && last.primary.generation == p.generation
        {
            let (path, primary) = (last.path.clone(), last.primary);
            self.apply(&path, &primary).await?;
        }
        Ok(())
    }

    /// Snapshots the primary into a staging file (`VACUUM INTO`).
    async fn stage(&mut self, primary_db: &Path, p: PrimaryPos) -> SqlResult<()> {
        if !has_header(primary_db) {
            return self.mark_applied(&p, false);
        }
        self.stage_seq += 1;
        let path = self
            .shared
            .stage_dir
            .join(format!("{}-{}.db", self.hostname(), self.stage_seq));
        let _ = std::fs::remove_file(&path);
        let staged = Staged { primary: p, path };
        self.attach(primary_db).await?;
        let conn = self.connect().await?;
        let into = staged.path.to_string_lossy().into_owned();
        retry!(
            sqlx::query("VACUUM src INTO ?1")
                .bind(into.clone())
                .execute(&mut *conn)
        )?;
        self.staged.push_back(staged);
        Ok(())
    }

    /// Copies `source` into the replica in one transaction, then writes `-pos` = `p`.
    async fn apply(&mut self, source: &Path, p: &PrimaryPos) -> SqlResult<()> {
        // No header: nobody has written the primary yet (and opening it now could race the
        // app's switch to WAL), so there is nothing to copy.
        if !has_header(source) {
            return self.mark_applied(p, false);
        }
        self.attach(source).await?;
        let conn = self.conn.as_mut().expect("attach connects");
        let before = copy_in_transaction(conn, &mut self.cache).await?;
        let after = retry!(data_version(conn))?;
        self.check_baseline(before);
        self.baseline = Some(after);
        self.mark_applied(p, true)
    }

    /// Attaches `db` read-only as `src`, unless it already is.
    async fn attach(&mut self, db: &Path) -> SqlResult<()> {
        if self.conn.is_some() && self.attached.as_deref() == Some(db) {
            return Ok(());
        }
        self.connect().await?;
        let was_attached = self.attached.take().is_some();
        let conn = self.conn.as_mut().expect("connected above");
        if was_attached {
            retry!(exec_static(conn, "DETACH DATABASE src"))?;
        }
        let uri = ro_uri(db);
        retry!(
            sqlx::query("ATTACH DATABASE ?1 AS src")
                .bind(uri.clone())
                .execute(&mut *conn)
        )?;
        self.attached = Some(db.to_owned());
        Ok(())
    }

    fn mark_applied(&mut self, p: &PrimaryPos, copied: bool) -> SqlResult<()> {
        let node = &self.shared.nodes[self.index];
        write_pos(&node.paths, p.pos).map_err(sqlx::Error::Io)?;
        let mut state = lock(&node.state);
        state.applied = Some((p.generation, p.pos));
        state.dirty = false;
        drop(state);
        *lock(&node.replication_error) = None;
        if copied {
            self.shared.notify_tx(self.index, p);
        }
        Ok(())
    }
}

/// `BEGIN IMMEDIATE`, copy, `COMMIT`; returns `data_version` as seen under the lock, before the
/// copy (to catch a write that slipped in since the last check).
async fn copy_in_transaction(conn: &mut SqliteConnection, cache: &mut CopyCache) -> SqlResult<i64> {
    retry!(exec_static(conn, "BEGIN IMMEDIATE"))?;
    let result = async {
        let dv = retry!(data_version(conn))?;
        copy_database(conn, cache).await?;
        retry!(exec_static(conn, "COMMIT"))?;
        Ok(dv)
    }
    .await;
    if result.is_err() {
        let _ = exec_static(conn, "ROLLBACK").await;
    }
    result
}
