//! Forwarded writes through a fault-injecting proxy: bounded time, and the error says
//! whether the write may have been committed.

use std::time::{Duration, Instant};

use litefs_orm::{Error, ReplicatedActiveModel};
use litefs_orm_tests::TestCluster;
use litefs_orm_tests::entities::post;
use litefs_orm_tests::proxy::Fault;
use sea_orm::EntityTrait;

async fn on_primary(c: &TestCluster, title: &str) -> usize {
    post::Entity::find()
        .all(c.db(0))
        .await
        .unwrap()
        .iter()
        .filter(|p| p.title == title)
        .count()
}

/// Inserts `title` from a replica, expecting a failure well before 5 s.
async fn fails_within_deadline(c: &TestCluster, title: &str) -> Error {
    let started = Instant::now();
    let err = post::new(title)
        .insert_replicated(c.db(1))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    err
}

#[tokio::test]
async fn a_write_through_added_latency_still_lands_once() {
    let c = TestCluster::proxied(Duration::from_secs(10)).await;
    c.proxies[0].set(Fault::Latency(Duration::from_millis(30)));
    let saved = post::new("slow").insert_replicated(c.db(1)).await.unwrap();
    assert_eq!(
        post::Entity::find_by_id(saved.id)
            .one(c.db(1))
            .await
            .unwrap(),
        Some(saved)
    );
    assert_eq!(on_primary(&c, "slow").await, 1);
}

#[tokio::test]
async fn a_stalled_answer_ends_at_the_deadline_as_maybe_committed() {
    let c = TestCluster::proxied(Duration::from_millis(500)).await;
    c.proxies[0].set(Fault::Stall);
    let err = fails_within_deadline(&c, "stalled").await;
    assert!(
        matches!(
            err,
            Error::Transport {
                maybe_committed: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.may_be_committed());
}

#[tokio::test]
async fn dropped_connections_fail_within_the_deadline() {
    let c = TestCluster::proxied(Duration::from_millis(500)).await;
    c.proxies[0].set(Fault::Drop);
    let err = fails_within_deadline(&c, "dropped").await;
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(on_primary(&c, "dropped").await, 0);
}

#[tokio::test]
async fn writes_recover_once_the_fault_clears() {
    let c = TestCluster::proxied(Duration::from_secs(5)).await;
    c.proxies[0].set(Fault::Drop);
    let _ = post::new("during").insert_replicated(c.db(2)).await;
    c.proxies[0].set(Fault::None);
    post::new("after").insert_replicated(c.db(2)).await.unwrap();
    assert_eq!(on_primary(&c, "after").await, 1);
}
