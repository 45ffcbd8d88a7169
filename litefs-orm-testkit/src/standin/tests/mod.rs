//! Tests of the stand-in itself, on real SQLite files in temporary directories.

mod copy;
mod dump;
mod http;
mod latency;
mod position;
mod replica_writes;
mod replication;
mod roles;

use std::time::{Duration, Instant};

use sea_orm::sqlx::{self, Connection, sqlite::SqliteConnection};

use crate::{Cluster, ClusterOptions};
use litefs_orm::litefs::{read_lag, read_primary};

/// A cluster without the HTTP API unless asked for.
async fn cluster(opts: ClusterOptions) -> Cluster {
    Cluster::start(opts).await.expect("cluster starts")
}

async fn connect(c: &Cluster, i: usize) -> SqliteConnection {
    SqliteConnection::connect_with(&c.connect_options(i))
        .await
        .expect("connect")
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) {
    sqlx::raw_sql(sql).execute(conn).await.expect(sql);
}

async fn count(conn: &mut SqliteConnection, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM \"{table}\"");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .expect("count")
}

/// A primary with table `t` created and replicated.
async fn with_table(opts: ClusterOptions) -> (Cluster, SqliteConnection) {
    let c = cluster(opts).await;
    let mut conn = connect(&c, 0).await;
    exec(&mut conn, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").await;
    c.sync().await.expect("sync");
    (c, conn)
}

/// Polls `f` every millisecond until it holds, failing after `timeout`.
async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn lag(c: &Cluster, i: usize) -> i64 {
    read_lag(&c.paths(i).lag())
        .expect("read .lag")
        .expect(".lag exists")
}

fn primary_file(c: &Cluster, i: usize) -> Option<String> {
    read_primary(&c.paths(i).primary()).expect("read .primary")
}
