//! The app's writes on a replica fail as on LiteFS, with SQLite's own errors; the primary's
//! writes and the stand-in's replication do not.

use sea_orm::sqlx::{self, sqlite::SqliteConnection};

use super::{connect, count, exec, with_table};
use crate::{ClusterOptions, JournalMode};

fn opts() -> ClusterOptions {
    ClusterOptions::default().nodes(2).http_api(false)
}

/// The primary result code of the error `sql` fails with on `conn`.
async fn failure_code(conn: &mut SqliteConnection, sql: &'static str) -> i64 {
    let err = sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .expect_err("the write must fail");
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|c| c.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no SQLite code in {err}"));
    code & 0xff
}

const ROGUE: &str = "INSERT INTO t (v) VALUES ('rogue')";

#[tokio::test]
async fn a_write_on_a_replica_fails_as_readonly_in_a_rollback_journal_mode() {
    let (c, _primary) = with_table(opts()).await;
    let mut replica = connect(&c, 1).await;
    assert_eq!(failure_code(&mut replica, ROGUE).await, 8);
    assert_eq!(count(&mut replica, "t").await, 0);
    assert_eq!(c.replica_writes_detected(), 0);
}

#[tokio::test]
async fn a_write_on_a_replica_fails_as_an_io_error_in_wal_mode() {
    let (c, _primary) = with_table(opts().journal_mode(JournalMode::Wal)).await;
    let mut replica = connect(&c, 1).await;
    assert_eq!(failure_code(&mut replica, ROGUE).await, 10);
    assert_eq!(count(&mut replica, "t").await, 0);
}

#[tokio::test]
async fn replication_still_reaches_a_replica_that_refused_a_write() {
    let (c, mut primary) = with_table(opts()).await;
    let mut replica = connect(&c, 1).await;
    failure_code(&mut replica, ROGUE).await;
    exec(&mut primary, "INSERT INTO t (v) VALUES ('a')").await;
    c.sync().await.unwrap();
    assert_eq!(count(&mut replica, "t").await, 1);
}

#[tokio::test]
async fn a_promoted_replica_writes_through_the_connection_it_already_had() {
    let (c, _primary) = with_table(opts()).await;
    let mut replica = connect(&c, 1).await;
    failure_code(&mut replica, ROGUE).await;
    c.switch_primary(1).await;
    exec(&mut replica, "INSERT INTO t (v) VALUES ('now primary')").await;
    assert_eq!(count(&mut replica, "t").await, 1);
}

#[tokio::test]
async fn the_old_primary_refuses_writes_once_another_node_is_primary() {
    let (c, mut old) = with_table(opts().journal_mode(JournalMode::Wal)).await;
    c.switch_primary(1).await;
    assert_eq!(failure_code(&mut old, ROGUE).await, 10);
}

#[tokio::test]
async fn no_node_takes_writes_while_no_primary_is_known() {
    let (c, mut old) = with_table(opts()).await;
    c.lose_primary().await;
    assert_eq!(failure_code(&mut old, ROGUE).await, 8);
    assert_eq!(failure_code(&mut connect(&c, 1).await, ROGUE).await, 8);
}
