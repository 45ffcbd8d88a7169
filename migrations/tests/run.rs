//! `migrations run -- <app>` without backups: migrations first, then the app; its signals
//! and exit code pass through.

mod support;

use support::{Running, Signal, migrations, run_command};

#[tokio::test]
async fn run_exits_with_the_app_s_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = Running::spawn(run_command(dir.path(), &[], &["sh", "-c", "exit 7"]))
        .finish()
        .await;
    assert_eq!(out.code(), Some(7), "{}", out.stderr);
    assert!(out.stderr.contains("ended: exit code 7"), "{}", out.stderr);
}

#[tokio::test]
async fn migrations_are_applied_before_the_app_starts() {
    let dir = tempfile::tempdir().unwrap();
    // The app is the migrations binary itself, reporting what it finds.
    let status = env!("CARGO_BIN_EXE_migrations");
    let out = Running::spawn(run_command(dir.path(), &[], &[status, "status"]))
        .finish()
        .await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("2 applied, 0 pending"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn sigterm_reaches_the_app_and_its_exit_code_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let app = "trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.1; done";
    let mut run = Running::spawn(run_command(dir.path(), &[], &["sh", "-c", app]));
    run.line("ready").await;
    let out = run.stop().await;
    assert_eq!(out.code(), Some(42), "{}", out.stderr);
    assert!(out.stdout.contains("got TERM"), "{}", out.stdout);
}

#[tokio::test]
async fn sigint_reaches_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let app = "trap 'echo got INT; exit 3' INT; echo ready; while :; do sleep 0.1; done";
    let mut run = Running::spawn(run_command(dir.path(), &[], &["sh", "-c", app]));
    run.line("ready").await;
    run.signal(Signal::SIGINT);
    let out = run.finish().await;
    assert_eq!(out.code(), Some(3), "{}", out.stderr);
    assert!(out.stdout.contains("got INT"), "{}", out.stdout);
}

#[tokio::test]
async fn an_app_killed_by_a_signal_exits_with_128_plus_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let out = Running::spawn(run_command(dir.path(), &[], &["sh", "-c", "kill -9 $$"]))
        .finish()
        .await;
    assert_eq!(out.code(), Some(128 + 9), "{}", out.stderr);
    assert!(out.stderr.contains("killed by SIGKILL"), "{}", out.stderr);
}

#[tokio::test]
async fn an_app_that_cannot_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Running::spawn(run_command(dir.path(), &[], &["/nonexistent/app"]))
        .finish()
        .await;
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("error: cannot start the app"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("/nonexistent/app"), "{}", out.stderr);
}

#[tokio::test]
async fn run_without_an_app_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = migrations(dir.path()).arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
