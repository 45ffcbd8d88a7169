//! What the real LiteFS engine does to a running cluster — a primary's LiteFS stopping, LiteFS
//! restarting under a running app, a planned primary change, the primary's app going away —
//! and the typed, truthful outcome and recovery (no app restart) litefs-orm gives each.
//!
//! Tests that restart LiteFS under a running app use the rollback journal (DELETE mode): in
//! WAL mode SQLite maps `<db>-shm` from the mount, and the next query after the mount went
//! away ends the process with SIGBUS (see `Config::journal_mode`).

use std::collections::BTreeMap;
use std::time::Duration;

use litefs_orm::consistency::capture;
use litefs_orm::{Error, JournalMode, ReplicatedActiveModel};
use litefs_orm_testkit::apps::AppOptions;
use litefs_orm_tests::entities::post;
use litefs_orm_tests::real::{self, setup};
use litefs_orm_tests::until;
use sea_orm::{EntityTrait, PaginatorTrait};

fn delete_mode() -> AppOptions {
    setup().journal_mode(JournalMode::Delete)
}

/// How long a recovery may take before the test fails.
const RECOVERY: Duration = Duration::from_secs(15);

/// Retries `insert` of a post titled `title` on `db` until it succeeds, for up to
/// [`RECOVERY`]; returns every error seen on the way.
async fn insert_until_it_lands(db: &litefs_orm::ReplicatedDb, title: &str) -> Vec<String> {
    let start = std::time::Instant::now();
    let mut errors = Vec::new();
    loop {
        match post::new(title).insert_replicated(db).await {
            Ok(_) => return errors,
            Err(Error::Rejected(f)) if f.kind == litefs_orm::DbFailureKind::UniqueViolation => {
                // An earlier attempt of unknown fate had landed.
                return errors;
            }
            Err(e) => errors.push(e.to_string()),
        }
        assert!(
            start.elapsed() < RECOVERY,
            "{title} never landed; errors: {errors:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_write_from_a_replica_fails_as_no_primary_and_not_committed_while_the_primarys_litefs_is_stopped()
 {
    let mut c = real::start(setup()).await;
    c.stop_app(0).await;
    c.real_mut().stop_node(0).await.unwrap();
    let wait = setup().primary_wait;
    let err = tokio::time::timeout(
        wait + Duration::from_secs(3),
        post::new("nowhere").insert_replicated(c.db(1)),
    )
    .await
    .expect("the write ends after the primary wait, not the write timeout")
    .unwrap_err();
    assert!(matches!(err, Error::NoPrimary { .. }), "{err}");
    assert!(!err.may_be_committed(), "{err}");
}

#[tokio::test]
async fn reads_on_a_replica_keep_working_while_the_primarys_litefs_is_stopped() {
    let mut c = real::start(setup()).await;
    post::new("kept").insert_replicated(c.db(1)).await.unwrap();
    c.stop_app(0).await;
    c.real_mut().stop_node(0).await.unwrap();
    assert_eq!(post::Entity::find().count(c.db(1)).await.unwrap(), 1);
}

#[tokio::test]
async fn writes_from_replicas_resume_by_themselves_when_the_primarys_litefs_returns() {
    let mut c = real::start(delete_mode()).await;
    c.real_mut().stop_node(0).await.unwrap();
    let _ = post::new("while down").insert_replicated(c.db(1)).await;
    c.real_mut().start_node(0).await.unwrap();
    insert_until_it_lands(c.db(1), "after").await;
    assert!(!post::titled(c.db(1), "after").await.is_empty());
}

#[tokio::test]
async fn a_write_on_a_primary_whose_mount_died_is_an_io_error_not_a_replica_refusal() {
    let mut c = real::start(delete_mode()).await;
    c.real_mut().stop_node(0).await.unwrap();
    let err = post::new("dead mount")
        .insert_replicated(c.db(0))
        .await
        .unwrap_err();
    assert!(
        !matches!(err, Error::NotPrimary { .. }),
        "a dead mount on the primary is not a replica: {err}"
    );
    assert!(matches!(err, Error::Io(_)), "an I/O error, as it is: {err}");
    assert!(!err.may_be_committed(), "{err}");
    c.real_mut().start_node(0).await.unwrap();
}

#[tokio::test]
async fn writes_on_the_primary_resume_after_litefs_restarts_under_its_app() {
    let mut c = real::start(delete_mode()).await;
    post::new("before")
        .insert_replicated(c.db(0))
        .await
        .unwrap();
    c.real_mut().restart_node(0).await.unwrap();
    insert_until_it_lands(c.db(0), "after").await;
    assert_eq!(post::Entity::find().count(c.db(0)).await.unwrap(), 2);
}

#[tokio::test]
async fn forwarded_writes_resume_after_litefs_restarts_under_the_primarys_app() {
    let mut c = real::start(delete_mode()).await;
    c.real_mut().restart_node(0).await.unwrap();
    insert_until_it_lands(c.db(2), "forwarded after").await;
    assert!(!post::titled(c.db(2), "forwarded after").await.is_empty());
}

#[tokio::test]
async fn a_replica_reads_and_forwards_again_after_its_litefs_restarts_under_its_app() {
    let mut c = real::start(delete_mode()).await;
    post::new("old").insert_replicated(c.db(1)).await.unwrap();
    c.real_mut().restart_node(1).await.unwrap();
    insert_until_it_lands(c.db(1), "new").await;
    let titles: Vec<String> = post::Entity::find()
        .all(c.db(1))
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.title)
        .collect();
    assert_eq!(titles, ["old", "new"]);
}

#[tokio::test]
async fn replicas_writes_fail_as_not_committed_while_the_primarys_app_is_down_and_resume_after() {
    let mut c = real::start(setup().write_timeout(Duration::from_secs(3))).await;
    c.stop_app(0).await;
    let err = post::new("refused")
        .insert_replicated(c.db(1))
        .await
        .unwrap_err();
    assert!(
        !err.may_be_committed(),
        "nothing reached the primary: {err}"
    );
    c.start_app(0).await.unwrap();
    post::new("accepted")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    let titles: Vec<String> = post::Entity::find()
        .all(c.db(1))
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.title)
        .collect();
    assert_eq!(titles, ["accepted"]);
}

/// A planned change on a static lease, done the way that loses nothing: the old primary's app
/// stops taking writes, the replicas catch up with its last commit, then LiteFS restarts with
/// the new primary (LiteFS replicates asynchronously: a commit the new primary never received
/// would be lost, and a replica that had it rolled back).
#[tokio::test]
async fn a_planned_primary_change_under_load_loses_duplicates_and_hides_no_acknowledged_write() {
    let mut c = real::start(delete_mode()).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in [1, 2] {
        let db = c.db(w).clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let title = format!("w{w}-{n}");
                n += 1;
                if post::new(&title).insert_replicated(&db).await.is_ok() {
                    // Read-your-writes through the change: acknowledged means here already
                    // (when this node's LiteFS, restarting for the change, can be read).
                    if let Ok(posts) = post::Entity::find().all(&db).await {
                        assert!(
                            posts.iter().any(|p| p.title == title),
                            "{title} missing on node {w} when acknowledged"
                        );
                    }
                    acknowledged.push(title);
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.stop_app(0).await;
    // A statement the stopped app had handed to SQLite may still commit: let it land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.sync().await.unwrap();
    c.real_mut().change_primary(1).await.unwrap();
    c.start_app(0).await.unwrap();
    // Every node writes again after the change, the new primary locally.
    for node in 0..3 {
        insert_until_it_lands(c.db(node), &format!("after change {node}")).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(!acknowledged.is_empty());
    c.sync().await.unwrap();
    for node in 0..3 {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for p in post::Entity::find().all(c.db(node)).await.unwrap() {
            *counts.entry(p.title).or_default() += 1;
        }
        for title in &acknowledged {
            assert_eq!(counts.get(title), Some(&1), "{title} on node {node}");
        }
        for title in (0..3).map(|n| format!("after change {n}")) {
            assert_eq!(counts.get(&title), Some(&1), "{title} on node {node}");
        }
    }
}

/// An unplanned failover to a replica that lagged leaves another replica ahead on the old
/// primary's history: its TXID passes the new primary's first commits while it holds none of
/// them. A token of such a commit is not taken as held there until the replica, following the
/// new primary, has the commit.
#[tokio::test]
async fn a_replica_ahead_on_an_abandoned_history_waits_for_a_token_until_it_holds_the_commit() {
    let mut c = real::start(delete_mode().replication_timeout(Duration::from_secs(2))).await;
    post::new("shared")
        .insert_replicated(c.db(0))
        .await
        .unwrap();
    c.sync().await.unwrap();
    // Node 2 falls behind; node 1 gets the old primary's last commits.
    c.real_mut().stop_node(2).await.unwrap();
    for i in 0..3 {
        let title = format!("old history {i}");
        post::new(&title).insert_replicated(c.db(0)).await.unwrap();
    }
    until("node 1 has node 0's last commits", RECOVERY, || {
        c.real().pos(1).ok() == c.real().pos(0).ok()
    })
    .await;
    // The old primary goes away; node 2 takes over with the history it has. Node 1 still
    // follows node 0, and keeps the commits node 2 never had.
    c.stop_app(0).await;
    c.real_mut().stop_node(0).await.unwrap();
    c.real_mut().set_primary(2).unwrap();
    c.real_mut().start_node(2).await.unwrap();
    until("node 2's app sees it is primary", RECOVERY, || {
        c.db(2).role() == litefs_orm::Role::Primary
    })
    .await;
    let start = std::time::Instant::now();
    let tokens = loop {
        // Its first statements may meet the mount that went away under it.
        match capture(post::new("new history").insert_replicated(c.db(2))).await {
            (Ok(_), tokens) => break tokens,
            (Err(e), _) => assert!(start.elapsed() < RECOVERY, "no write on node 2: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let token = tokens.get(c.db(2).database_name()).unwrap().clone();
    let (ahead, _) = c.real().pos(1).unwrap();
    assert!(
        ahead >= token.txid(),
        "node 1 at {ahead} is not ahead of {token:?}"
    );

    let e = c.db(1).wait_for(&token).await.unwrap_err();
    assert!(matches!(e, Error::ReplicationTimeout { .. }), "{e:?}");
    assert!(e.is_committed());
    assert!(post::titled(c.db(1), "new history").await.is_empty());

    // Node 1 follows the new primary, which replaces its abandoned history.
    c.real_mut().restart_node(1).await.unwrap();
    let start = std::time::Instant::now();
    while let Err(e) = c.db(1).wait_for(&token).await {
        // Until its app reads the new mount, a wait can fail as any error.
        assert!(start.elapsed() < RECOVERY, "never held: {e}");
    }
    assert!(!post::titled(c.db(1), "new history").await.is_empty());
    assert!(post::titled(c.db(1), "old history 0").await.is_empty());
}
