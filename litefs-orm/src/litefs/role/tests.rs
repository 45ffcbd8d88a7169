//! Tests of `role`.

use futures_util::StreamExt;
use tokio::time::Instant;

use super::*;
use crate::litefs;

fn event(line: &[u8]) -> Event {
    serde_json::from_slice(line).unwrap()
}

#[test]
fn init_event_of_a_replica_names_the_primary() {
    let line = br#"{"type":"init","data":{"isPrimary":false,"hostname":"n1"}}"#;
    assert_eq!(
        role_from_event(event(line)),
        Some(Role::Replica {
            primary: "n1".into()
        })
    );
}

#[test]
fn primary_change_without_hostname_means_no_primary() {
    let line = br#"{"type":"primaryChange","data":{"isPrimary":false}}"#;
    assert_eq!(role_from_event(event(line)), Some(Role::NoPrimary));
}

#[test]
fn tx_events_do_not_change_the_role() {
    let line = br#"{"type":"tx","db":"app.db","data":{"txID":"0000000000000002"}}"#;
    assert_eq!(role_from_event(event(line)), None);
}

#[tokio::test]
async fn absent_primary_file_with_growing_lag_is_not_primary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".lag"), litefs::format_lag(1200)).unwrap();
    let files = FileSource::new(dir.path().into());
    assert_eq!(files.read().await, Role::NoPrimary);
}

#[tokio::test]
async fn absent_primary_file_with_zero_lag_is_primary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".lag"), litefs::format_lag(0)).unwrap();
    let files = FileSource::new(dir.path().into());
    assert_eq!(files.read().await, Role::Primary);
}

#[tokio::test]
async fn a_mount_without_litefs_files_is_not_primary() {
    let dir = tempfile::tempdir().unwrap();
    let files = FileSource::new(dir.path().into());
    assert_eq!(files.read().await, Role::NoPrimary);
}

#[tokio::test]
async fn primary_file_names_the_primary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".primary"), "n3\n").unwrap();
    let files = FileSource::new(dir.path().into());
    assert_eq!(
        files.read().await,
        Role::Replica {
            primary: "n3".into()
        }
    );
}

fn replica(host: &str) -> Role {
    Role::Replica {
        primary: host.into(),
    }
}

#[test]
fn a_flap_after_no_primary_publishes_nothing() {
    let mut d = Debounce::default();
    let now = Instant::now();
    assert_eq!(d.on_event(&Role::NoPrimary, replica("n1"), now), None);
    assert_eq!(
        d.on_event(&Role::NoPrimary, Role::NoPrimary, now),
        Some(Role::NoPrimary)
    );
    assert_eq!(d.due(), None);
    assert_eq!(d.take_due(now + DEBOUNCE * 2), None);
}

#[test]
fn a_replica_after_no_primary_is_held_until_it_has_lasted() {
    let mut d = Debounce::default();
    let now = Instant::now();
    assert_eq!(d.on_event(&Role::NoPrimary, replica("n1"), now), None);
    assert_eq!(d.due(), Some(now + DEBOUNCE));
    assert_eq!(d.take_due(now + DEBOUNCE / 2), None);
    assert_eq!(d.take_due(now + DEBOUNCE), Some(replica("n1")));
    assert_eq!(d.due(), None);
}

#[test]
fn a_repeated_replica_event_keeps_its_first_deadline() {
    let mut d = Debounce::default();
    let now = Instant::now();
    d.on_event(&Role::NoPrimary, replica("n1"), now);
    d.on_event(&Role::NoPrimary, replica("n1"), now + DEBOUNCE / 2);
    assert_eq!(d.due(), Some(now + DEBOUNCE));
}

#[test]
fn a_change_to_primary_is_published_at_once() {
    let mut d = Debounce::default();
    let now = Instant::now();
    d.on_event(&Role::NoPrimary, replica("n1"), now);
    assert_eq!(
        d.on_event(&Role::NoPrimary, Role::Primary, now),
        Some(Role::Primary)
    );
    assert_eq!(d.due(), None);
}

#[test]
fn a_change_to_no_primary_is_published_at_once() {
    let mut d = Debounce::default();
    assert_eq!(
        d.on_event(&replica("n1"), Role::NoPrimary, Instant::now()),
        Some(Role::NoPrimary)
    );
}

#[test]
fn a_replica_that_names_another_primary_is_published_at_once() {
    let mut d = Debounce::default();
    assert_eq!(
        d.on_event(&replica("n1"), replica("n2"), Instant::now()),
        Some(replica("n2"))
    );
}

#[test]
fn role_file_failures_are_reported_when_they_start_and_when_they_end() {
    let files = FileSource::new(PathBuf::from("/nonexistent"));
    assert_eq!(files.note(false), None);
    assert_eq!(files.note(true), Some(Health::Failing));
    assert_eq!(files.note(true), None);
    assert_eq!(files.note(true), None);
    assert_eq!(files.note(false), Some(Health::Recovered));
    assert_eq!(files.note(false), None);
}

#[tokio::test]
async fn unreadable_role_files_read_as_an_error_for_a_fresh_check() {
    let dir = tempfile::tempdir().unwrap();
    // `.lag` as a directory: reading it fails.
    std::fs::create_dir(dir.path().join(".lag")).unwrap();
    let files = FileSource::new(dir.path().into());
    assert!(files.try_read().await.is_err());
    assert_eq!(files.read().await, Role::NoPrimary);
}

/// A stand-in for LiteFS's HTTP API: `/info` answers `info`, `/events` streams the lines
/// sent on the returned channel.
async fn fake_litefs(
    info: Arc<std::sync::Mutex<String>>,
) -> (String, tokio::sync::mpsc::UnboundedSender<String>) {
    use axum::routing::get;
    let (lines, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let app = axum::Router::new()
        .route(
            "/info",
            get(move || {
                let info = info.clone();
                async move { info.lock().unwrap().clone() }
            }),
        )
        .route(
            "/events",
            get(move || {
                let rx = rx.clone();
                async move {
                    let rx = rx.lock().await.take().expect("one /events stream");
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        let line = rx.recv().await?;
                        Some((Ok::<_, std::io::Error>(format!("{line}\n")), rx))
                    });
                    axum::body::Body::from_stream(stream)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), lines)
}

const NO_PRIMARY_INFO: &str = r#"{"isPrimary":false,"candidate":true,"primary":{"hostname":""}}"#;
const FLAP_UP: &str = r#"{"type":"primaryChange","data":{"isPrimary":false,"hostname":"n1"}}"#;
const FLAP_DOWN: &str = r#"{"type":"primaryChange","data":{"isPrimary":false}}"#;

#[tokio::test]
async fn a_flapping_events_stream_keeps_the_role_at_no_primary() {
    let dir = tempfile::tempdir().unwrap();
    let info = Arc::new(std::sync::Mutex::new(NO_PRIMARY_INFO.to_owned()));
    let (url, lines) = fake_litefs(info).await;
    let watch = RoleWatch::litefs(dir.path().into(), Some(url)).await;
    assert_eq!(watch.current(), Role::NoPrimary);
    // Any change published while the flaps arrive, however brief, is seen.
    let rx = watch.rx.clone();
    lines.send(FLAP_DOWN.into()).unwrap();
    for _ in 0..5 {
        lines.send(FLAP_UP.into()).unwrap();
        lines.send(FLAP_DOWN.into()).unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    tokio::time::sleep(DEBOUNCE * 2).await;
    assert!(!rx.has_changed().unwrap(), "a flap was published");
    assert_eq!(watch.current(), Role::NoPrimary);
}

#[tokio::test]
async fn a_lasting_replica_event_is_published_once_info_confirms_it() {
    let dir = tempfile::tempdir().unwrap();
    let info = Arc::new(std::sync::Mutex::new(NO_PRIMARY_INFO.to_owned()));
    let (url, lines) = fake_litefs(info.clone()).await;
    let watch = RoleWatch::litefs(dir.path().into(), Some(url)).await;
    *info.lock().unwrap() =
        r#"{"isPrimary":false,"candidate":true,"primary":{"hostname":"n1"}}"#.into();
    let sent = Instant::now();
    lines.send(FLAP_UP.into()).unwrap();
    let seen = watch
        .changed_from(&Role::NoPrimary, Duration::from_secs(5))
        .await;
    assert_eq!(seen, replica("n1"));
    assert!(
        sent.elapsed() >= DEBOUNCE,
        "published after {:?}",
        sent.elapsed()
    );
}

#[tokio::test]
async fn a_held_replica_that_info_denies_is_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let info = Arc::new(std::sync::Mutex::new(NO_PRIMARY_INFO.to_owned()));
    let (url, lines) = fake_litefs(info).await;
    let watch = RoleWatch::litefs(dir.path().into(), Some(url)).await;
    lines.send(FLAP_UP.into()).unwrap();
    let seen = watch.changed_from(&Role::NoPrimary, DEBOUNCE * 4).await;
    assert_eq!(seen, Role::NoPrimary);
}

#[tokio::test]
async fn a_fresh_check_reads_info_now() {
    let dir = tempfile::tempdir().unwrap();
    let info = Arc::new(std::sync::Mutex::new(NO_PRIMARY_INFO.to_owned()));
    let (url, _lines) = fake_litefs(info.clone()).await;
    let watch = RoleWatch::litefs(dir.path().into(), Some(url)).await;
    *info.lock().unwrap() =
        r#"{"isPrimary":true,"candidate":true,"primary":{"hostname":""}}"#.into();
    assert_eq!(watch.check().await, Some(Role::Primary));
}

/// A stand-in for LiteFS's HTTP API whose first `/events` stream stays silent without
/// closing, as a connection that died half-open does; later streams send `init`. `/info`
/// always says "no primary". Returns the URL and the number of `/events` connections.
async fn litefs_with_a_silent_first_stream(
    init: &'static str,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let app = axum::Router::new()
        .route("/info", get(|| async { NO_PRIMARY_INFO }))
        .route(
            "/events",
            get(move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    let first: Vec<Result<String, std::io::Error>> = if n == 0 {
                        vec![]
                    } else {
                        vec![Ok(format!("{init}\n"))]
                    };
                    let stream =
                        futures_util::stream::iter(first).chain(futures_util::stream::pending());
                    axum::body::Body::from_stream(stream)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), connections)
}

#[tokio::test]
async fn a_silent_events_stream_is_reconnected_and_its_init_restates_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let init = r#"{"type":"init","data":{"isPrimary":true}}"#;
    let (url, connections) = litefs_with_a_silent_first_stream(init).await;
    let idle = Duration::from_millis(200);
    let watch = RoleWatch::following(dir.path().into(), Some(url), idle).await;
    assert_eq!(watch.current(), Role::NoPrimary);
    // Only the second stream's `init` says "primary": `/info` never does.
    let seen = watch
        .changed_from(&Role::NoPrimary, Duration::from_secs(10))
        .await;
    assert_eq!(seen, Role::Primary);
    assert!(connections.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}
