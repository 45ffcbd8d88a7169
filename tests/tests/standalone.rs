//! With no LiteFS at all, one node on a plain SQLite file does everything locally.

use litefs_orm::{ReplicatedActiveModel, Role};
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
