//! Tests of `proofs`.

use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::{ConnectionTrait, Database};

use super::*;

/// A database whose record table holds `keys` (each recorded by run `r-<key>`), and a
/// reader that counts its uses.
struct Db {
    _dir: tempfile::TempDir,
    conn: DatabaseConnection,
    reads: AtomicUsize,
}

impl Db {
    async fn with(keys: &[&str]) -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
        let conn = Database::connect(&url).await.unwrap();
        if !keys.is_empty() {
            conn.execute_unprepared(
                "CREATE TABLE _litefs_orm_idempotency (key TEXT PRIMARY KEY, run TEXT)",
            )
            .await
            .unwrap();
        }
        if !keys.is_empty() {
            let rows: Vec<String> = keys.iter().map(|k| format!("('{k}', 'r-{k}')")).collect();
            let sql = format!(
                "INSERT INTO _litefs_orm_idempotency VALUES {}",
                rows.join(",")
            );
            conn.execute_unprepared(&sql).await.unwrap();
        }
        Db {
            _dir: dir,
            conn,
            reads: AtomicUsize::new(0),
        }
    }

    fn reader(&self) -> DatabaseConnection {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.conn.clone()
    }
}

#[tokio::test]
async fn a_key_with_a_record_is_held_and_one_without_is_not() {
    let db = Db::with(&["k1"]).await;
    let proofs = Proofs::default();
    assert!(
        proofs
            .is_recorded(|| db.reader(), "k1", None)
            .await
            .unwrap()
    );
    assert!(
        !proofs
            .is_recorded(|| db.reader(), "k2", None)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_key_recorded_by_another_run_is_not_held() {
    let db = Db::with(&["k1"]).await;
    let proofs = Proofs::default();
    assert!(
        !proofs
            .is_recorded(|| db.reader(), "k1", Some("r-other"))
            .await
            .unwrap()
    );
    assert!(
        proofs
            .is_recorded(|| db.reader(), "k1", Some("r-k1"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn no_record_table_means_no_key_is_held() {
    let db = Db::with(&[]).await;
    let proofs = Proofs::default();
    assert!(
        !proofs
            .is_recorded(|| db.reader(), "k1", None)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn keys_that_queue_behind_a_read_are_read_together_in_one_query() {
    let held: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let db = Db::with(&held.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let proofs = Proofs::default();
    // Twenty held keys and five that are not, all waiting at once.
    let keys: Vec<String> = (0..25).map(|i| format!("k{i}")).collect();
    let answers = futures_util::future::join_all(
        keys.iter()
            .map(|k| proofs.is_recorded(|| db.reader(), k, None)),
    )
    .await;
    let answers: Vec<bool> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(answers, (0..25).map(|i| i < 20).collect::<Vec<_>>());
    // The first key alone, then the 24 that queued behind it.
    assert_eq!(db.reads.load(Ordering::SeqCst), 2);
    assert!(proofs.lock().is_none(), "a read is still marked as running");
}

#[tokio::test]
async fn keys_queued_behind_a_cancelled_read_are_read_all_the_same() {
    let db = Db::with(&["k1"]).await;
    let proofs = Proofs::default();
    let reading = Reading {
        proofs: &proofs,
        done: false,
    };
    *proofs.lock() = Some(Vec::new());
    let queued = proofs.is_recorded(|| db.reader(), "k1", None);
    tokio::pin!(queued);
    // It queues behind the read in progress.
    assert!(futures_util::FutureExt::now_or_never(queued.as_mut()).is_none());
    assert_eq!(proofs.lock().as_ref().map(Vec::len), Some(1));
    drop(reading);
    let answered = tokio::time::timeout(std::time::Duration::from_secs(5), queued).await;
    assert!(
        answered
            .expect("the queued caller was left waiting")
            .unwrap()
    );
    assert!(proofs.lock().is_none());
}

#[tokio::test]
async fn callers_left_after_a_readers_rounds_are_read_by_the_next_reader() {
    let held: Vec<String> = (0..1300).map(|i| format!("k{i}")).collect();
    let db = Db::with(&held.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let proofs = Proofs::default();
    // Which callers ran a read.
    let readers = Mutex::new(std::collections::BTreeSet::new());
    let calls = held.iter().map(|k| {
        let reader = || {
            readers.lock().unwrap().insert(k.clone());
            db.reader()
        };
        proofs.is_recorded(reader, k, None)
    });
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.into_iter().all(|a| a.unwrap()));
    // The first reader: its key, then 4 rounds of 256 and no more; the 275 left enter again,
    // and another of them reads, for itself and those queued behind it.
    let readers = readers.lock().unwrap().len();
    assert!(readers >= 2, "one caller read for all {} keys", held.len());
    let reads = db.reads.load(Ordering::SeqCst);
    assert!((7..=12).contains(&reads), "{reads} reads");
    assert!(proofs.lock().is_none());
}
