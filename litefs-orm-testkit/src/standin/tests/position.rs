//! `-pos` on the primary: format, advance after commits, and the write-lock rule.

use std::time::Duration;

use super::{cluster, connect, exec, wait_until, with_table};
use crate::{ClusterOptions, JournalMode};
use litefs_orm::litefs::POS_LEN;

fn opts() -> ClusterOptions {
    ClusterOptions::default().nodes(2).http_api(false)
}

#[tokio::test]
async fn pos_file_is_34_bytes_and_advances_after_a_commit_on_the_primary() {
    let (c, mut conn) = with_table(opts()).await;
    let raw = std::fs::read(c.paths(0).pos()).unwrap();
    assert_eq!(raw.len(), POS_LEN);
    let before = c.pos(0);
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
    wait_until("-pos to advance", Duration::from_secs(2), || {
        c.pos(0) != before
    })
    .await;
    let after = c.pos(0);
    assert_eq!(after.txid, before.txid + 1);
    assert_ne!(after.checksum, before.checksum);
    assert_eq!(std::fs::read(c.paths(0).pos()).unwrap().len(), POS_LEN);
}

#[tokio::test]
async fn pos_advances_in_wal_mode_too() {
    let opts = opts().journal_mode(JournalMode::Wal);
    let (c, mut conn) = with_table(opts).await;
    let before = c.pos(0);
    exec(&mut conn, "INSERT INTO t (v) VALUES ('a')").await;
    wait_until("-pos to advance", Duration::from_secs(2), || {
        c.pos(0) != before
    })
    .await;
}

#[tokio::test]
async fn pos_is_unchanged_while_a_connection_holds_the_write_lock_and_covers_its_commit() {
    let (c, mut conn) = with_table(opts()).await;
    let mut other = connect(&c, 0).await;
    // A commit the watcher may not have bumped for yet, then a transaction holding the lock.
    exec(&mut other, "INSERT INTO t (v) VALUES ('other')").await;
    exec(&mut conn, "BEGIN IMMEDIATE").await;
    exec(&mut conn, "INSERT INTO t (v) VALUES ('mine')").await;
    let seen_in_tx = c.pos(0);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            c.pos(0),
            seen_in_tx,
            "-pos moved while the write lock was held"
        );
    }
    exec(&mut conn, "COMMIT").await;
    wait_until("-pos to cover the commit", Duration::from_secs(2), || {
        c.pos(0) != seen_in_tx
    })
    .await;
    assert!(c.pos(0).txid > seen_in_tx.txid);
}

#[tokio::test]
async fn pos_advances_when_the_app_creates_the_primary_database() {
    let c = cluster(opts()).await;
    assert!(!c.db_path(0).exists());
    assert_eq!(c.pos(0).txid, 0);
    let mut conn = connect(&c, 0).await;
    exec(&mut conn, "CREATE TABLE t (x)").await;
    wait_until("-pos to advance", Duration::from_secs(2), || {
        c.pos(0).txid > 0
    })
    .await;
}
