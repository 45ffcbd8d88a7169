//! Durable acknowledgements on the stand-in: with `Durability::Candidates` a write returns
//! once every other live candidate holds its commit, a node that stops replicating costs
//! one bounded wait (the write is committed, not yet durable) and is then not waited for,
//! and the primary's status shows who reports to it.

use std::time::{Duration, Instant};

use litefs_orm::{Durability, Error, ReplicatedActiveModel};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::{Setup, TestCluster};

const BOUND: Duration = Duration::from_millis(800);

async fn cluster(durability: Durability) -> TestCluster {
    let c = TestCluster::start_with(Setup {
        durability,
        durability_timeout: BOUND,
        ..Setup::default()
    })
    .await;
    // Every replica's report stream is open before the test writes.
    litefs_orm_tests::until("both replicas report", Duration::from_secs(10), || {
        c.db(0).status().peers.iter().filter(|p| p.live).count() == 2
    })
    .await;
    c
}

#[tokio::test]
async fn with_candidates_a_write_returns_once_every_other_node_holds_it() {
    let c = cluster(Durability::Candidates).await;
    // Replication lags, within the bound: a local write would return long before.
    c.litefs.set_replication_delay(Duration::from_millis(300));
    let saved = post::new("everywhere")
        .insert_replicated(c.db(0))
        .await
        .unwrap();
    for node in [1, 2] {
        let held = post::titled(c.db(node), "everywhere").await;
        assert_eq!(held.first().map(|p| p.id), Some(saved.id), "node {node}");
    }
}

#[tokio::test]
async fn with_local_durability_a_write_does_not_wait_for_the_others() {
    let c = cluster(Durability::Local).await;
    c.litefs.set_replication_delay(Duration::from_millis(300));
    post::new("here").insert_replicated(c.db(0)).await.unwrap();
    assert!(post::titled(c.db(2), "here").await.is_empty());
}

#[tokio::test]
async fn a_node_that_stops_replicating_costs_one_bounded_wait_then_writes_say_so_at_once() {
    let c = cluster(Durability::Candidates).await;
    c.litefs.pause_replication_to(2);
    let start = Instant::now();
    let e = post::new("first")
        .insert_replicated(c.db(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::NotDurable {
                held_by: 1,
                wanted: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_committed(), "{e}");
    assert!(start.elapsed() >= BOUND, "{:?}", start.elapsed());
    // Set aside: writes go on without waiting for it, and say they are not durable.
    let start = Instant::now();
    let e = post::new("second")
        .insert_replicated(c.db(0))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotDurable { held_by: 1, .. }), "{e}");
    assert!(start.elapsed() < BOUND, "{:?}", start.elapsed());
    let set_aside = c
        .db(0)
        .status()
        .peers
        .iter()
        .filter(|p| p.set_aside)
        .count();
    assert_eq!(set_aside, 1);
}

#[tokio::test]
async fn a_forwarded_write_that_is_not_yet_durable_says_so_on_the_replica() {
    let c = cluster(Durability::Candidates).await;
    c.litefs.pause_replication_to(2);
    let e = post::new("from a replica")
        .insert_replicated(c.db(1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotDurable { .. }), "{e}");
    // Committed, and read-your-writes held: node 1 has it.
    assert!(!post::titled(c.db(1), "from a replica").await.is_empty());
}

#[tokio::test]
async fn a_node_that_caught_up_is_waited_for_again() {
    let c = cluster(Durability::Candidates).await;
    c.litefs.pause_replication_to(2);
    let _ = post::new("missed").insert_replicated(c.db(0)).await;
    c.litefs.resume_replication_to(2);
    c.litefs.sync().await.unwrap();
    post::new("caught up")
        .insert_replicated(c.db(0))
        .await
        .unwrap();
    assert!(!post::titled(c.db(2), "caught up").await.is_empty());
}

#[tokio::test]
async fn with_a_count_a_write_needs_that_many_other_nodes() {
    let c = cluster(Durability::Count(1)).await;
    c.litefs.pause_replication_to(2);
    // Node 1 alone is enough.
    post::new("one is enough")
        .insert_replicated(c.db(0))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_primary_lists_the_nodes_that_report_to_it() {
    let c = cluster(Durability::Local).await;
    let peers = c.db(0).status().peers;
    assert_eq!(peers.len(), 2, "{peers:?}");
    assert!(
        peers
            .iter()
            .all(|p| p.candidate && p.live && p.on_this_history)
    );
    assert!(c.db(1).status().peers.is_empty());
}

#[tokio::test]
async fn a_forwarded_write_carries_the_durability_its_handle_asks_for() {
    let c = cluster(Durability::Local).await;
    c.litefs.set_replication_delay(Duration::from_millis(300));
    let durable = c.db(1).with_durability(Durability::Candidates);
    post::new("asked")
        .insert_replicated(&durable)
        .await
        .unwrap();
    assert!(!post::titled(c.db(2), "asked").await.is_empty());
}

#[tokio::test]
async fn a_report_that_stays_silent_is_ended_by_the_primary() {
    use litefs_orm::positions::PositionLine;
    let timeout = Duration::from_millis(100);
    let c = TestCluster::start_with(Setup {
        durability: Durability::Candidates,
        durability_timeout: timeout,
        ..Setup::default()
    })
    .await;
    // A node that reports once, then neither speaks nor closes its connection.
    let url = format!("http://{}{}", c.nodes[0].addr, litefs_orm::POSITIONS_PATH);
    let sig = litefs_orm::auth::sign(
        litefs_orm_tests::SECRET.as_bytes(),
        litefs_orm::POSITIONS_PATH,
        b"",
    );
    let pos = c.db(0).local_position().unwrap();
    let line = PositionLine::new("silent", true, c.db(0).database_name(), pos, 0);
    let (lines, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    lines
        .send(Ok(line
            .encode(litefs_orm_tests::SECRET.as_bytes(), &sig.nonce)
            .into()))
        .await
        .unwrap();
    let mut rx = rx;
    let body =
        reqwest::Body::wrap_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let report = tokio::spawn(
        reqwest::Client::new()
            .post(url)
            .header(
                litefs_orm::auth::TIMESTAMP_HEADER,
                sig.timestamp_ms.to_string(),
            )
            .header(litefs_orm::auth::NONCE_HEADER, &sig.nonce)
            .header(litefs_orm::auth::SIGNATURE_HEADER, &sig.signature)
            .body(body)
            .send(),
    );
    let listed = |c: &TestCluster| c.db(0).status().peers.iter().any(|p| p.node == "silent");
    litefs_orm_tests::until("the report is open", Duration::from_secs(5), || listed(&c)).await;
    litefs_orm_tests::until("the silent report ends", Duration::from_secs(5), || {
        !listed(&c)
    })
    .await;
    drop(lines);
    report.abort();
}
