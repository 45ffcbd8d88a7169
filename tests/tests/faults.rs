//! Forwarded writes through a fault-injecting proxy: bounded time, and the error says
//! whether the write may have been committed.

use std::time::{Duration, Instant};

use litefs_orm::{Error, ReplicatedActiveModel};
use litefs_orm_tests::TestCluster;
use litefs_orm_tests::entities::post;
use litefs_orm_tests::proxy::Fault;
use sea_orm::EntityTrait;

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
    assert_eq!(post::titled(c.db(0), "slow").await.len(), 1);
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
    assert_eq!(post::titled(c.db(0), "dropped").await.len(), 0);
}

#[tokio::test]
async fn writes_recover_once_the_fault_clears() {
    let c = TestCluster::proxied(Duration::from_secs(5)).await;
    c.proxies[0].set(Fault::Drop);
    let _ = post::new("during").insert_replicated(c.db(2)).await;
    c.proxies[0].set(Fault::None);
    post::new("after").insert_replicated(c.db(2)).await.unwrap();
    assert_eq!(post::titled(c.db(0), "after").await.len(), 1);
}

#[tokio::test]
async fn a_gateway_timeout_after_the_request_is_retried_and_applied_once() {
    let c = TestCluster::proxied(Duration::from_secs(10)).await;
    c.proxies[0].set(Fault::GatewayTimeoutAfterRequest);
    let replica = c.db(1).clone();
    let insert = tokio::spawn(async move {
        post::new("behind a gateway")
            .insert_replicated(&replica)
            .await
    });
    // Let the primary run it and a retry meet the same gateway error before the fault clears.
    let started = Instant::now();
    while c.proxies[0].answers_replaced() < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "no retry");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.proxies[0].set(Fault::None);
    let saved = insert.await.unwrap().expect("the retry is answered");
    assert_eq!(post::titled(c.db(0), "behind a gateway").await.len(), 1);
    assert_eq!(
        post::Entity::find_by_id(saved.id)
            .one(c.db(1))
            .await
            .unwrap(),
        Some(saved)
    );
}

#[tokio::test]
async fn gateway_timeouts_until_the_deadline_end_as_maybe_committed() {
    let c = TestCluster::proxied(Duration::from_millis(800)).await;
    c.proxies[0].set(Fault::GatewayTimeoutAfterRequest);
    let err = fails_within_deadline(&c, "gateway deadline").await;
    assert!(err.may_be_committed(), "{err:?}");
    assert!(
        matches!(err, Error::Transport { attempts: 2.., .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("504"), "{err}");
    assert_eq!(post::titled(c.db(0), "gateway deadline").await.len(), 1);
}
