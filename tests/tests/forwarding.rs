//! Writes made on replicas are forwarded to the primary and read back on the same replica.

use std::sync::atomic::Ordering;

use litefs_orm::{DbFailureKind, Error, ReplicatedActiveModel, Role};
use litefs_orm_tests::TestCluster;
use litefs_orm_tests::entities::{post, secret};
use sea_orm::ActiveValue::{NotSet, Set, Unchanged};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait};

#[tokio::test]
async fn an_insert_from_a_replica_is_visible_on_that_replica_when_it_returns() {
    let c = TestCluster::start().await;
    assert!(matches!(c.db(1).role(), Role::Replica { .. }));
    let saved = post::new("hello").insert_replicated(c.db(1)).await.unwrap();
    let local = post::Entity::find_by_id(saved.id)
        .one(c.db(1))
        .await
        .unwrap();
    assert_eq!(local, Some(saved));
}

#[tokio::test]
async fn an_update_from_a_replica_is_visible_on_that_replica_when_it_returns() {
    let c = TestCluster::start().await;
    let saved = post::new("draft").insert_replicated(c.db(2)).await.unwrap();
    let mut edit: post::ActiveModel = saved.into();
    edit.body = Set("final".into());
    let updated = edit.update_replicated(c.db(2)).await.unwrap();
    let local = post::Entity::find_by_id(updated.id)
        .one(c.db(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.body, "final");
}

#[tokio::test]
async fn a_save_from_a_replica_inserts_then_updates() {
    let c = TestCluster::start().await;
    let inserted = post::new("saved").save_replicated(c.db(1)).await.unwrap();
    let id = *inserted.id.as_ref();
    let mut edit = inserted;
    edit.body = Set("saved again".into());
    edit.save_replicated(c.db(1)).await.unwrap();
    let local = post::Entity::find_by_id(id)
        .one(c.db(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.body, "saved again");
}

#[tokio::test]
async fn a_delete_from_a_replica_is_gone_on_that_replica_when_it_returns() {
    let c = TestCluster::start().await;
    let saved = post::new("doomed")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    let id = saved.id;
    let am: post::ActiveModel = saved.into();
    assert_eq!(am.delete_replicated(c.db(1)).await.unwrap(), 1);
    assert_eq!(
        post::Entity::find_by_id(id).one(c.db(1)).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn behaviour_hooks_run_once_on_the_primary() {
    let c = TestCluster::start().await;
    let before = post::BEFORE_SAVE_CALLS.load(Ordering::SeqCst);
    let saved = post::new("hooked")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    // `revision` is set by the hook: 1 means it ran once for the insert.
    assert_eq!(saved.revision, 1);
    assert!(post::BEFORE_SAVE_CALLS.load(Ordering::SeqCst) > before);
}

#[tokio::test]
async fn an_error_from_a_hook_comes_back_as_a_custom_rejection() {
    let c = TestCluster::start().await;
    let err = post::new(" ").insert_replicated(c.db(1)).await.unwrap_err();
    let failure = err.db_failure().expect("a database failure");
    assert_eq!(failure.kind, DbFailureKind::Custom);
    assert_eq!(failure.message, "a post needs a title");
}

#[tokio::test]
async fn an_update_from_a_replica_leaves_unset_columns_untouched() {
    let c = TestCluster::start().await;
    let saved = post::new("columns")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    // Meanwhile the primary changes the body.
    let mut on_primary: post::ActiveModel = saved.clone().into();
    on_primary.body = Set("changed on the primary".into());
    on_primary.update_replicated(c.db(0)).await.unwrap();
    // The replica edits only the note of the (now stale) model it holds.
    let mut edit: post::ActiveModel = saved.into();
    edit.note = Set(Some("a note".into()));
    let updated = edit.update_replicated(c.db(1)).await.unwrap();
    assert_eq!(updated.body, "changed on the primary");
    assert_eq!(updated.note.as_deref(), Some("a note"));
}

#[tokio::test]
async fn not_set_columns_are_not_written_by_an_update() {
    let c = TestCluster::start().await;
    let saved = post::new("sparse")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    let edit = post::ActiveModel {
        id: Unchanged(saved.id),
        title: NotSet,
        body: NotSet,
        revision: Unchanged(saved.revision),
        note: Set(Some("only this".into())),
    };
    let updated = edit.update_replicated(c.db(2)).await.unwrap();
    assert_eq!(updated.title, "sparse");
    assert_eq!(updated.body, "body of sparse");
}

#[tokio::test]
async fn a_unique_violation_comes_back_as_the_typed_error() {
    let c = TestCluster::start().await;
    post::new("same").insert_replicated(c.db(1)).await.unwrap();
    let err = post::new("same")
        .insert_replicated(c.db(2))
        .await
        .unwrap_err();
    match err {
        Error::Rejected(f) => assert!(f.is_unique_violation(), "{f:?}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let count = post::Entity::find().all(c.db(0)).await.unwrap().len();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_write_on_the_primary_runs_locally() {
    let c = TestCluster::start().await;
    assert_eq!(c.db(0).role(), Role::Primary);
    let saved = post::new("local").insert_replicated(c.db(0)).await.unwrap();
    let found = post::Entity::find_by_id(saved.id)
        .one(c.db(0))
        .await
        .unwrap();
    assert_eq!(found, Some(saved));
}

#[tokio::test]
async fn a_plain_seaorm_write_on_a_replica_names_the_replicated_method() {
    let c = TestCluster::start().await;
    let err = post::new("plain").insert(c.db(1)).await.unwrap_err();
    assert!(err.to_string().contains("insert_replicated"), "{err}");
    assert_eq!(c.litefs.replica_writes_detected(), 0);
}

#[tokio::test]
async fn plain_sql_writes_on_a_replica_are_refused_before_sqlite() {
    let c = TestCluster::start().await;
    let err = c
        .db(2)
        .execute_unprepared("DELETE FROM post")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("replicated"), "{err}");
}

#[tokio::test]
async fn a_plain_seaorm_write_on_the_primary_runs() {
    let c = TestCluster::start().await;
    let saved = post::new("plain on primary").insert(c.db(0)).await.unwrap();
    assert_eq!(saved.revision, 1);
}

#[tokio::test]
async fn an_unregistered_entity_is_refused_before_anything_is_sent() {
    let c = TestCluster::start().await;
    let err = secret::ActiveModel {
        value: Set("x".into()),
        ..Default::default()
    }
    .insert_replicated(c.db(1))
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::UnknownEntity(ref n) if n == "secret"),
        "{err:?}"
    );
}

#[tokio::test]
async fn concurrent_writes_from_every_node_all_land_once() {
    let c = TestCluster::start().await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let db = c.db(i % 3).clone();
        tasks.push(tokio::spawn(async move {
            post::new(&format!("post {i}"))
                .insert_replicated(&db)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    c.litefs.sync().await.unwrap();
    for node in 0..3 {
        assert_eq!(
            post::Entity::find().all(c.db(node)).await.unwrap().len(),
            30
        );
    }
}

#[tokio::test]
async fn a_transaction_on_a_replica_is_refused_naming_operation() {
    use sea_orm::TransactionTrait;
    let c = TestCluster::start().await;
    let err = c.db(1).begin().await.unwrap_err();
    assert!(err.to_string().contains("litefs_orm::Operation"), "{err}");
}

#[tokio::test]
async fn a_router_nested_under_a_prefix_takes_forwarded_writes_and_batches() {
    let c = TestCluster::start().await;
    let primary =
        litefs_orm::ReplicatedDb::connect(c.configs[0].clone(), litefs_orm_tests::registry())
            .await
            .unwrap();
    let app = axum::Router::new().nest("/rpc", litefs_orm::router(primary));
    let (url, _served) = TestCluster::serve(app).await;
    let config = c.configs[1]
        .clone()
        .with_primary_url_for(c.hostname(0), format!("{url}/rpc"));
    let replica = litefs_orm::ReplicatedDb::connect(config, litefs_orm_tests::registry())
        .await
        .unwrap();
    // Enough at once that calls queue behind those in flight and leave as batches.
    let writes = (0..12).map(|i| {
        let replica = replica.clone();
        async move {
            post::new(&format!("nested {i}"))
                .insert_replicated(&replica)
                .await
        }
    });
    for saved in futures_util::future::join_all(writes).await {
        saved.unwrap();
    }
    let stored = post::Entity::find().all(c.db(0)).await.unwrap();
    assert_eq!(stored.len(), 12);
}

#[tokio::test]
async fn a_write_over_the_body_limit_is_refused_before_it_is_sent() {
    let c = TestCluster::start().await;
    let config = c.configs[1].clone().with_max_body_bytes(4096);
    let replica = litefs_orm::ReplicatedDb::connect(config, litefs_orm_tests::registry())
        .await
        .unwrap();
    let mut big = post::new("big");
    big.body = Set("x".repeat(8192));
    let e = big.insert_replicated(&replica).await.unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert!(e.to_string().contains("not sent"), "{e}");
    assert!(!e.may_be_committed());
}
