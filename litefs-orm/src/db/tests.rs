//! Tests of the handle.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::recovery::MountId;
use super::*;
use crate::config::JournalMode;
use crate::replica::client::HttpTransport;

async fn rows(conn: &DatabaseConnection) -> Vec<i64> {
    conn.query_all_raw(Statement::from_string(
        DbBackend::Sqlite,
        "SELECT id FROM t ORDER BY id",
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get_by_index(0).unwrap())
    .collect()
}

/// A primary's handle on `<mount>/app.db`, with a table `t` holding row 1.
async fn primary_on(mount: &Path) -> ReplicatedDb {
    let (role, tx) = RoleWatch::manual(Role::Primary);
    std::mem::forget(tx);
    let db = ReplicatedDb::open_with(
        Config::litefs(mount, "app.db"),
        Registry::new(),
        Arc::new(HttpTransport::new("a test secret of some length").unwrap()),
        role,
        None,
    )
    .await
    .unwrap();
    db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    db
}

/// Puts a new directory in `mount`'s place, holding a database whose `t` has row 2, as
/// LiteFS mounting again does; returns where the old one went.
async fn remount(mount: &Path) -> std::path::PathBuf {
    let old = mount.with_extension("old");
    std::fs::rename(mount, &old).unwrap();
    std::fs::create_dir(mount).unwrap();
    let fresh = open(&mount.join("app.db"), 1, false, true, None)
        .await
        .unwrap();
    fresh
        .execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    old
}

#[test]
fn a_directory_put_in_the_mount_s_place_has_another_identity() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("litefs");
    std::fs::create_dir(&mount).unwrap();
    let before = MountId::of(&mount).unwrap();
    assert_eq!(MountId::of(&mount), Some(before));
    std::fs::rename(&mount, dir.path().join("old")).unwrap();
    std::fs::create_dir(&mount).unwrap();
    assert_ne!(MountId::of(&mount), Some(before));
    assert_eq!(MountId::of(&dir.path().join("absent")), None);
}

#[tokio::test]
async fn an_unchanged_mount_does_not_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = primary_on(dir.path()).await;
    assert!(!db.check_mount().await);
    assert_eq!(db.inner.reopened.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_changed_mount_reopens_reads_and_writes_on_the_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("litefs");
    std::fs::create_dir(&mount).unwrap();
    let db = primary_on(&mount).await;
    let old = remount(&mount).await;
    // The background check may get there first.
    db.check_mount().await;
    assert_eq!(db.inner.reopened.load(Ordering::Relaxed), 1);
    assert_eq!(rows(&db.reader()).await, vec![2]);
    db.execute_unprepared("INSERT INTO t VALUES (3)")
        .await
        .unwrap();
    assert_eq!(rows(&db.reader()).await, vec![2, 3]);
    let before = open(&old.join("app.db"), 1, true, false, None)
        .await
        .unwrap();
    assert_eq!(rows(&before).await, vec![1]);
}

#[tokio::test]
async fn concurrent_failures_reopen_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = primary_on(dir.path()).await;
    let tries: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.reopen().await })
        })
        .collect();
    let mut reopened = 0;
    for t in tries {
        reopened += usize::from(t.await.unwrap());
    }
    assert_eq!(reopened, 1);
    assert_eq!(db.inner.reopened.load(Ordering::Relaxed), 1);
    assert_eq!(rows(&db.reader()).await, vec![1]);
}

#[tokio::test]
async fn an_io_failure_reopens_the_connections() {
    let dir = tempfile::tempdir().unwrap();
    let db = primary_on(dir.path()).await;
    let e = DbErr::Query(sea_orm::RuntimeErr::SqlxError(Arc::new(
        sea_orm::sqlx::Error::Io(std::io::Error::from_raw_os_error(107)),
    )));
    assert!(db.map_err(e).await.to_string().contains("107"));
    for _ in 0..100 {
        if db.inner.reopened.load(Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(db.inner.reopened.load(Ordering::Relaxed), 1);
    assert!(!db.inner.io_failing.load(Ordering::Relaxed));
}

async fn journal_mode(conn: &DatabaseConnection) -> String {
    conn.query_one_raw(Statement::from_string(
        DbBackend::Sqlite,
        "PRAGMA journal_mode",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index(0)
    .unwrap()
}

#[tokio::test]
async fn a_primary_opens_its_database_in_wal_mode_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = primary_on(dir.path()).await;
    assert_eq!(journal_mode(&db.writer()).await, "wal");
    assert_eq!(journal_mode(&db.reader()).await, "wal");
}

#[tokio::test]
async fn a_standalone_node_sets_the_configured_journal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        Config::standalone(dir.path().join("app.db")).with_journal_mode(JournalMode::Truncate);
    let db = ReplicatedDb::connect(config, Registry::new())
        .await
        .unwrap();
    assert_eq!(journal_mode(&db.writer()).await, "truncate");
}

#[tokio::test]
async fn a_replica_keeps_the_journal_mode_the_primary_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let primary = open(&path, 1, false, true, Some(JournalMode::Delete))
        .await
        .unwrap();
    primary
        .execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let (role, tx) = RoleWatch::manual(Role::NoPrimary);
    std::mem::forget(tx);
    let replica = ReplicatedDb::open_with(
        Config::standalone(&path),
        Registry::new(),
        Arc::new(HttpTransport::new("a test secret of some length").unwrap()),
        role,
        None,
    )
    .await
    .unwrap();
    assert_eq!(journal_mode(&replica.writer()).await, "delete");
}
