//! What the whole-database copy carries to a replica.

use sea_orm::sqlx;

use super::{connect, count, exec, with_table};
use crate::ClusterOptions;

fn opts() -> ClusterOptions {
    ClusterOptions::default().nodes(2).http_api(false)
}

#[tokio::test]
async fn copy_carries_schema_rowids_sequence_and_user_version() {
    let (c, mut conn) = with_table(opts()).await;
    exec(
        &mut conn,
        "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE);
         CREATE TABLE r (k TEXT, v TEXT);
         CREATE TABLE w (k TEXT PRIMARY KEY, n INT, d INT GENERATED ALWAYS AS (n * 2)) WITHOUT ROWID;
         CREATE INDEX r_k ON r (k);
         CREATE VIEW names AS SELECT name FROM a;
         CREATE TABLE log (msg TEXT);
         CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN INSERT INTO log VALUES (new.name); END;
         INSERT INTO a (name) VALUES ('x'), ('y');
         DELETE FROM a WHERE name = 'y';
         INSERT INTO r (rowid, k, v) VALUES (42, 'k', 'v');
         INSERT INTO w (k, n) VALUES ('a', 21);
         PRAGMA user_version = 7;",
    )
    .await;
    c.sync().await.unwrap();
    let mut replica = connect(&c, 1).await;
    assert_eq!(count(&mut replica, "names").await, 1);
    assert_eq!(
        count(&mut replica, "log").await,
        2,
        "the trigger did not fire again"
    );
    let rowid: i64 = sqlx::query_scalar("SELECT rowid FROM r")
        .fetch_one(&mut replica)
        .await
        .unwrap();
    assert_eq!(rowid, 42);
    let d: i64 = sqlx::query_scalar("SELECT d FROM w")
        .fetch_one(&mut replica)
        .await
        .unwrap();
    assert_eq!(d, 42);
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'a'")
        .fetch_one(&mut replica)
        .await
        .unwrap();
    assert_eq!(seq, 2);
    let uv: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut replica)
        .await
        .unwrap();
    assert_eq!(uv, 7);
    let idx: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'r_k'")
        .fetch_one(&mut replica)
        .await
        .unwrap();
    assert_eq!(idx, 1);
}

#[tokio::test]
async fn dropped_tables_disappear_from_replicas() {
    let (c, mut conn) = with_table(opts()).await;
    exec(&mut conn, "CREATE TABLE gone (x); DROP TABLE t").await;
    c.sync().await.unwrap();
    let mut replica = connect(&c, 1).await;
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master ORDER BY name")
        .fetch_all(&mut replica)
        .await
        .unwrap();
    assert_eq!(names, ["gone"]);
}

#[tokio::test]
async fn a_sequence_outliving_its_tables_reaches_a_replica_that_never_had_one() {
    let (c, mut conn) = with_table(opts()).await;
    // The replica last saw a schema without `sqlite_sequence`; the primary now has one that
    // no AUTOINCREMENT table needs any more (SQLite never drops it).
    exec(
        &mut conn,
        "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT);
         INSERT INTO a DEFAULT VALUES;
         DROP TABLE a;
         INSERT INTO t (v) VALUES ('after');",
    )
    .await;
    c.sync().await.unwrap();
    let mut replica = connect(&c, 1).await;
    assert_eq!(count(&mut replica, "t").await, 1);
    assert_eq!(count(&mut replica, "sqlite_sequence").await, 0);
}
