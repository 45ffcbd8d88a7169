//! `run` with backups in a LiteFS cluster (the stand-in, and a fake LiteFS API for imports):
//! only the primary backs up, a promoted replica takes over, a demoted primary stops, and a
//! restore on a LiteFS primary goes through LiteFS's import API.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::routing::{get, post};
use litefs_orm_testkit::{Cluster, ClusterOptions, JournalMode};
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::{self, Connection, SqliteConnection};
use support::{
    PATIENCE, Running, ltx_files, migrations, require_litestream, run_command, run_with_flags,
};

const WAIT_FOR_TERM: &str = "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done";

/// Two stand-in nodes in WAL mode (Litestream's), node 0 primary with the schema applied.
async fn cluster() -> Cluster {
    let cluster = Cluster::start(
        ClusterOptions::default()
            .nodes(2)
            .journal_mode(JournalMode::Wal),
    )
    .await
    .expect("start the LiteFS stand-in");
    let out = on_node(&cluster, 0, &["up"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.sync().await.unwrap();
    cluster
}

fn node_flags(cluster: &Cluster, i: usize) -> Vec<String> {
    let addr = cluster.http_addr(i).expect("stand-in HTTP API");
    vec![
        "--mount".into(),
        cluster.mount(i).display().to_string(),
        "--litefs-http".into(),
        format!("http://{addr}"),
    ]
}

fn on_node(cluster: &Cluster, i: usize, args: &[&str]) -> std::process::Command {
    let mut cmd = migrations(cluster.root());
    cmd.args(node_flags(cluster, i)).args(args);
    cmd
}

/// `run -- sh -c <app>` on node `i`, backing up to `replica`.
fn run_on_node(cluster: &Cluster, i: usize, replica: &Path, state: &Path, app: &str) -> Running {
    let env = [
        (
            "LITEFS_ORM_BACKUP_URL",
            format!("file://{}", replica.display()),
        ),
        ("LITEFS_ORM_BACKUP_DIR", state.display().to_string()),
        ("LITEFS_ORM_BACKUP_SYNC_INTERVAL_MS", "100".into()),
    ];
    let flags = node_flags(cluster, i);
    let cmd = run_with_flags(cluster.root(), &flags, &env, &["sh", "-c", app]);
    Running::spawn(cmd)
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < PATIENCE,
            "not within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_never_starts_litestream() {
    require_litestream();
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let replica = dir.path().join("replica");
    let run = run_on_node(&cluster, 1, &replica, &dir.path().join("state"), "sleep 2");
    let out = run.finish().await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("the primary backs up"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("initialized db"), "{}", out.stdout);
    assert!(ltx_files(&replica).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_becomes_primary_starts_backing_up() {
    require_litestream();
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let replica = dir.path().join("replica");
    let mut run = run_on_node(
        &cluster,
        1,
        &replica,
        &dir.path().join("state"),
        WAIT_FOR_TERM,
    );
    run.line("ready").await;
    assert!(ltx_files(&replica).is_empty());
    cluster.switch_primary(1).await;
    eventually("the new primary backs up", || {
        !ltx_files(&replica).is_empty()
    })
    .await;
    let out = run.stop().await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("became primary"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_demoted_primary_stops_litestream() {
    require_litestream();
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let replica = dir.path().join("replica");
    let mut run = run_on_node(
        &cluster,
        0,
        &replica,
        &dir.path().join("state"),
        WAIT_FOR_TERM,
    );
    run.line("ready").await;
    cluster.switch_primary(1).await;
    eventually("litestream stops on the old primary", || {
        run.stderr().contains("litestream stopped")
    })
    .await;
    let out = run.stop().await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("stopping litestream, the primary backs up"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("final sync of the backup done"),
        "{}",
        out.stderr
    );
}

/// A LiteFS HTTP API that says "primary" and imports databases into `mount`.
#[derive(Clone)]
struct FakeLiteFs {
    mount: PathBuf,
    imported: Arc<Mutex<Vec<String>>>,
}

async fn info() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "clusterID": "test", "isPrimary": true, "candidate": true, "primary": { "hostname": "" }
    }))
}

async fn import(
    State(fake): State<FakeLiteFs>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> &'static str {
    let query = query.unwrap_or_default();
    let name = query.strip_prefix("name=").unwrap_or_default().to_owned();
    std::fs::write(fake.mount.join(&name), &body).unwrap();
    fake.imported.lock().unwrap().push(name);
    "ok"
}

async fn migration_count(db: &Path) -> i64 {
    let options = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM seaql_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_litefs_primary_restores_through_the_import_api() {
    require_litestream();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("replica").display());
    // A backup of a migrated database, from a standalone node.
    std::fs::create_dir(dir.path().join("seed")).unwrap();
    let seed = [
        (
            "LITEFS_ORM_DATABASE",
            dir.path().join("seed/app.db").display().to_string(),
        ),
        ("LITEFS_ORM_BACKUP_URL", url.clone()),
        (
            "LITEFS_ORM_BACKUP_DIR",
            dir.path().join("seed-state").display().to_string(),
        ),
        ("LITEFS_ORM_BACKUP_NEW_DATABASE", "1".into()),
    ];
    let out = Running::spawn(run_command(dir.path(), &seed, &["true"]))
        .finish()
        .await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);

    let mount = dir.path().join("litefs");
    std::fs::create_dir(&mount).unwrap();
    let fake = FakeLiteFs {
        mount: mount.clone(),
        imported: Arc::default(),
    };
    let app = Router::new()
        .route("/info", get(info))
        .route("/import", post(import))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = [
        ("LITEFS_ORM_MOUNT", mount.display().to_string()),
        ("LITEFS_ORM_LITEFS_HTTP", api),
        ("LITEFS_ORM_BACKUP_URL", url),
        (
            "LITEFS_ORM_BACKUP_DIR",
            dir.path().join("state").display().to_string(),
        ),
    ];
    let out = Running::spawn(run_command(dir.path(), &env, &["true"]))
        .finish()
        .await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(*fake.imported.lock().unwrap(), ["app.db"]);
    assert!(out.stderr.contains("restored"), "{}", out.stderr);
    assert_eq!(migration_count(&mount.join("app.db")).await, 2);
}

async fn count_page(db: &Path, page: &str) {
    let options = SqliteConnectOptions::new().filename(db);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query("INSERT INTO page_view (page, count) VALUES (?, 1)")
        .bind(page)
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backup_continues_across_a_failover() {
    require_litestream();
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let replica = dir.path().join("replica");
    let mut n0 = run_on_node(&cluster, 0, &replica, &dir.path().join("s0"), WAIT_FOR_TERM);
    let mut n1 = run_on_node(&cluster, 1, &replica, &dir.path().join("s1"), WAIT_FOR_TERM);
    n0.line("ready").await;
    n1.line("ready").await;
    count_page(&cluster.db_path(0), "before").await;
    cluster.sync().await.unwrap();
    cluster.switch_primary(1).await;
    eventually("node 1 backs up", || n1.stdout().contains("initialized db")).await;
    count_page(&cluster.db_path(1), "after").await;
    let (o0, o1) = (n0.stop().await, n1.stop().await);
    assert_eq!(
        (o0.code(), o1.code()),
        (Some(0), Some(0)),
        "{}\n{}",
        o0.stderr,
        o1.stderr
    );

    let restored = dir.path().join("restored.db");
    let out = std::process::Command::new(support::litestream_bin())
        .arg("restore")
        .arg("-o")
        .arg(&restored)
        .arg(format!("file://{}", replica.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let options = SqliteConnectOptions::new()
        .filename(&restored)
        .read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    let pages: Vec<String> = sqlx::query_scalar("SELECT page FROM page_view ORDER BY page")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(pages, ["after", "before"]);
}
