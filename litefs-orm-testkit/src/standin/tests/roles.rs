//! `.primary`, `switch_primary` and `lose_primary`.

use std::time::Duration;

use super::{connect, count, exec, lag, primary_file, with_table};
use crate::{ClusterOptions, Error};

fn opts() -> ClusterOptions {
    ClusterOptions::default().nodes(3).http_api(false)
}

#[tokio::test]
async fn primary_file_names_the_primary_on_replicas_and_is_absent_on_the_primary() {
    let (c, _conn) = with_table(opts()).await;
    assert_eq!(c.primary(), Some(0));
    assert_eq!(primary_file(&c, 0), None);
    assert_eq!(
        std::fs::read_to_string(c.paths(1).primary()).unwrap(),
        "n1\n"
    );
    assert_eq!(primary_file(&c, 2).as_deref(), Some("n1"));
    assert_eq!(lag(&c, 0), 0);
}

#[tokio::test]
async fn switch_primary_moves_the_primary_file() {
    let (c, _conn) = with_table(opts()).await;
    c.switch_primary(1).await;
    assert_eq!(c.primary(), Some(1));
    assert_eq!(primary_file(&c, 1), None);
    assert_eq!(primary_file(&c, 0).as_deref(), Some("n2"));
    assert_eq!(primary_file(&c, 2).as_deref(), Some("n2"));
    assert_eq!(lag(&c, 1), 0);
}

#[tokio::test]
async fn new_primary_continues_from_its_position_and_replicates_to_the_old_one() {
    let (c, mut old) = with_table(opts()).await;
    exec(&mut old, "INSERT INTO t (v) VALUES ('before')").await;
    c.sync().await.unwrap();
    let start = c.pos(1);
    c.switch_primary(1).await;
    let mut new = connect(&c, 1).await;
    exec(&mut new, "INSERT INTO t (v) VALUES ('after')").await;
    c.sync().await.unwrap();
    assert!(c.pos(1).txid > start.txid);
    assert_eq!(c.pos(0), c.pos(1));
    assert_eq!(count(&mut old, "t").await, 2);
    assert_eq!(count(&mut connect(&c, 2).await, "t").await, 2);
}

#[tokio::test]
async fn lose_primary_removes_the_primary_file_everywhere() {
    let (c, _conn) = with_table(opts()).await;
    c.lose_primary().await;
    assert_eq!(c.primary(), None);
    for i in 0..3 {
        assert_eq!(primary_file(&c, i), None, "node {i}");
    }
    assert!(matches!(c.sync().await, Err(Error::NoPrimary)));
}

#[tokio::test]
async fn after_lose_primary_every_lag_grows_and_none_reads_zero() {
    let (c, _conn) = with_table(opts()).await;
    c.lose_primary().await;
    assert!(lag(&c, 0) >= 1, "old primary");
    tokio::time::sleep(Duration::from_millis(30)).await;
    for i in 0..3 {
        assert!(lag(&c, i) >= 20, "node {i}: {}", lag(&c, i));
    }
}

#[tokio::test]
async fn switch_primary_after_lose_primary_restores_a_primary() {
    let (c, _conn) = with_table(opts()).await;
    c.lose_primary().await;
    c.switch_primary(2).await;
    assert_eq!(c.primary(), Some(2));
    assert_eq!(primary_file(&c, 0).as_deref(), Some("n3"));
    let mut conn = connect(&c, 2).await;
    exec(&mut conn, "INSERT INTO t (v) VALUES ('x')").await;
    c.sync().await.unwrap();
    assert_eq!(count(&mut connect(&c, 0).await, "t").await, 1);
    assert_eq!(lag(&c, 0), 0);
}
