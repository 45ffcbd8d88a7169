//! LiteFS's own write forwarding, the bar forwarded writes are measured against: a writer on a
//! replica takes the HALT lock, writes locally, and LiteFS ships its transaction to the primary.
//!
//! The HALT lock is an open-file-description write lock on byte 72 of `<db>-lock` in the
//! replica's mount (`F_OFD_SETLKW`; LiteFS v0.5.14, `fuse/lock_node.go`). Taking it asks the
//! primary for its halt lock (which stops every other writer of the cluster), then waits until
//! the replica holds the primary's exact position; while it is held the replica's database is
//! writable, and each commit is sent to the primary before `COMMIT` returns. Releasing it
//! (`F_UNLCK`, or closing the file) hands the halt lock back. No LiteFS option enables it.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sea_orm::sqlx::{self, Connection};

/// The lock byte LiteFS reserves for the HALT lock in `<db>-lock` (`LockTypeHalt`).
pub const HALT_BYTE: i64 = 72;

/// One writer process's worth of state: its own open file description of `<db>-lock` and its
/// own SQLite connection to the replica's database.
pub struct HaltWriter {
    /// Never duplicated: closing any descriptor of it (a `dup` too) releases the lock.
    lock: Arc<File>,
    conn: SqliteConnection,
}

/// A one-byte lock request on [`HALT_BYTE`] of `kind` (`F_WRLCK` or `F_UNLCK`).
fn halt_range(kind: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: HALT_BYTE,
        l_len: 1,
        // Must be 0 for open-file-description locks.
        l_pid: 0,
    }
}

impl HaltWriter {
    /// Opens `<db>-lock` and a connection to `db`, both through the replica's mount.
    pub async fn open(db: &Path) -> Result<HaltWriter> {
        let lock_path = format!("{}-lock", db.display());
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {lock_path} (is this a LiteFS mount?)"))?;
        let options = SqliteConnectOptions::new()
            .filename(db)
            .busy_timeout(Duration::from_secs(10));
        let conn = SqliteConnection::connect_with(&options).await?;
        Ok(HaltWriter {
            lock: Arc::new(lock),
            conn,
        })
    }

    /// Sets or clears the HALT lock on a blocking thread: LiteFS answers the request only once
    /// the primary has (and, for a set, the replica has caught up with it).
    async fn fcntl(&self, kind: libc::c_int) -> Result<()> {
        let lock = self.lock.clone();
        tokio::task::spawn_blocking(move || {
            let range = halt_range(kind);
            let arg = if kind == libc::F_UNLCK {
                FcntlArg::F_OFD_SETLK(&range)
            } else {
                FcntlArg::F_OFD_SETLKW(&range)
            };
            fcntl(&*lock, arg)
        })
        .await?
        .with_context(|| {
            let what = if kind == libc::F_UNLCK {
                "releasing"
            } else {
                "taking"
            };
            format!("{what} the HALT lock")
        })?;
        Ok(())
    }

    /// Inserts item `n` as a HALT-forwarding app would: take the lock, `BEGIN IMMEDIATE`,
    /// insert one row, `COMMIT`, release the lock.
    pub async fn insert(&mut self, n: u64) -> Result<()> {
        self.fcntl(libc::F_WRLCK).await?;
        let written = self.write(n).await;
        if written.is_err() {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
        }
        let released = self.fcntl(libc::F_UNLCK).await;
        written.and(released)
    }

    async fn write(&mut self, n: u64) -> Result<()> {
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await?;
        sqlx::query("INSERT INTO item (name, qty, price, note) VALUES (?, ?, ?, ?)")
            .bind(format!("item {n}"))
            .bind((n % 100) as i32)
            .bind(9.5 + (n % 7) as f64)
            .bind("benchmark")
            .execute(&mut self.conn)
            .await?;
        sqlx::raw_sql("COMMIT").execute(&mut self.conn).await?;
        Ok(())
    }

    /// Closes the connection (before LiteFS stops: see `litefs_orm_testkit::real`).
    pub async fn close(self) -> Result<()> {
        self.conn.close().await?;
        Ok(())
    }
}
