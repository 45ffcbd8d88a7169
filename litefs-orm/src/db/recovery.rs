//! When SQLite fails under the handle: a replica's refusal told from an I/O error, and the
//! connections reopened on a LiteFS mount that came back.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{PoisonError, Weak};
use std::time::{Duration, Instant};

use sea_orm::DbErr;

use super::open::open;
use super::{Inner, ReplicatedDb, sql};
use crate::error::{Error, SqliteFailure, classify};
use crate::litefs::role::Role;
use crate::primary::executor::ExecError;

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
    /// [`MountId::of`], off the runtime's threads (a frozen mount blocks the read).
    pub(crate) async fn read(path: &Path) -> Option<MountId> {
        let path = path.to_path_buf();
        crate::litefs::off_runtime(move || Ok(MountId::of(&path)))
            .await
            .ok()
            .flatten()
    }

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

impl ReplicatedDb {
    /// A failed SeaORM call: "not primary" when SQLite refused the write the way a LiteFS
    /// replica does and a fresh look at the role agrees; otherwise SQLite's own error (an
    /// I/O failure is noted, see [`ReplicatedDb::io_failed`]).
    pub(super) async fn map_err(&self, e: DbErr) -> DbErr {
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
    pub(super) async fn read_again_after(&self, sql_text: &str, e: &DbErr) -> bool {
        if !sql::is_read(sql_text) || !matches!(classify(e), SqliteFailure::Io) {
            return false;
        }
        let before = self.inner.reopened.load(Ordering::Relaxed);
        self.io_failed(e);
        self.check_mount().await || self.inner.reopened.load(Ordering::Relaxed) != before
    }

    /// Notes `e` if it is an I/O failure, and returns it.
    pub(super) fn io_noted(&self, e: DbErr) -> DbErr {
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
            // An operation's own error may be LiteFS's refusal in the operation's clothes (its
            // `?` turned the database error into its error type): on a node that is no longer
            // the primary it is "not primary", and the call runs again on the new one. Its
            // transaction was rolled back either way.
            ExecError::Operation(error) => {
                if self.confirms_not_primary().await {
                    return ExecError::NotPrimary;
                }
                ExecError::Operation(error)
            }
            e => e,
        };
        match &e {
            ExecError::Io(err) => self.io_failed(err),
            ExecError::Unrecorded { txid, at } => {
                tracing::warn!(
                    txid,
                    at,
                    "LiteFS did not record a commit of this node: reopening the database connections"
                );
                let db = self.clone();
                tokio::spawn(async move { db.reopen().await });
            }
            _ => {}
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
        self.swap_connections().await
    }

    /// Before a write on this node: when a primary term began since the connections were
    /// opened ([`RoleWatch::primary_term`](crate::role::RoleWatch::primary_term)), LiteFS
    /// recovered the database under them, and a commit on them may never become a LiteFS
    /// transaction. So the connections of a new term are opened in it, once, by the first
    /// write of the term.
    pub(crate) async fn fresh_connections(&self) {
        let term = self.inner.role.primary_term();
        if self.inner.connections_term.load(Ordering::SeqCst) == term {
            return;
        }
        let mut last = self.inner.reopening.lock().await;
        if self.inner.connections_term.load(Ordering::SeqCst) == term {
            return;
        }
        tracing::info!(
            term,
            "a new LiteFS primary term: opening the database connections anew"
        );
        *last = Some(Instant::now());
        if self.swap_connections().await {
            self.inner.connections_term.store(term, Ordering::SeqCst);
        }
    }

    /// Opens a new reader pool and writer connection and puts them in place of the old
    /// ones, which close once the calls still holding them end. True when it did.
    async fn swap_connections(&self) -> bool {
        let config = &self.inner.config;
        let path = config.db_path();
        let mount = match config.litefs_mount.as_deref() {
            Some(dir) => MountId::read(dir).await,
            None => None,
        };
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
        // The old connections close once the calls still holding them end: SQLite shares
        // one mapping of `-shm` among a process's connections to a database, so none may
        // linger idle in an old pool.
        let old_writer = self.inner.committer.replace_writer(writer);
        let old_reader = std::mem::replace(
            &mut *self
                .inner
                .reader
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            reader,
        );
        tokio::spawn(async move {
            let _ = old_writer.close_by_ref().await;
            let _ = old_reader.close_by_ref().await;
        });
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
        let Some(now) = MountId::read(dir).await else {
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
pub(super) async fn watch_mount(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(MOUNT_CHECK).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        ReplicatedDb::from_inner(inner).check_mount().await;
    }
}
pub(super) fn replica_write_refused(role: &Role) -> DbErr {
    DbErr::Custom(format!(
        "litefs-orm: this node is a {role}, and SQLite writes only run on the LiteFS primary; \
         write through the ActiveModel's insert_replicated / update_replicated / save_replicated / \
         delete_replicated (litefs_orm::ReplicatedActiveModel) so the write is forwarded to the primary"
    ))
}
