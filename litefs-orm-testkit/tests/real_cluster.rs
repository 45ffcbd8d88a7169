//! The real-LiteFS runner: start, replicate, restart, kill, change primary.

use std::time::Duration;

use litefs_orm_testkit::real::{MountState, RealCluster, RealOptions, mount_state};

async fn sql(path: &std::path::Path, sql: &'static str) {
    use sea_orm::sqlx::{Connection, sqlite::SqliteConnection};
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut c = SqliteConnection::connect(&url).await.unwrap();
    sea_orm::sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_cluster_replicates_across_restarts_kills_and_a_primary_change() {
    let mut c = RealCluster::start(RealOptions::default())
        .await
        .expect("start");
    assert_eq!(c.nodes(), 3);
    assert_eq!(c.pos(0).unwrap(), (0, 0));
    let info = c.info(1).await.unwrap();
    assert_eq!(info["primary"]["hostname"], "n1");
    sql(
        &c.db_path(0),
        "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    )
    .await;
    c.sync(Duration::from_secs(5)).await.unwrap();
    let p = c.pos(0).unwrap();
    assert!(p.0 >= 2, "{p:?}");
    assert_eq!(c.pos(2).unwrap(), p);

    c.restart_node(1).await.unwrap();
    sql(&c.db_path(0), "INSERT INTO t VALUES (2);").await;
    c.sync(Duration::from_secs(5)).await.unwrap();

    c.kill_node(2).await.unwrap();
    assert_eq!(mount_state(c.mount(2)), MountState::NotMounted);
    c.start_node(2).await.unwrap();
    c.sync(Duration::from_secs(5)).await.unwrap();

    let before = c.pos(0).unwrap();
    c.change_primary(1).await.unwrap();
    assert_eq!(c.primary(), 1);
    assert_eq!(c.pos(1).unwrap(), before);
    sql(&c.db_path(1), "INSERT INTO t VALUES (3);").await;
    c.sync(Duration::from_secs(5)).await.unwrap();
    assert_eq!(c.pos(0).unwrap().0, before.0 + 1);
    assert!(c.log(0).contains("LiteFS mounted to"));
    let mounts: Vec<_> = (0..3).map(|i| c.mount(i).to_path_buf()).collect();
    drop(c);
    for m in mounts {
        assert_eq!(mount_state(&m), MountState::NotMounted);
    }
}

#[tokio::test]
async fn a_stale_mount_does_not_break_a_start() {
    let mut c = RealCluster::start(RealOptions::default().with_nodes(2))
        .await
        .unwrap();
    // Kill LiteFS behind the harness's back, as a crashed run would: stale mounts remain.
    for i in 0..2 {
        let pid = nix::unistd::Pid::from_raw(c.pid(i).unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mount_state(c.mount(0)), MountState::Stale);
    c.start_node(0).await.unwrap();
    c.start_node(1).await.unwrap();
    assert_eq!(mount_state(c.mount(0)), MountState::Live);
    assert_eq!(c.info(1).await.unwrap()["primary"]["hostname"], "n1");
}

#[test]
fn the_litefs_binary_and_fuse_are_found() {
    let bin = litefs_orm_testkit::real::litefs_binary().unwrap();
    assert!(bin.ends_with("litefs"));
    litefs_orm_testkit::real::check_fuse().unwrap();
}

#[tokio::test]
async fn a_replica_that_never_reached_its_primary_still_stops() {
    let mut c = RealCluster::start(RealOptions::default().with_nodes(2))
        .await
        .unwrap();
    c.stop_node(0).await.unwrap();
    c.restart_node(1).await.unwrap();
    assert_eq!(c.info(1).await.unwrap()["primary"]["hostname"], "");
    let t = std::time::Instant::now();
    let status = c.stop_node(1).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "{status} after {:?}",
        t.elapsed()
    );
    c.start_node(0).await.unwrap();
    c.start_node(1).await.unwrap();
    sql(&c.db_path(0), "CREATE TABLE t(x);").await;
    c.sync(Duration::from_secs(5)).await.unwrap();
}
