//! The primary's watcher: polls `PRAGMA data_version` and bumps `-pos` under SQLite's write lock.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sea_orm::sqlx::{self, sqlite::SqliteConnection};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::files::{checksum, has_header, write_pos};
use super::sqlite::{BUSY_STEP, SqlResult, close, data_version, exec_static, is_busy, open, retry};
use super::state::{PrimaryPos, Shared};
use super::worker::Worker;
use litefs_orm::litefs::{Pos, read_pos};

/// Starts watching node `index` as the primary of `generation`. The receiver fires once the
/// watcher has its `data_version` baseline (or found no database file yet).
pub(crate) fn spawn(
    shared: Arc<Shared>,
    index: usize,
    generation: u64,
) -> io::Result<(Worker, oneshot::Receiver<()>)> {
    let name = format!("litefs-testkit-watch-{}", shared.nodes[index].hostname);
    Worker::spawn(name, move |rt, stop, ready| {
        run(rt, &shared, index, generation, stop, ready)
    })
}

fn run(
    rt: &Runtime,
    shared: &Shared,
    index: usize,
    generation: u64,
    stop: &AtomicBool,
    ready: oneshot::Sender<()>,
) {
    let paths = &shared.nodes[index].paths;
    let txid = read_pos(&paths.pos()).map(|p| p.txid).unwrap_or_default();
    let mut w = PrimaryLoop {
        conn: None,
        last_dv: None,
        txid,
        bump_on_open: !has_header(&paths.db),
    };
    let mut ready = Some(ready);
    let mut last_error = String::new();
    while !stop.load(Ordering::SeqCst) {
        let requested = shared.flush_requested.load(Ordering::SeqCst);
        match rt.block_on(w.step(shared, index, generation, stop)) {
            Ok(()) => {
                shared.flush_done.fetch_max(requested, Ordering::SeqCst);
                last_error.clear();
            }
            Err(e) => {
                let msg = e.to_string();
                if msg != last_error {
                    tracing::warn!("testkit watcher on {}: {msg}", shared.nodes[index].hostname);
                    last_error = msg;
                }
                if let Some(c) = w.conn.take() {
                    rt.block_on(close(c));
                }
                // Commits made while disconnected must not be missed.
                w.bump_on_open = true;
            }
        }
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        std::thread::sleep(shared.poll_interval);
    }
    if let Some(c) = w.conn.take() {
        rt.block_on(close(c));
    }
}

struct PrimaryLoop {
    conn: Option<SqliteConnection>,
    last_dv: Option<i64>,
    txid: u64,
    /// Bump as soon as the file is opened (it appeared after the watcher started, or the
    /// connection was lost).
    bump_on_open: bool,
}

impl PrimaryLoop {
    async fn step(
        &mut self,
        shared: &Shared,
        index: usize,
        generation: u64,
        stop: &AtomicBool,
    ) -> SqlResult<()> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                // Wait for the header: opening the file while the app turns a new database to
                // WAL would make the app's `PRAGMA journal_mode = wal` fail (it cannot wait for
                // locks). Nothing is committed before the header exists.
                if !has_header(&shared.nodes[index].paths.db) {
                    return Ok(());
                }
                let mut conn = open(&shared.nodes[index].paths.db, false, true).await?;
                self.last_dv = Some(retry!(data_version(&mut conn))?);
                self.conn.insert(conn)
            }
        };
        let changed = std::mem::take(&mut self.bump_on_open)
            || Some(retry!(data_version(conn))?) != self.last_dv;
        if changed {
            self.bump(shared, index, generation, stop).await?;
        }
        Ok(())
    }

    /// Takes the write lock, re-reads `data_version`, writes the next `-pos`, releases the lock.
    async fn bump(
        &mut self,
        shared: &Shared,
        index: usize,
        generation: u64,
        stop: &AtomicBool,
    ) -> SqlResult<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        loop {
            match exec_static(conn, "BEGIN IMMEDIATE").await {
                Ok(()) => break,
                Err(e) if is_busy(&e) && !stop.load(Ordering::SeqCst) => {
                    std::thread::sleep(BUSY_STEP)
                }
                Err(e) if is_busy(&e) => {
                    self.bump_on_open = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        let locked = async {
            let dv = retry!(data_version(conn))?;
            let page_size: i64 =
                retry!(sqlx::query_scalar("PRAGMA main.page_size").fetch_one(&mut *conn))?;
            let commit: i64 =
                retry!(sqlx::query_scalar("PRAGMA main.page_count").fetch_one(&mut *conn))?;
            let txid = self.txid + 1;
            let pos = Pos {
                txid,
                checksum: checksum(txid),
            };
            write_pos(&shared.nodes[index].paths, pos).map_err(sqlx::Error::Io)?;
            Ok::<_, sqlx::Error>((dv, pos, page_size, commit))
        }
        .await;
        let (dv, pos, page_size, commit) = match locked {
            Ok(v) => v,
            Err(e) => {
                let _ = exec_static(conn, "ROLLBACK").await;
                return Err(e);
            }
        };
        // The file already says `pos`: never write the same TXID twice, even if COMMIT fails.
        self.txid = pos.txid;
        retry!(exec_static(conn, "COMMIT"))?;
        self.last_dv = Some(dv);
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let p = PrimaryPos {
            generation,
            pos,
            bumped_at: Instant::now(),
            page_size: page_size as u32,
            commit: commit as u32,
            timestamp_ms,
        };
        shared.primary_pos.send_replace(p);
        shared.notify_tx(index, &p);
        Ok(())
    }
}
