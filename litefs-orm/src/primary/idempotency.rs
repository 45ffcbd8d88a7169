//! Idempotency keys: a forwarded write's key and answer, recorded in the write's own
//! transaction, so a retry gets the first answer back instead of writing twice.
//!
//! A replica gives every replicated call one random key and sends it with each attempt. The
//! primary runs the call and records key and result in the same transaction (or
//! group-commit savepoint), so the record commits — and replicates to a node that later
//! becomes primary — exactly when the write does. The key is the record's primary key: a
//! call whose key is already recorded fails to record, and its transaction rolls back.
//!
//! A fresh key is not looked up first: nearly every call is a first attempt, and a look-up
//! before each write cost a statement on the writer's single connection. A key that may be
//! a repeat's — made more than [`REPEAT_AGE`] ago by the key's own clock, as retries and
//! replays are — is looked up first, so the call's work does not run again. Otherwise only
//! when a call fails — to record, or in its own work (a retried insert meeting the row its first
//! attempt wrote) — does the primary read the record, in a transaction of its own, and
//! answer with the recorded result if there is one ([`crate::primary::endpoint`] does this). Records
//! live in [`TABLE`], which the library creates on first use and prunes of records older
//! than [`Config::idempotency_window`](crate::Config::idempotency_window).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, SqlErr, Statement};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::primary::executor::ExecError;

/// The table of recorded keys, in the app's database.
pub const TABLE: &str = "_litefs_orm_idempotency";

/// Longest key accepted.
pub(crate) const MAX_KEY_LEN: usize = 128;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS _litefs_orm_idempotency (\
     key TEXT PRIMARY KEY NOT NULL, \
     digest TEXT NOT NULL, \
     response TEXT NOT NULL, \
     created_ms INTEGER NOT NULL, \
     run TEXT); \
     CREATE INDEX IF NOT EXISTS _litefs_orm_idempotency_created \
     ON _litefs_orm_idempotency (created_ms)";

/// A fresh key for one replicated call: the time in milliseconds (12 hex digits), then 80
/// random bits (20 hex digits). Keys made close in time sort next to each other, so the
/// records of one commit land on the same few pages of the key index instead of one random
/// page each.
pub(crate) fn new_key() -> String {
    let ms = u64::try_from(now_ms()).unwrap_or(0) & 0xffff_ffff_ffff;
    let random: [u8; 10] = rand::random();
    format!("{ms:012x}{}", hex::encode(random))
}

/// Adds the column [`Run`]s live in to a table made before there were any.
const ADD_RUN: &str = "ALTER TABLE _litefs_orm_idempotency ADD COLUMN run TEXT";

/// One execution of a call: a random id recorded with its key, in the transaction that
/// commits the call, and carried in the answer and the tokens. A replayed call answers with
/// the run that committed it; a call that runs again — on a new primary whose history lost
/// the first run — records a new one. So a node holds *this* commit when it holds the key's
/// record with this run, never an abandoned history's record of the same key.
pub(crate) fn new_run() -> String {
    let random: [u8; 8] = rand::random();
    hex::encode(random)
}

/// How old a key (by the time it carries) must be for the primary to look it up before
/// running its call: a first attempt arrives within milliseconds of its key, a retry after
/// a failed attempt, a lost answer or a deadline. Clocks that differ only shift which side
/// of it a call falls on: the look-up saves work, the record keeps the outcome once.
pub(crate) const REPEAT_AGE: Duration = Duration::from_secs(1);

/// A request's key and the digest of its whole body: a key sent again with another body
/// is refused rather than answered with the other request's result.
pub(crate) struct Key {
    id: String,
    digest: String,
}

impl Key {
    /// The key of request `body`; refuses an empty, over-long or non-printable key.
    pub(crate) fn new(id: String, body: &[u8]) -> Result<Key, ExecError> {
        let printable = id.bytes().all(|b| b.is_ascii_graphic());
        if id.is_empty() || id.len() > MAX_KEY_LEN || !printable {
            return Err(ExecError::Args(format!(
                "an idempotency key is 1 to {MAX_KEY_LEN} printable ASCII characters"
            )));
        }
        Ok(Key {
            id,
            digest: hex::encode(Sha256::digest(body)),
        })
    }

    /// Whether this key may belong to a repeat of a call (a retry or a replay): it was made
    /// more than [`REPEAT_AGE`] ago, or it does not carry the time it was made.
    pub(crate) fn may_be_repeat(&self) -> bool {
        let made = self
            .id
            .get(..12)
            .and_then(|ms| i64::from_str_radix(ms, 16).ok());
        let age_ms = i64::try_from(REPEAT_AGE.as_millis()).unwrap_or(i64::MAX);
        made.is_none_or(|ms| now_ms() - ms > age_ms)
    }
}

/// The node's record keeping: how long records last, and when to prune next.
#[derive(Debug)]
pub(crate) struct Ledger {
    window: Duration,
    next_prune_ms: AtomicI64,
}

impl Ledger {
    pub(crate) fn new(window: Duration) -> Self {
        Ledger {
            window,
            next_prune_ms: AtomicI64::new(0),
        }
    }

    /// Runs `work` and records its result under `key` in `txn`, as a new [`new_run`]; returns
    /// the result and the run. Fails with [`ExecError::AlreadyRecorded`] when `key` is
    /// recorded already (the caller rolls back and answers with [`recall`]); fails with
    /// `work`'s own error otherwise.
    pub(crate) async fn run_and_record<T, W>(
        &self,
        txn: &DatabaseTransaction,
        key: &Key,
        work: W,
    ) -> Result<(T, String), ExecError>
    where
        T: Serialize,
        W: Future<Output = Result<T, ExecError>>,
    {
        let value = work.await?;
        let response = serde_json::to_string(&value)
            .map_err(|e| ExecError::Stored(format!("recording the result: {e}")))?;
        let now = now_ms();
        let run = new_run();
        let insert = || {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO _litefs_orm_idempotency (key, digest, response, created_ms, run) \
                 VALUES (?, ?, ?, ?, ?)",
                [
                    key.id.clone().into(),
                    key.digest.clone().into(),
                    response.clone().into(),
                    now.into(),
                    run.clone().into(),
                ],
            ))
        };
        match insert().await {
            Ok(_) => {}
            // First use (or a migration dropped every table): create it in this
            // transaction, so it exists exactly when a first record commits. A statement
            // that fails to prepare leaves the transaction as it was.
            Err(e) if no_table(&e) => {
                txn.execute_unprepared(CREATE).await?;
                insert().await?;
            }
            // A table made before runs were recorded: add their column the same way.
            Err(e) if no_run_column(&e) => {
                txn.execute_unprepared(ADD_RUN).await?;
                insert().await?;
            }
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(ExecError::AlreadyRecorded);
            }
            Err(e) => return Err(e.into()),
        }
        self.prune_if_due(txn, now).await?;
        Ok((value, run))
    }

    /// Deletes expired records, at most about sixteen times per window.
    async fn prune_if_due(&self, txn: &DatabaseTransaction, now: i64) -> Result<(), ExecError> {
        let due = self.next_prune_ms.load(Ordering::Relaxed);
        let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        if now < due
            || self
                .next_prune_ms
                .compare_exchange(due, now + window / 16, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "DELETE FROM _litefs_orm_idempotency WHERE created_ms < ?",
            [now.saturating_sub(window).into()],
        ))
        .await?;
        Ok(())
    }
}

/// Which of `keys` have a record in this node's database, each with the run that recorded
/// it (`None` for a record older than runs): the proof that it holds the commits that wrote
/// them (read on a replica, through `conn`, its read pool). None when the table does not
/// exist yet (no forwarded write has reached this database).
pub(crate) async fn recorded<C: ConnectionTrait>(
    conn: &C,
    keys: &[&str],
) -> Result<HashMap<String, Option<String>>, sea_orm::DbErr> {
    let marks = vec!["?"; keys.len()].join(",");
    let query = |columns: &str| {
        let sql = format!("SELECT {columns} FROM {TABLE} WHERE key IN ({marks})");
        let values = keys.iter().map(|k| sea_orm::Value::from(*k));
        conn.query_all_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
    };
    let rows = match query("key, run").await {
        Ok(rows) => rows,
        Err(e) if no_table(&e) => return Ok(HashMap::new()),
        // A table older than runs: no record in it was written by a run.
        Err(e) if no_run_column(&e) => {
            let rows = query("key, NULL").await?;
            return rows.iter().map(key_and_run).collect();
        }
        Err(e) => return Err(e),
    };
    rows.iter().map(key_and_run).collect()
}

fn key_and_run(row: &sea_orm::QueryResult) -> Result<(String, Option<String>), sea_orm::DbErr> {
    Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?))
}

/// The result recorded for `key`, if any, with the run that recorded it (`None` for a
/// record older than runs); [`ExecError::KeyReused`] when it was recorded for a request
/// with another body.
pub(crate) async fn recall<T: DeserializeOwned>(
    txn: &DatabaseTransaction,
    key: &Key,
) -> Result<Option<(T, Option<String>)>, ExecError> {
    let query = |columns: &str| {
        txn.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!("SELECT {columns} FROM _litefs_orm_idempotency WHERE key = ?"),
            [key.id.clone().into()],
        ))
    };
    let row = match query("digest, response, run").await {
        Ok(row) => row,
        Err(e) if no_table(&e) => None,
        Err(e) if no_run_column(&e) => query("digest, response, NULL").await?,
        Err(e) => return Err(e.into()),
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let digest: String = row.try_get_by_index(0)?;
    if digest != key.digest {
        return Err(ExecError::KeyReused(key.id.clone()));
    }
    let recorded: String = row.try_get_by_index(1)?;
    let run: Option<String> = row.try_get_by_index(2)?;
    serde_json::from_str(&recorded)
        .map(|value| Some((value, run)))
        .map_err(|e| {
            ExecError::Stored(format!(
                "the result recorded for idempotency key {} is unreadable: {e}",
                key.id
            ))
        })
}

/// Whether `e` says the record table does not exist yet: no key was ever recorded here.
fn no_table(e: &sea_orm::DbErr) -> bool {
    e.to_string().contains("no such table")
}

/// Whether `e` says the record table has no `run` column: it was made before runs were
/// recorded, and no record in it names one.
fn no_run_column(e: &sea_orm::DbErr) -> bool {
    let text = e.to_string();
    text.contains("no such column: run") || text.contains("has no column named run")
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectionTrait, Database, DatabaseConnection, TransactionTrait};

    async fn db() -> (tempfile::TempDir, DatabaseConnection) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        (dir, Database::connect(&url).await.unwrap())
    }

    /// Runs one keyed call in its own transaction as the primary does: run and record;
    /// when the key is recorded already, roll back and answer with the record. Returns the
    /// value and the run that recorded it.
    async fn call_run(
        ledger: &Ledger,
        db: &DatabaseConnection,
        key: &str,
        value: i64,
    ) -> (i64, Option<String>) {
        let key = Key::new(key.to_owned(), key.as_bytes()).unwrap();
        let txn = db.begin().await.unwrap();
        match ledger.run_and_record(&txn, &key, async { Ok(value) }).await {
            Ok((out, run)) => {
                txn.commit().await.unwrap();
                (out, Some(run))
            }
            Err(ExecError::AlreadyRecorded) => {
                txn.rollback().await.unwrap();
                let txn = db.begin().await.unwrap();
                recall(&txn, &key).await.unwrap().expect("a record")
            }
            Err(e) => panic!("{e}"),
        }
    }

    async fn call(ledger: &Ledger, db: &DatabaseConnection, key: &str, value: i64) -> i64 {
        call_run(ledger, db, key, value).await.0
    }

    async fn records(db: &DatabaseConnection) -> i64 {
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT count(*) FROM _litefs_orm_idempotency",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    }

    #[tokio::test]
    async fn a_recorded_key_answers_with_its_first_result() {
        let (_dir, db) = db().await;
        let ledger = Ledger::new(Duration::from_secs(600));
        assert_eq!(call(&ledger, &db, "k", 1).await, 1);
        assert_eq!(call(&ledger, &db, "k", 2).await, 1);
    }

    #[tokio::test]
    async fn recording_a_recorded_key_fails_and_leaves_the_record() {
        let (_dir, db) = db().await;
        let ledger = Ledger::new(Duration::from_secs(600));
        call(&ledger, &db, "k", 1).await;
        let key = Key::new("k".into(), b"k").unwrap();
        let txn = db.begin().await.unwrap();
        let again = ledger.run_and_record(&txn, &key, async { Ok(2i64) }).await;
        assert!(
            matches!(again, Err(ExecError::AlreadyRecorded)),
            "{again:?}"
        );
        txn.rollback().await.unwrap();
        assert_eq!(records(&db).await, 1);
    }

    #[tokio::test]
    async fn a_key_recorded_for_another_body_is_refused_on_recall() {
        let (_dir, db) = db().await;
        let ledger = Ledger::new(Duration::from_secs(600));
        call(&ledger, &db, "k", 1).await;
        let other = Key::new("k".into(), b"another body").unwrap();
        let txn = db.begin().await.unwrap();
        let recalled = recall::<i64>(&txn, &other).await.map(|r| r.map(|(v, _)| v));
        assert!(
            matches!(recalled, Err(ExecError::KeyReused(_))),
            "{recalled:?}"
        );
    }

    #[tokio::test]
    async fn recall_without_a_table_finds_nothing() {
        let (_dir, db) = db().await;
        let key = Key::new("k".into(), b"k").unwrap();
        let txn = db.begin().await.unwrap();
        assert!(recall::<i64>(&txn, &key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn records_older_than_the_window_are_pruned() {
        let (_dir, db) = db().await;
        let ledger = Ledger::new(Duration::from_millis(50));
        call(&ledger, &db, "old", 1).await;
        tokio::time::sleep(Duration::from_millis(80)).await;
        call(&ledger, &db, "new", 2).await;
        assert_eq!(records(&db).await, 1);
        assert_eq!(call(&ledger, &db, "old", 3).await, 3);
    }

    #[tokio::test]
    async fn a_rolled_back_call_leaves_no_record() {
        let (_dir, db) = db().await;
        let ledger = Ledger::new(Duration::from_secs(600));
        let key = Key::new("k".into(), b"k").unwrap();
        let txn = db.begin().await.unwrap();
        ledger
            .run_and_record(&txn, &key, async { Ok(1i64) })
            .await
            .unwrap();
        txn.rollback().await.unwrap();
        assert_eq!(call(&ledger, &db, "k", 2).await, 2);
    }

    #[tokio::test]
    async fn a_replayed_key_answers_with_the_run_that_recorded_it() {
        let (_dir, db) = db().await;
        let ledger = Ledger::new(Duration::from_secs(600));
        let (_, first) = call_run(&ledger, &db, "k", 1).await;
        let (_, again) = call_run(&ledger, &db, "k", 2).await;
        assert!(first.is_some());
        assert_eq!(again, first);
    }

    #[tokio::test]
    async fn a_key_run_again_after_its_record_is_gone_records_a_new_run() {
        let (_dir, db) = db().await;
        let ledger = Ledger::new(Duration::from_secs(600));
        let (_, first) = call_run(&ledger, &db, "k", 1).await;
        db.execute_unprepared("DELETE FROM _litefs_orm_idempotency")
            .await
            .unwrap();
        let (_, second) = call_run(&ledger, &db, "k", 1).await;
        assert_ne!(second, first);
    }

    #[tokio::test]
    async fn recorded_names_the_run_of_each_key_it_holds() {
        let (_dir, db) = db().await;
        let ledger = Ledger::new(Duration::from_secs(600));
        let (_, run) = call_run(&ledger, &db, "a", 1).await;
        let held = recorded(&db, &["a", "b"]).await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held["a"], run);
    }

    #[tokio::test]
    async fn a_table_made_before_runs_gains_their_column_at_the_next_record() {
        let (_dir, db) = db().await;
        db.execute_unprepared(
            "CREATE TABLE _litefs_orm_idempotency (key TEXT PRIMARY KEY NOT NULL, \
             digest TEXT NOT NULL, response TEXT NOT NULL, created_ms INTEGER NOT NULL); \
             INSERT INTO _litefs_orm_idempotency \
             VALUES ('old', 'd', '1', CAST(strftime('%s', 'now') AS INTEGER) * 1000)",
        )
        .await
        .unwrap();
        assert_eq!(recorded(&db, &["old"]).await.unwrap()["old"], None);
        let ledger = Ledger::new(Duration::from_secs(600));
        let (_, run) = call_run(&ledger, &db, "new", 2).await;
        let held = recorded(&db, &["old", "new"]).await.unwrap();
        assert_eq!((held["old"].clone(), held["new"].clone()), (None, run));
    }

    #[test]
    fn fresh_keys_are_unique_and_sort_by_time() {
        let first = new_key();
        std::thread::sleep(Duration::from_millis(2));
        let (second, third) = (new_key(), new_key());
        assert!(first < second, "{first} {second}");
        assert_ne!(second, third);
        assert!(Key::new(first.clone(), b"").is_ok(), "{first}");
        assert_eq!(first.len(), 32);
    }

    #[test]
    fn an_over_long_key_is_refused() {
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(Key::new(long, b"").is_err());
        assert!(Key::new("with space".into(), b"").is_err());
    }
}
