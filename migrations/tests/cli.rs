//! The migrations binary as a process: exit codes and output, standalone and on the stand-in.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use litefs_orm_testkit::{Cluster, ClusterOptions};
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::{self, Connection, SqliteConnection};

const PAGE_VIEW: &str = "m20261123_000001_create_page_view";
const POST_AND_COMMENT: &str = "m20261123_000002_create_post_and_comment";
const ALL_TABLES: [&str; 4] = ["comment", "page_view", "post", "seaql_migrations"];

/// The binary in `dir`, with none of the library's variables inherited from the test run.
fn migrations(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_migrations"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LITEFS_ORM_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG").current_dir(dir).args(args);
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    migrations(dir, args)
        .output()
        .expect("run the migrations binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The arguments that point the CLI at node `i` of `cluster`.
fn node_args(cluster: &Cluster, i: usize) -> Vec<String> {
    let addr = cluster.http_addr(i).expect("stand-in HTTP API");
    vec![
        "--mount".into(),
        cluster.mount(i).display().to_string(),
        "--litefs-http".into(),
        format!("http://{addr}"),
    ]
}

fn on_node(cluster: &Cluster, i: usize, args: &[&str]) -> Command {
    let mut all = node_args(cluster, i);
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    migrations(cluster.root(), &all)
}

async fn tables(db: &Path) -> Vec<String> {
    let options = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

async fn cluster() -> Cluster {
    Cluster::start(ClusterOptions::default().nodes(2))
        .await
        .expect("start the LiteFS stand-in")
}

#[tokio::test]
async fn up_in_an_empty_directory_creates_app_db_and_applies_every_migration() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("up: applied 2 migrations on app.db (standalone)"),
        "{text}"
    );
    assert!(
        text.contains(PAGE_VIEW) && text.contains(POST_AND_COMMENT),
        "{text}"
    );
    assert_eq!(tables(&dir.path().join("app.db")).await, ALL_TABLES);
}

#[test]
fn up_a_second_time_has_nothing_to_apply() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["up"]).status.success());
    let out = run(dir.path(), &["up"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("nothing to apply"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn status_lists_applied_and_pending_migrations_and_the_role() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(dir.path(), &["--database", "dev.db", "up", "-n", "1"])
            .status
            .success()
    );
    let out = run(dir.path(), &["status", "--database", "dev.db"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("node: standalone"), "{text}");
    assert!(text.contains(&format!("applied  {PAGE_VIEW}")), "{text}");
    assert!(
        text.contains(&format!("pending  {POST_AND_COMMENT}")),
        "{text}"
    );
    assert!(text.contains("1 applied, 1 pending"), "{text}");
}

#[tokio::test]
async fn down_rolls_back_the_last_migration_standalone() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["up"]).status.success());
    let out = run(dir.path(), &["down"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("rolled back  {POST_AND_COMMENT}")));
    assert_eq!(
        tables(&dir.path().join("app.db")).await,
        ["page_view", "seaql_migrations"]
    );
}

#[tokio::test]
async fn up_on_a_replica_exits_0_names_the_primary_and_leaves_its_database_untouched() {
    let cluster = cluster().await;
    let before = cluster.pos(1);
    let out = on_node(&cluster, 1, &["up"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("skipped"), "{text}");
    assert!(
        text.contains("migrations run on the primary (n1)"),
        "{text}"
    );
    assert!(tables(&cluster.db_path(1)).await.is_empty());
    assert_eq!(cluster.pos(1), before);
    assert_eq!(cluster.replica_writes_detected(), 0);
}

#[tokio::test]
async fn up_on_the_primary_applies_and_the_replica_receives_the_tables() {
    let cluster = cluster().await;
    // The role from `.primary` and `.lag` alone, without LiteFS's HTTP API.
    let mount = cluster.mount(0).display().to_string();
    let out = run(cluster.root(), &["--mount", &mount, "up"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("applied 2 migrations"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("(primary)"), "{}", stdout(&out));
    cluster.sync().await.unwrap();
    assert_eq!(tables(&cluster.db_path(1)).await, ALL_TABLES);
}

#[tokio::test]
async fn up_wait_on_a_replica_exits_0_once_the_schema_arrives() {
    let cluster = cluster().await;
    let waiting = on_node(&cluster, 1, &["up", "--wait", "--wait-timeout", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let primary = on_node(&cluster, 0, &["up"]).output().unwrap();
    assert!(primary.status.success(), "{}", stderr(&primary));
    cluster.sync().await.unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting up to 20.0s"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("has all 2 migrations applied by the primary"),
        "{}",
        stdout(&out)
    );
    assert_eq!(cluster.replica_writes_detected(), 0);
}

#[tokio::test]
async fn up_wait_on_a_replica_exits_1_past_its_deadline() {
    let cluster = cluster().await;
    let out = on_node(&cluster, 1, &["up", "--wait-timeout", "300ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("error: `up` on"), "{text}");
    assert!(text.contains("still lacks 2 migration(s)"), "{text}");
    assert!(tables(&cluster.db_path(1)).await.is_empty());
}

#[tokio::test]
async fn down_on_a_replica_is_refused_with_exit_1() {
    let cluster = cluster().await;
    assert!(
        on_node(&cluster, 0, &["up"])
            .output()
            .unwrap()
            .status
            .success()
    );
    cluster.sync().await.unwrap();
    let out = on_node(&cluster, 1, &["down"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("not the LiteFS primary (the primary is n1)"),
        "{text}"
    );
    assert!(text.contains("`down` changes the schema"), "{text}");
    assert_eq!(tables(&cluster.db_path(1)).await, ALL_TABLES);
    assert_eq!(cluster.replica_writes_detected(), 0);
}

#[tokio::test]
async fn role_on_a_replica_names_the_primary_with_txid_and_lag() {
    let cluster = cluster().await;
    assert!(
        on_node(&cluster, 0, &["up"])
            .output()
            .unwrap()
            .status
            .success()
    );
    cluster.sync().await.unwrap();
    let out = on_node(&cluster, 1, &["role"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("role: replica of n1 (read from LiteFS's HTTP API"),
        "{text}"
    );
    assert!(
        text.contains(&format!("txid: {:016x}", cluster.pos(1).txid)),
        "{text}"
    );
    assert!(text.contains("lag: "), "{text}");
}

#[test]
fn an_unknown_flag_exits_2_with_usage() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["up", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unexpected argument '--bogus'"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("Usage:"), "{}", stderr(&out));
    assert!(!dir.path().join("app.db").exists());
}

#[test]
fn a_bad_duration_exits_2_naming_the_expected_form() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["up", "--wait-timeout", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("500ms, 30s or 2m"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_database_in_a_missing_directory_exits_1_with_an_error_line_and_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--database", "missing/app.db", "up"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "error: cannot open missing/app.db");
    assert!(
        lines[1].starts_with("cause: ") && lines[1].contains("does not exist"),
        "{text}"
    );
}

#[test]
fn a_file_that_is_not_sqlite_exits_1_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.db"), vec![b'x'; 4096]).unwrap();
    let out = run(dir.path(), &["up"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.starts_with("error: `up` on app.db failed\ncause: "),
        "{text}"
    );
    assert!(text.contains("not a database"), "{text}");
}

#[test]
fn a_missing_mount_exits_1_asking_whether_litefs_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--mount", "no-such-mount", "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is LiteFS running"),
        "{}",
        stderr(&out)
    );
}
