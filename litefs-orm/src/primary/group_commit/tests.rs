//! Group commit driven directly: one write holds the writer, others queue behind it and
//! commit together once it lets go.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sea_orm::{ConnectionTrait, DbBackend, SqlxSqliteConnector, Statement};
use tokio::task::JoinHandle;

use super::*;
use crate::litefs::{Pos, pos_path};
use crate::primary::executor::in_transaction;

/// Sizes of the committed batches, by committer address.
static SIZES: Mutex<BTreeMap<usize, Vec<usize>>> = Mutex::new(BTreeMap::new());

pub(super) fn record(committer: &Committer, writes: usize) {
    let mut sizes = SIZES.lock().unwrap_or_else(PoisonError::into_inner);
    let key = std::ptr::from_ref(committer) as usize;
    sizes.entry(key).or_default().push(writes);
}

fn sizes(committer: &Arc<Committer>) -> Vec<usize> {
    let sizes = SIZES.lock().unwrap_or_else(PoisonError::into_inner);
    sizes.get(&committer.id()).cloned().unwrap_or_default()
}

fn queued(committer: &Committer) -> usize {
    committer.queued()
}

/// The position the tests' `-pos` file starts at; [`follow_commits`] moves it on by one at
/// each commit, as LiteFS does.
const POS: u64 = 5;

struct Db {
    _dir: tempfile::TempDir,
    committer: Arc<Committer>,
    _litefs: JoinHandle<()>,
}

/// Plays LiteFS's part for the database at `path`: each commit moves `-pos` on by one
/// (`PRAGMA data_version` tells a commit of another connection). Returns once it has its
/// baseline, so no commit after it is missed.
async fn follow_commits(path: std::path::PathBuf) -> JoinHandle<()> {
    let options = SqliteConnectOptions::new().filename(&path);
    let conn = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let version = async |conn: &sea_orm::sqlx::SqlitePool| -> i64 {
        sea_orm::sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(conn)
            .await
            .unwrap()
    };
    let mut seen = version(&conn).await;
    tokio::spawn(async move {
        let mut txid = POS;
        loop {
            tokio::time::sleep(Duration::from_micros(200)).await;
            let now = version(&conn).await;
            if now != seen {
                seen = now;
                txid += 1;
                let pos = Pos { txid, checksum: 1 };
                std::fs::write(pos_path(&path), pos.to_string()).unwrap();
            }
        }
    })
}

async fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let writer = SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
    writer
        .execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        .await
        .unwrap();
    let pos = Pos {
        txid: POS,
        checksum: 1,
    };
    std::fs::write(pos_path(&path), pos.to_string()).unwrap();
    let committer = Committer::new(writer, Some(PositionTracker::new(&path)));
    let litefs = follow_commits(path.clone()).await;
    // A committer of an earlier test may have had the same address.
    SIZES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&committer.id());
    Db {
        _dir: dir,
        committer,
        _litefs: litefs,
    }
}

type Written = Result<(String, u64), ExecError>;

async fn insert_sql(txn: &DatabaseTransaction, name: &str) -> Result<(), ExecError> {
    let sql = format!("INSERT INTO t (name) VALUES ('{name}')");
    txn.execute_unprepared(&sql).await?;
    Ok(())
}

/// What a queued write does.
#[derive(Clone, Copy)]
enum Work {
    Insert,
    InsertThenFail,
    InsertThenPanic,
    InsertThenNotPrimary,
    Read,
}

fn spawn(db: &Db, name: &str, work: Work) -> JoinHandle<Written> {
    let (committer, name) = (db.committer.clone(), name.to_owned());
    tokio::spawn(async move {
        in_transaction(&committer, move |txn| {
            Box::pin(async move {
                match work {
                    Work::Read => {
                        txn.execute_unprepared("SELECT count(*) FROM t").await?;
                    }
                    _ => insert_sql(txn, &name).await?,
                }
                match work {
                    Work::InsertThenFail => Err(ExecError::Operation("refused".into())),
                    Work::InsertThenPanic => panic!("a hook panicked"),
                    Work::InsertThenNotPrimary => Err(ExecError::NotPrimary),
                    _ => Ok(name),
                }
            })
        })
        .await
    })
}

/// A lone write that holds the writer until the returned sender fires.
async fn hold(db: &Db) -> (JoinHandle<Written>, oneshot::Sender<()>) {
    let (started, is_started) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
    let committer = db.committer.clone();
    let holder = tokio::spawn(async move {
        in_transaction(&committer, move |txn| {
            Box::pin(async move {
                insert_sql(txn, "holder").await?;
                let _ = started.send(());
                let _ = released.await;
                Ok("holder".to_owned())
            })
        })
        .await
    });
    is_started.await.unwrap();
    (holder, release)
}

/// Queues `writes` behind a held writer, lets it go, and returns each write's result.
async fn batch(db: &Db, writes: &[(&str, Work)]) -> Vec<Result<Written, tokio::task::JoinError>> {
    let (holder, release) = hold(db).await;
    let tasks: Vec<_> = writes.iter().map(|(n, w)| spawn(db, n, *w)).collect();
    while queued(&db.committer) < writes.len() {
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await);
    }
    results
}

async fn names(db: &Db) -> Vec<String> {
    let rows = db
        .committer
        .writer()
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT name FROM t ORDER BY name",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect()
}

fn ok(r: &Result<Written, tokio::task::JoinError>) -> &(String, u64) {
    r.as_ref().unwrap().as_ref().unwrap()
}

#[tokio::test]
async fn queued_writes_commit_together_with_the_batch_txid() {
    let db = db().await;
    let writes: Vec<(String, Work)> = (0..8).map(|i| (format!("w{i}"), Work::Insert)).collect();
    let writes: Vec<(&str, Work)> = writes.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let results = batch(&db, &writes).await;
    // The holder committed POS + 1; the batch is the next transaction.
    for (r, (name, _)) in results.iter().zip(&writes) {
        assert_eq!(ok(r), &(name.to_string(), POS + 2));
    }
    assert_eq!(names(&db).await.len(), 9);
    let sizes = sizes(&db.committer);
    assert_eq!(sizes.iter().sum::<usize>(), 8, "{sizes:?}");
    assert!(sizes.iter().any(|&n| n > 1), "no batch formed: {sizes:?}");
}

#[tokio::test]
async fn a_constraint_violation_fails_only_its_own_write() {
    let db = db().await;
    let results = batch(
        &db,
        &[
            ("a", Work::Insert),
            ("holder", Work::Insert),
            ("b", Work::Insert),
        ],
    )
    .await;
    assert_eq!(ok(&results[0]).0, "a");
    let err = results[1].as_ref().unwrap().as_ref().unwrap_err();
    assert!(
        matches!(err, ExecError::Db(e) if e.to_string().contains("UNIQUE")),
        "{err:?}"
    );
    assert_eq!(ok(&results[2]).0, "b");
    assert_eq!(names(&db).await, ["a", "b", "holder"]);
}

#[tokio::test]
async fn an_error_returned_by_a_write_rolls_back_only_that_write() {
    let db = db().await;
    let results = batch(
        &db,
        &[
            ("a", Work::Insert),
            ("refused", Work::InsertThenFail),
            ("b", Work::Insert),
        ],
    )
    .await;
    assert!(matches!(
        results[1].as_ref().unwrap(),
        Err(ExecError::Operation(_))
    ));
    assert_eq!(ok(&results[2]).1, POS + 2);
    assert_eq!(names(&db).await, ["a", "b", "holder"]);
}

#[tokio::test]
async fn a_panicking_write_rolls_back_only_itself_and_panics_in_its_caller() {
    let db = db().await;
    let results = batch(
        &db,
        &[
            ("a", Work::Insert),
            ("panics", Work::InsertThenPanic),
            ("b", Work::Insert),
        ],
    )
    .await;
    assert!(results[1].as_ref().unwrap_err().is_panic());
    assert_eq!(ok(&results[0]).0, "a");
    assert_eq!(ok(&results[2]).0, "b");
    assert_eq!(names(&db).await, ["a", "b", "holder"]);
}

#[tokio::test]
async fn a_write_dropped_mid_batch_rolls_back_only_itself() {
    let db = db().await;
    let (holder, release) = hold(&db).await;
    let a = spawn(&db, "a", Work::Insert);
    let (inside, is_inside) = oneshot::channel();
    let committer = db.committer.clone();
    let dropped = tokio::spawn(async move {
        in_transaction(&committer, move |txn| {
            Box::pin(async move {
                insert_sql(txn, "dropped").await?;
                let _ = inside.send(());
                std::future::pending::<()>().await;
                Ok(String::new())
            })
        })
        .await
    });
    let b = spawn(&db, "b", Work::Insert);
    while queued(&db.committer) < 3 {
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    is_inside.await.unwrap();
    dropped.abort();
    assert!(dropped.await.unwrap_err().is_cancelled());
    assert_eq!(a.await.unwrap().unwrap().0, "a");
    assert_eq!(b.await.unwrap().unwrap().0, "b");
    assert_eq!(names(&db).await, ["a", "b", "holder"]);
}

#[tokio::test]
async fn each_write_runs_once() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let db = db().await;
    let (holder, release) = hold(&db).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let committer = db.committer.clone();
            tokio::spawn(async move {
                in_transaction(&committer, move |txn| {
                    Box::pin(async move {
                        RUNS.fetch_add(1, Ordering::SeqCst);
                        insert_sql(txn, &format!("r{i}")).await
                    })
                })
                .await
            })
        })
        .collect();
    while queued(&db.committer) < 10 {
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 10);
    assert_eq!(names(&db).await.len(), 11);
}

#[tokio::test]
async fn a_batch_that_changed_nothing_keeps_the_current_txid() {
    let db = db().await;
    let results = batch(
        &db,
        &[
            ("r1", Work::Read),
            ("refused", Work::InsertThenFail),
            ("r2", Work::Read),
        ],
    )
    .await;
    // The current TXID is the holder's commit, POS + 1, confirmed in `-pos` before the
    // writer moved on: a batch that wrote nothing answers it, never a lower one.
    assert_eq!(ok(&results[0]).1, POS + 1);
    assert_eq!(ok(&results[2]).1, POS + 1);
}

#[tokio::test]
async fn a_not_primary_refusal_fails_the_whole_batch_so_it_is_retried() {
    let db = db().await;
    let results = batch(
        &db,
        &[
            ("a", Work::Insert),
            ("replica", Work::InsertThenNotPrimary),
            ("b", Work::Insert),
        ],
    )
    .await;
    for r in &results[..2] {
        assert!(matches!(r.as_ref().unwrap(), Err(ExecError::NotPrimary)));
    }
    // `b` was queued behind the failed batch and committed in the next one.
    assert_eq!(ok(&results[2]).0, "b");
    assert_eq!(names(&db).await, ["b", "holder"]);
}

#[tokio::test]
async fn a_write_on_an_idle_writer_runs_alone() {
    let db = db().await;
    let (value, txid) = spawn(&db, "solo", Work::Insert).await.unwrap().unwrap();
    assert_eq!((value.as_str(), txid), ("solo", POS + 1));
    assert!(sizes(&db.committer).is_empty());
    assert!(db.committer.lock().is_none(), "the writer is still busy");
}

#[tokio::test]
async fn a_write_started_inside_a_write_is_refused_instead_of_waiting_for_itself() {
    let db = db().await;
    let committer = db.committer.clone();
    let (outer, _) = in_transaction(&db.committer, move |txn| {
        Box::pin(async move {
            insert_sql(txn, "outer").await?;
            let nested = in_transaction(&committer, |txn| {
                Box::pin(async move { insert_sql(txn, "nested").await })
            })
            .await;
            Ok(nested.map(drop))
        })
    })
    .await
    .unwrap();
    let err = outer.unwrap_err();
    assert!(err.to_string().contains("inside another"), "{err}");
    assert_eq!(names(&db).await, ["outer"]);
}

#[tokio::test]
async fn writes_of_one_request_on_an_idle_writer_commit_in_one_batch() {
    let db = db().await;
    let writes = ["a", "b", "c", "d"].map(|name| {
        in_transaction(&db.committer, move |txn| {
            Box::pin(async move { insert_sql(txn, name).await })
        })
    });
    let results = together(futures_util::future::join_all(writes)).await;
    let txids: Vec<u64> = results.into_iter().map(|r| r.unwrap().1).collect();
    assert_eq!(txids, [POS + 1; 4]);
    assert_eq!(sizes(&db.committer), [4]);
    assert_eq!(names(&db).await, ["a", "b", "c", "d"]);
}
