//! With no LiteFS at all, one node on a plain SQLite file does everything locally.

use std::time::Duration;

use litefs_orm::{Error, ReplicatedActiveModel, Role};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::operations::HoldWriter;
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;

#[tokio::test]
async fn standalone_writes_and_reads_a_plain_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = litefs_orm_tests::standalone(dir.path()).await;
    assert_eq!(db.role(), Role::Standalone);
    let saved = post::ActiveModel {
        title: Set("alone".into()),
        body: Set("no LiteFS here".into()),
        ..Default::default()
    }
    .insert_replicated(&db)
    .await
    .unwrap();
    assert_eq!(saved.revision, 1);
    let all = post::Entity::find().all(&db).await.unwrap();
    assert_eq!(all, vec![saved]);
    assert!(dir.path().join("app.db").exists());
    assert!(!dir.path().join("app.db-pos").exists());
}

#[tokio::test]
async fn standalone_has_no_position() {
    let dir = tempfile::tempdir().unwrap();
    let db = litefs_orm_tests::standalone(dir.path()).await;
    assert_eq!(db.local_position(), None);
}

#[tokio::test]
async fn a_write_still_queued_at_its_deadline_gives_up_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = litefs_orm::Config::standalone(dir.path().join("app.db"))
        .with_write_timeout(Duration::from_millis(200));
    let db = litefs_orm_tests::standalone_with(config).await;
    let holder = {
        let db = db.clone();
        tokio::spawn(async move { db.run(HoldWriter { ms: 1_000 }).await })
    };
    wait_until_the_write_lock_is_held(&dir.path().join("app.db")).await;
    let err = post::new("late").insert_replicated(&db).await.unwrap_err();
    assert!(matches!(err, Error::WriterBusy), "{err:?}");
    holder.await.unwrap().unwrap();
    let late = post::Entity::find().all(&db).await.unwrap();
    assert!(late.is_empty(), "{late:?}");
}

/// Polls SQLite's write lock on `path` from a connection of its own until someone holds it.
async fn wait_until_the_write_lock_is_held(path: &std::path::Path) {
    use sea_orm::sqlx::{Connection, Executor, sqlite::SqliteConnectOptions};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::ZERO);
    let mut probe = sea_orm::sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    for _ in 0..500 {
        if probe.execute("BEGIN IMMEDIATE").await.is_err() {
            return;
        }
        probe.execute("ROLLBACK").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nobody took the write lock within 5 s");
}

#[tokio::test]
async fn a_transaction_on_a_standalone_node_commits_its_statements_together() {
    use sea_orm::{ActiveModelTrait, TransactionTrait};
    let dir = tempfile::tempdir().unwrap();
    let db = litefs_orm_tests::standalone(dir.path()).await;
    let txn = db.begin().await.unwrap();
    post::new("first").insert(&txn).await.unwrap();
    post::new("second").insert(&txn).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(post::Entity::find().all(&db).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_transaction_rolled_back_on_a_standalone_node_leaves_nothing() {
    use sea_orm::{ActiveModelTrait, TransactionTrait};
    let dir = tempfile::tempdir().unwrap();
    let db = litefs_orm_tests::standalone(dir.path()).await;
    let txn = db.begin().await.unwrap();
    post::new("gone").insert(&txn).await.unwrap();
    txn.rollback().await.unwrap();
    assert!(post::Entity::find().all(&db).await.unwrap().is_empty());
}
