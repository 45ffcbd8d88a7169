//! Tests of `peers`: who holds a commit, who counts, and the bounded wait.

use std::time::Duration;

use super::*;

const BOUND: Duration = Duration::from_secs(1);

/// A primary's tracker that went through TXIDs 1..=`to`, each with checksum `100 + txid`.
fn primary_at(dir: &tempfile::TempDir, to: u64) -> PositionTracker {
    let tracker = PositionTracker::new(&dir.path().join("app.db"));
    for txid in 1..=to {
        tracker.observed(at(txid));
    }
    tracker
}

fn at(txid: u64) -> Pos {
    Pos {
        txid,
        checksum: 100 + txid,
    }
}

async fn wait(
    peers: &Peers,
    txid: u64,
    d: Durability,
    t: &PositionTracker,
) -> Result<(), NotDurable> {
    peers.wait(txid, d, BOUND, t).await
}

#[tokio::test(start_paused = true)]
async fn a_commit_is_durable_once_every_live_candidate_reported_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = primary_at(&dir, 5);
    let peers = Peers::default();
    peers.opened("a", true);
    peers.opened("b", true);
    peers.report("a", at(5));
    peers.report("b", at(4));
    assert_eq!(
        wait(&peers, 5, Durability::Candidates, &t).await,
        Err(NotDurable {
            held_by: 1,
            wanted: 2
        })
    );
    // "b" missed the bound and is set aside until it holds TXID 5, which it now does.
    peers.report("b", at(5));
    assert_eq!(wait(&peers, 5, Durability::Candidates, &t).await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_node_on_another_history_never_holds_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let t = primary_at(&dir, 5);
    let peers = Peers::default();
    peers.opened("a", true);
    // Past the commit's TXID, with another checksum: an abandoned history.
    peers.report(
        "a",
        Pos {
            txid: 7,
            checksum: 1,
        },
    );
    let e = wait(&peers, 5, Durability::Candidates, &t)
        .await
        .unwrap_err();
    assert_eq!(e.held_by, 0);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_cannot_be_elected_is_not_waited_for_with_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let t = primary_at(&dir, 5);
    let peers = Peers::default();
    peers.opened("replica", false);
    assert_eq!(wait(&peers, 5, Durability::Candidates, &t).await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_count_counts_any_live_node_that_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = primary_at(&dir, 5);
    let peers = Peers::default();
    peers.opened("replica", false);
    peers.report("replica", at(5));
    assert_eq!(wait(&peers, 5, Durability::Count(1), &t).await, Ok(()));
    let e = wait(&peers, 5, Durability::Count(2), &t).await.unwrap_err();
    assert_eq!((e.held_by, e.wanted), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn with_no_live_candidate_candidates_is_local() {
    let dir = tempfile::tempdir().unwrap();
    let t = primary_at(&dir, 5);
    assert_eq!(
        wait(&Peers::default(), 5, Durability::Candidates, &t).await,
        Ok(())
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_node_still_counts_and_shows_not_live() {
    let dir = tempfile::tempdir().unwrap();
    let t = primary_at(&dir, 5);
    let peers = Peers::default();
    peers.opened("a", true);
    peers.report("a", at(4));
    tokio::time::advance(BOUND + Duration::from_millis(1)).await;
    assert!(!peers.status(BOUND, &t)[0].live);
    let e = wait(&peers, 5, Durability::Candidates, &t)
        .await
        .unwrap_err();
    assert_eq!((e.held_by, e.wanted), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_stream_closed_is_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let t = primary_at(&dir, 5);
    let peers = Peers::default();
    peers.opened("a", true);
    peers.closed("a");
    assert_eq!(wait(&peers, 5, Durability::Candidates, &t).await, Ok(()));
    assert!(peers.status(BOUND, &t).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_node_that_missed_the_bound_makes_commits_not_durable_at_once_until_it_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let t = primary_at(&dir, 5);
    let peers = Peers::default();
    peers.opened("slow", true);
    peers.report("slow", at(3));
    assert!(wait(&peers, 5, Durability::Candidates, &t).await.is_err());
    assert!(peers.status(BOUND, &t)[0].set_aside);
    // Set aside: the next commit it lacks is not durable, without a wait.
    t.observed(at(6));
    let start = tokio::time::Instant::now();
    let e = wait(&peers, 6, Durability::Candidates, &t)
        .await
        .unwrap_err();
    assert_eq!((e.held_by, e.wanted), (0, 1));
    assert_eq!(start.elapsed(), Duration::ZERO);
    // Caught up with where the primary was when it missed the bound: waited for again.
    peers.report("slow", at(6));
    assert_eq!(wait(&peers, 6, Durability::Candidates, &t).await, Ok(()));
    assert!(!peers.status(BOUND, &t)[0].set_aside);
}

#[tokio::test(start_paused = true)]
async fn a_report_arriving_during_the_wait_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = primary_at(&dir, 5);
    let peers = std::sync::Arc::new(Peers::default());
    peers.opened("a", true);
    let reporter = peers.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        reporter.report("a", at(5));
    });
    let start = tokio::time::Instant::now();
    assert_eq!(wait(&peers, 5, Durability::Candidates, &t).await, Ok(()));
    assert!(start.elapsed() < BOUND);
}
