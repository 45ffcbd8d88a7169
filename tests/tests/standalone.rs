//! With no LiteFS at all, one node on a plain SQLite file does everything locally.

use std::time::Duration;

use litefs_orm::{Error, ReplicatedActiveModel, Role};
use litefs_orm_tests::entities::post;
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
    use sea_orm::TransactionTrait;
    let dir = tempfile::tempdir().unwrap();
    let config = litefs_orm::Config::standalone(dir.path().join("app.db"))
        .with_write_timeout(Duration::from_millis(200));
    let db = litefs_orm_tests::standalone_with(config).await;
    // The app's own transaction holds the writer past every deadline.
    let held = db.begin().await.unwrap();
    let first = {
        let db = db.clone();
        tokio::spawn(async move { post::new("first").insert_replicated(&db).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = post::new("late").insert_replicated(&db).await.unwrap_err();
    assert!(matches!(err, Error::WriterBusy), "{err:?}");
    let err = first.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::WriteStalled {
                maybe_committed: false
            }
        ),
        "{err:?}"
    );
    held.rollback().await.unwrap();
    let written = post::Entity::find().all(&db).await.unwrap();
    assert!(written.is_empty(), "{written:?}");
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
