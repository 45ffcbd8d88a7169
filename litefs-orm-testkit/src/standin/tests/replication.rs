//! Replication to replicas: data and `-pos`, pause/resume with `.lag`, delay, replica writes.

use std::time::{Duration, Instant};

use super::{connect, count, exec, lag, wait_until, with_table};
use crate::{ClusterOptions, Error, JournalMode, ReplicaWrites};
use litefs_orm::litefs::LAG_NEVER_SYNCED_MS;

fn opts() -> ClusterOptions {
    ClusterOptions::default().nodes(3).http_api(false)
}

#[tokio::test]
async fn replica_data_and_pos_follow_after_replication() {
    let (c, mut conn) = with_table(opts()).await;
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a'), ('b')").await;
    c.sync().await.unwrap();
    for i in 1..3 {
        assert_eq!(c.pos(i), c.pos(0));
        assert_eq!(count(&mut connect(&c, i).await, "t").await, 2);
        assert_eq!(lag(&c, i), 0);
    }
}

#[tokio::test]
async fn replica_follows_without_sync_within_milliseconds() {
    let (c, mut conn) = with_table(opts()).await;
    let mut replica = connect(&c, 1).await;
    let before = c.pos(0);
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
    let start = Instant::now();
    wait_until("primary -pos", Duration::from_secs(2), || {
        c.pos(0) != before
    })
    .await;
    let primary = c.pos(0);
    wait_until("replica -pos", Duration::from_secs(2), || {
        c.pos(1) == primary
    })
    .await;
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(count(&mut replica, "t").await, 1);
}

#[tokio::test]
async fn replicas_replicate_in_wal_mode() {
    let (c, mut conn) = with_table(opts().journal_mode(JournalMode::Wal)).await;
    let mut replica = connect(&c, 2).await;
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
    c.sync().await.unwrap();
    assert_eq!(count(&mut replica, "t").await, 1);
    let mode: String = sea_orm::sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut replica)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn paused_replica_stays_behind_and_its_lag_grows() {
    let (c, mut conn) = with_table(opts()).await;
    c.pause_replication();
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
    let synced = c.pos(1);
    wait_until("primary -pos", Duration::from_secs(2), || {
        c.pos(0) != synced
    })
    .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let first = lag(&c, 1);
    assert!(first >= 20, "lag {first}");
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(lag(&c, 1) > first);
    assert_eq!(c.pos(1), synced);
    assert_eq!(count(&mut connect(&c, 1).await, "t").await, 0);
    assert_eq!(lag(&c, 0), 0);
}

#[tokio::test]
async fn resumed_replica_catches_up() {
    let (c, mut conn) = with_table(opts()).await;
    c.pause_replication();
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.resume_replication();
    c.sync().await.unwrap();
    assert_eq!(c.pos(1), c.pos(0));
    assert_eq!(count(&mut connect(&c, 1).await, "t").await, 1);
    assert_eq!(lag(&c, 1), 0);
}

#[tokio::test]
async fn sync_times_out_while_replication_is_paused() {
    let (c, mut conn) = with_table(opts()).await;
    c.pause_replication();
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
    match c.sync_within(Duration::from_millis(100)).await {
        Err(Error::SyncTimeout { behind, .. }) => assert!(behind.contains("paused"), "{behind}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn replication_delay_holds_each_transaction_back() {
    let (c, mut conn) = with_table(opts()).await;
    c.set_replication_delay(Duration::from_millis(150));
    let mut replica = connect(&c, 1).await;
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
    let committed = Instant::now();
    wait_until("primary -pos", Duration::from_secs(2), || {
        c.pos(0) != c.pos(1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(75)).await;
    assert_eq!(
        count(&mut replica, "t").await,
        0,
        "arrived before the delay"
    );
    c.sync().await.unwrap();
    assert!(committed.elapsed() >= Duration::from_millis(150));
    assert_eq!(count(&mut replica, "t").await, 1);
}

#[tokio::test]
async fn replica_has_never_synced_lag_until_the_primary_database_exists() {
    let c = super::cluster(opts()).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    // No database on the primary: nothing to replicate, but the replica is in contact.
    assert!(matches!(lag(&c, 1), 0 | LAG_NEVER_SYNCED_MS));
    assert!(c.db_path(1).exists(), "replica database created at start");
}

#[tokio::test]
async fn without_fuse_a_write_made_directly_to_a_replica_is_detected_and_overwritten() {
    let (c, _conn) = with_table(opts().replica_writes(ReplicaWrites::Detected)).await;
    let mut replica = connect(&c, 1).await;
    assert_eq!(c.replica_writes_detected(), 0);
    exec(&mut replica, "INSERT INTO t (v) VALUES ('rogue')").await;
    wait_until("detection", Duration::from_secs(2), || {
        c.replica_writes_detected() == 1
    })
    .await;
    c.sync().await.unwrap();
    assert_eq!(
        count(&mut replica, "t").await,
        0,
        "the next sync overwrites it"
    );
    assert!(c.replica_write_reports()[0].contains("n2"));
}

#[tokio::test]
async fn reading_a_replica_is_not_reported_as_a_write() {
    let (c, mut conn) = with_table(opts().journal_mode(JournalMode::Wal)).await;
    let mut replica = connect(&c, 1).await;
    for _ in 0..5 {
        exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
        c.sync().await.unwrap();
        count(&mut replica, "t").await;
    }
    drop(replica);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(c.replica_writes_detected(), 0);
}

#[tokio::test]
async fn app_connections_setting_wal_open_a_wal_replica_during_replication() {
    let (c, mut conn) = with_table(opts().journal_mode(JournalMode::Wal)).await;
    use sea_orm::sqlx::{
        Connection,
        sqlite::{SqliteConnectOptions, SqliteConnection},
    };
    let wal = SqliteConnectOptions::new()
        .filename(c.db_path(1))
        .journal_mode(JournalMode::Wal.to_sqlx());
    for _ in 0..20 {
        exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
        let mut replica = SqliteConnection::connect_with(&wal).await.expect("open");
        count(&mut replica, "t").await;
    }
    assert_eq!(c.replica_writes_detected(), 0);
}
