//! What a dispatched call records, seen through the `metrics` crate's debugging recorder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use super::tests::{Noop, Refused, replica, replica_of_n1};
use super::*;
use crate::observe::metrics::{CALLS_TOTAL, GROUP_COMMIT_WRITES, RETRIES_TOTAL};

/// The value of metric `name` whose labels include `labels`.
fn value(snapshot: &Snapshotter, name: &str, labels: &[(&str, &str)]) -> Option<DebugValue> {
    snapshot
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, ..)| {
            let key = key.key();
            key.name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(.., value)| value)
}

#[tokio::test]
async fn a_call_run_on_the_primary_counts_as_local_and_ok() {
    let recorder = DebuggingRecorder::new();
    let snapshot = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Refused {
        delay: Duration::ZERO,
        sent: AtomicUsize::new(0),
    });
    let (db, _role) = replica(&dir, transport, Role::Primary).await;
    db.run(Noop).await.unwrap();
    let labels = [
        ("name", "noop"),
        ("op", "run"),
        ("route", "local"),
        ("outcome", "ok"),
    ];
    assert_eq!(
        value(&snapshot, CALLS_TOTAL, &labels),
        Some(DebugValue::Counter(1))
    );
}

#[tokio::test]
async fn a_write_alone_on_the_primary_is_a_commit_of_one_write() {
    let recorder = DebuggingRecorder::new();
    let snapshot = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Refused {
        delay: Duration::ZERO,
        sent: AtomicUsize::new(0),
    });
    let (db, _role) = replica(&dir, transport, Role::Primary).await;
    db.run(Noop).await.unwrap();
    let Some(DebugValue::Histogram(sizes)) = value(&snapshot, GROUP_COMMIT_WRITES, &[]) else {
        panic!("no {GROUP_COMMIT_WRITES}");
    };
    assert_eq!(sizes.iter().map(|s| s.0).collect::<Vec<_>>(), [1.0]);
}

#[tokio::test]
async fn a_refused_attempt_counts_as_a_retry_by_its_kind() {
    let recorder = DebuggingRecorder::new();
    let snapshot = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(Refused {
        delay: Duration::ZERO,
        sent: AtomicUsize::new(0),
    });
    let (db, role) = replica(&dir, transport.clone(), replica_of_n1()).await;
    // This node becomes the primary once the first attempt was refused: the call then runs
    // here.
    let sent = transport.clone();
    tokio::spawn(async move {
        while sent.sent.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        role.send_replace(Role::Primary);
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    db.run(Noop).await.unwrap();
    let labels = [("name", "noop"), ("op", "run"), ("reason", "transport")];
    assert!(
        matches!(value(&snapshot, RETRIES_TOTAL, &labels), Some(DebugValue::Counter(n)) if n >= 1),
        "{:?}",
        snapshot.snapshot().into_vec()
    );
}
