//! Read-your-writes beyond one call: a replica ahead on an abandoned history never returns
//! early, and tokens make any node wait for a commit another node made.

use std::time::Duration;

use litefs_orm::consistency::capture;
use litefs_orm::{Error, ReplicatedActiveModel, Role};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::{Setup, TestCluster, until};
use sea_orm::EntityTrait;

/// A cluster where node 2 holds TXIDs of node 0's history that node 1, the new primary,
/// never had: node 2 is ahead on an abandoned history, and held there.
async fn abandoned_history(replication_timeout: Duration) -> TestCluster {
    let c = TestCluster::start_with(Setup {
        replication_timeout,
        ..Setup::default()
    })
    .await;
    c.litefs.pause_replication_to(1);
    let before = c.litefs.pos(0).txid;
    for i in 0..3 {
        post::new(&format!("old history {i}"))
            .insert_replicated(c.db(0))
            .await
            .unwrap();
    }
    // The primary's `-pos` shows the commits a moment after them; node 2 follows it.
    until("node 2 has node 0's writes", Duration::from_secs(5), || {
        let primary = c.litefs.pos(0);
        primary.txid > before && c.litefs.pos(2) == primary
    })
    .await;
    c.litefs.pause_replication_to(2);
    c.litefs.switch_primary(1).await;
    c.litefs.resume_replication_to(1);
    until("node 2 follows node 1", Duration::from_secs(5), || {
        matches!(c.db(2).role(), Role::Replica { .. }) && c.db(1).role() == Role::Primary
    })
    .await;
    assert!(c.litefs.pos(2).txid > c.litefs.pos(1).txid);
    c
}

#[tokio::test]
async fn a_replica_ahead_on_an_abandoned_history_does_not_take_its_txid_for_the_write() {
    let c = abandoned_history(Duration::from_millis(800)).await;
    let e = post::new("new history")
        .insert_replicated(c.db(2))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ReplicationTimeout { .. }), "{e:?}");
    assert!(e.is_committed());
    assert_eq!(post::titled(c.db(1), "new history").await.len(), 1);
}

#[tokio::test]
async fn a_replica_ahead_on_an_abandoned_history_returns_once_it_holds_the_write() {
    let c = abandoned_history(Duration::from_secs(10)).await;
    let db = c.db(2).clone();
    let write = tokio::spawn(async move { post::new("new history").insert_replicated(&db).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.litefs.resume_replication_to(2);
    write.await.unwrap().unwrap();
    assert_eq!(post::titled(c.db(2), "new history").await.len(), 1);
}

#[tokio::test]
async fn a_forwarded_write_earns_a_token_that_another_node_waits_for() {
    let c = TestCluster::start_with(Setup {
        replication_timeout: Duration::from_millis(500),
        ..Setup::default()
    })
    .await;
    c.litefs.pause_replication_to(2);
    let (saved, tokens) = capture(post::new("with a token").insert_replicated(c.db(1))).await;
    saved.unwrap();
    assert_eq!(tokens.len(), 1);
    let e = c.db(2).wait_for_tokens(&tokens).await.unwrap_err();
    assert!(matches!(e, Error::ReplicationTimeout { .. }), "{e:?}");
    c.litefs.resume_replication_to(2);
    c.db(2).wait_for_tokens(&tokens).await.unwrap();
    assert_eq!(post::titled(c.db(2), "with a token").await.len(), 1);
}

#[tokio::test]
async fn a_local_write_on_the_primary_earns_a_token_too() {
    let c = TestCluster::start().await;
    c.litefs.set_replication_delay(Duration::from_millis(200));
    let (saved, tokens) = capture(post::new("on the primary").insert_replicated(c.db(0))).await;
    saved.unwrap();
    assert_eq!(tokens.len(), 1);
    c.db(2).wait_for_tokens(&tokens).await.unwrap();
    assert_eq!(post::titled(c.db(2), "on the primary").await.len(), 1);
}

#[tokio::test]
async fn an_operation_earns_a_token() {
    let c = TestCluster::start_with(Setup {
        replication_timeout: Duration::from_millis(500),
        ..Setup::default()
    })
    .await;
    c.litefs.pause_replication_to(2);
    let page = litefs_orm_tests::operations::IncrementPage {
        page: "tokens".into(),
    };
    let (count, tokens) = capture(c.db(1).run(page)).await;
    assert_eq!(count.unwrap(), 1);
    assert_eq!(tokens.len(), 1);
    let e = c.db(2).wait_for_tokens(&tokens).await.unwrap_err();
    assert!(matches!(e, Error::ReplicationTimeout { .. }), "{e:?}");
    c.litefs.resume_replication_to(2);
    c.db(2).wait_for_tokens(&tokens).await.unwrap();
}

#[tokio::test]
async fn a_read_earns_no_token() {
    let c = TestCluster::start().await;
    let (_, tokens) = capture(post::Entity::find().all(c.db(1))).await;
    assert!(tokens.is_empty());
}

#[tokio::test]
async fn a_token_of_another_database_is_refused() {
    let c = TestCluster::start().await;
    let token = litefs_orm::consistency::Token::new("other.db", 1, "aa");
    let e = c.db(1).wait_for(&token).await.unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
}

#[tokio::test]
async fn under_load_through_a_primary_change_every_acknowledged_write_is_readable_where_it_was_made()
 {
    let c = TestCluster::start().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for node in [1, 2] {
        for w in 0..4 {
            let db = c.db(node).clone();
            let stop = stop.clone();
            writers.push(tokio::spawn(async move {
                let mut acknowledged = 0;
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let title = format!("n{node}-w{w}-{n}");
                    n += 1;
                    if post::new(&title).insert_replicated(&db).await.is_ok() {
                        assert_eq!(
                            post::titled(&db, &title).await.len(),
                            1,
                            "{title} when acknowledged"
                        );
                        acknowledged += 1;
                    }
                }
                acknowledged
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.litefs.switch_primary(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = 0;
    for w in writers {
        acknowledged += w.await.unwrap();
    }
    assert!(acknowledged > 0);
}
