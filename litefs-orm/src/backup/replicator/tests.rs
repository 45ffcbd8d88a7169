//! Tests of `replicator`.

use super::child::classify;
use super::*;

#[test]
fn an_error_line_is_a_failure_with_litestream_s_words() {
    let line = r#"time=2026-11-29T19:40:34.484Z level=ERROR msg="monitor error" system=store db=app.db replica=file error="write ltx file: mkdir /r: not a directory""#;
    match classify(line) {
        Some(LogEvent::Error(text)) => {
            assert!(text.starts_with(r#"msg="monitor error""#), "{text}");
            assert!(text.contains("not a directory"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_shutdown_sync_is_recognised() {
    let line = r#"time=x level=WARN msg="shutdown sync failed, retrying (press Ctrl+C again to skip)" error="calc pos""#;
    assert!(matches!(classify(line), Some(LogEvent::SyncFailed(_))));
}

#[test]
fn info_lines_are_not_failures() {
    assert!(classify(r#"time=x level=INFO msg="replicating to" type=file"#).is_none());
}

#[test]
fn metrics_say_unhealthy_after_a_failure() {
    let status = BackupStatus {
        wanted: true,
        consecutive_failures: 1,
        failures_total: 1,
        last_error: Some("boom".into()),
        ..BackupStatus::default()
    };
    assert!(!status.healthy());
    let text = status.metrics();
    assert!(text.contains("litefs_orm_backup_healthy 0\n"), "{text}");
    assert!(
        text.contains("litefs_orm_backup_failures_total 1\n"),
        "{text}"
    );
    assert!(status.to_string().contains("last: boom"), "{status}");
}
