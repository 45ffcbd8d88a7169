//! No primary, paused replication and a primary switch: bounded waits and typed errors.

use std::time::Duration;

use litefs_orm::{Error, ReplicatedActiveModel, Role};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::operations::IncrementPage;
use litefs_orm_tests::{Setup, TestCluster};
use sea_orm::EntityTrait;

async fn wait_role(c: &TestCluster, node: usize, want: impl Fn(&Role) -> bool) {
    for _ in 0..200 {
        if want(&c.db(node).role()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("node {node} stayed {}", c.db(node).role());
}

#[tokio::test]
async fn with_no_primary_a_write_waits_a_bounded_time_then_fails_typed() {
    let c = TestCluster::start_with(Setup {
        primary_wait: Duration::from_millis(300),
        ..Setup::default()
    })
    .await;
    c.litefs.lose_primary().await;
    wait_role(&c, 1, |r| *r == Role::NoPrimary).await;
    let started = std::time::Instant::now();
    let err = post::new("orphan")
        .insert_replicated(c.db(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoPrimary { .. }), "{err:?}");
    assert!(!err.may_be_committed());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn paused_replication_times_out_with_the_write_committed_on_the_primary() {
    let c = TestCluster::start_with(Setup {
        replication_timeout: Duration::from_millis(300),
        ..Setup::default()
    })
    .await;
    c.litefs.pause_replication();
    let err = post::new("stuck")
        .insert_replicated(c.db(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReplicationTimeout {
                committed: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_committed());
    let on_primary = post::Entity::find().all(c.db(0)).await.unwrap();
    assert_eq!(on_primary.len(), 1);
    c.litefs.resume_replication();
    c.litefs.sync().await.unwrap();
    assert_eq!(post::Entity::find().all(c.db(1)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn after_a_primary_switch_writes_go_to_the_new_primary() {
    let c = TestCluster::start().await;
    post::new("before")
        .insert_replicated(c.db(2))
        .await
        .unwrap();
    c.litefs.sync().await.unwrap();
    c.litefs.switch_primary(1).await;
    wait_role(&c, 1, |r| *r == Role::Primary).await;
    wait_role(&c, 2, |r| r.primary() == Some(c.litefs.hostname(1))).await;
    let saved = post::new("after").insert_replicated(c.db(2)).await.unwrap();
    let on_new_primary = post::Entity::find_by_id(saved.id)
        .one(c.db(1))
        .await
        .unwrap();
    assert_eq!(on_new_primary, Some(saved));
}

#[tokio::test]
async fn the_old_primary_forwards_after_it_becomes_a_replica() {
    let c = TestCluster::start().await;
    c.litefs.switch_primary(2).await;
    wait_role(&c, 0, |r| r.primary().is_some()).await;
    let saved = post::new("from the old primary")
        .insert_replicated(c.db(0))
        .await
        .unwrap();
    let local = post::Entity::find_by_id(saved.id)
        .one(c.db(0))
        .await
        .unwrap();
    assert_eq!(local, Some(saved));
}

#[tokio::test]
async fn roles_follow_the_primary_file_without_the_http_api() {
    let c = TestCluster::start_with(Setup {
        http_api: false,
        ..Setup::default()
    })
    .await;
    assert_eq!(c.db(0).role(), Role::Primary);
    assert_eq!(c.db(1).role().primary(), Some(c.litefs.hostname(0)));
    let saved = post::new("file roles")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    assert_eq!(
        post::Entity::find_by_id(saved.id)
            .one(c.db(1))
            .await
            .unwrap(),
        Some(saved)
    );
}

#[tokio::test]
async fn a_replica_that_lost_its_primary_is_not_taken_for_one() {
    let c = TestCluster::start_with(Setup {
        http_api: false,
        ..Setup::default()
    })
    .await;
    c.litefs.lose_primary().await;
    wait_role(&c, 1, |r| *r == Role::NoPrimary).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.db(1).role(), Role::NoPrimary);
    assert_ne!(c.db(0).role(), Role::Primary);
}

/// A three-node cluster with roles from `.primary`, whose node 0 was just made a replica
/// without noticing yet: it still believes it is the primary.
async fn demoted_unawares() -> TestCluster {
    demoted_unawares_in(litefs_orm::JournalMode::Wal).await
}

/// [`demoted_unawares`] in `journal_mode`.
async fn demoted_unawares_in(journal_mode: litefs_orm::JournalMode) -> TestCluster {
    // Roles from `.primary`, re-read every 250 ms: right after the switch node 0 still
    // believes it is the primary and writes locally; its replica refuses the write inside
    // SQLite. Should node 0's re-read land between the switch and the write, the switch is
    // made again, so the write always starts stale.
    let c = TestCluster::start_with(Setup {
        http_api: false,
        journal_mode,
        ..Setup::default()
    })
    .await;
    for _ in 0..5 {
        c.litefs.switch_primary(1).await;
        if c.db(0).role() == Role::Primary {
            break;
        }
        c.litefs.switch_primary(0).await;
        wait_role(&c, 0, |r| *r == Role::Primary).await;
    }
    assert_eq!(c.db(0).role(), Role::Primary, "node 0 noticed every switch");
    c
}

#[tokio::test]
async fn an_operation_on_a_primary_demoted_before_it_noticed_runs_once_on_the_new_primary() {
    // The operation's `?` turns LiteFS's refusal into its own error type; it is still "not
    // primary", and the call runs on the new primary. In rollback-journal mode the refusal
    // meets the operation's own statement (creating the journal), not the commit.
    let c = demoted_unawares_in(litefs_orm::JournalMode::Delete).await;
    let count = c
        .db(0)
        .run(IncrementPage {
            page: "demoted".into(),
        })
        .await
        .unwrap();
    assert_eq!(count, 1);
    c.litefs.sync().await.unwrap();
    let again = c
        .db(2)
        .run(IncrementPage {
            page: "demoted".into(),
        })
        .await
        .unwrap();
    assert_eq!(again, 2, "the first call counted once");
}

#[tokio::test]
async fn a_write_on_a_primary_demoted_before_it_noticed_lands_once_on_the_new_primary() {
    // Its replica refuses the write inside SQLite, and the call goes to node 1 instead.
    let c = demoted_unawares().await;
    let saved = post::new("demoted unawares")
        .insert_replicated(c.db(0))
        .await
        .unwrap();
    c.litefs.sync().await.unwrap();
    for node in 0..3 {
        let found = post::titled(c.db(node), "demoted unawares").await;
        assert_eq!(found, vec![saved.clone()], "node {node}");
    }
    assert_eq!(c.litefs.replica_writes_detected(), 0);
}
