//! What a forwarded write shows of itself: the documented metrics with their labels, the
//! spans with their fields, the warning of a failure, and a replica's lag.

use std::time::Duration;

use litefs_orm::observe::metrics::{
    CALLS_TOTAL, COMMIT_DURATION_SECONDS, ENDPOINT_REJECTIONS_TOTAL, FORWARD_DURATION_SECONDS,
    GROUP_COMMIT_WRITES, READ_YOUR_WRITES_WAIT_SECONDS, REPLICATION_LAG_SECONDS,
    REPLICATION_LAG_TRANSACTIONS, SERVED_CALLS_TOTAL,
};
use litefs_orm::{Error, ReplicatedActiveModel, Role};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::observe::{Metrics, Traces};
use litefs_orm_tests::{Setup, TestCluster, post_insert_body};
use sea_orm::ActiveValue::Set;
use tracing::Level;

const INSERT: [(&str, &str); 2] = [("name", "post"), ("op", "insert")];

#[tokio::test]
async fn a_forwarded_write_counts_as_forwarded_and_ok_by_entity_and_op() {
    let metrics = Metrics::record();
    let c = TestCluster::start().await;
    post::new("counted")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    let seen = metrics.take();
    let labels = [
        ("name", "post"),
        ("op", "insert"),
        ("route", "forwarded"),
        ("outcome", "ok"),
    ];
    assert_eq!(seen.counter(CALLS_TOTAL, &labels), 1, "{seen:#?}");
}

#[tokio::test]
async fn a_forwarded_write_records_its_forward_time_and_its_wait() {
    let metrics = Metrics::record();
    let c = TestCluster::start().await;
    post::new("timed").insert_replicated(c.db(1)).await.unwrap();
    let seen = metrics.take();
    assert_eq!(seen.histogram(FORWARD_DURATION_SECONDS, &INSERT).len(), 1);
    assert_eq!(
        seen.histogram(READ_YOUR_WRITES_WAIT_SECONDS, &INSERT).len(),
        1
    );
}

#[tokio::test]
async fn a_forwarded_write_is_served_and_committed_on_the_primary() {
    let metrics = Metrics::record();
    let c = TestCluster::start().await;
    // The schema's commits, before the write.
    metrics.take();
    post::new("served")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    let seen = metrics.take();
    assert_eq!(seen.counter(SERVED_CALLS_TOTAL, &[]), 1);
    assert_eq!(seen.histogram(COMMIT_DURATION_SECONDS, &[]).len(), 1);
    assert_eq!(seen.histogram(GROUP_COMMIT_WRITES, &[]), [1.0]);
}

#[tokio::test]
async fn an_unsigned_request_counts_as_an_unauthorized_rejection() {
    let metrics = Metrics::record();
    let c = TestCluster::start().await;
    let response = reqwest::Client::new()
        .post(c.rpc_url(0))
        .body(post_insert_body("unsigned", "k"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let unauthorized = [("reason", "unauthorized")];
    let seen = metrics.take();
    assert_eq!(seen.counter(ENDPOINT_REJECTIONS_TOTAL, &unauthorized), 1);
}

#[tokio::test]
async fn a_forwarded_write_runs_in_a_call_span_carrying_its_fields() {
    let traces = Traces::record();
    let c = TestCluster::start().await;
    let saved = post::new("traced")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    let calls = traces.spans("litefs_orm.call");
    let call = calls
        .iter()
        .find(|s| s.fields.get("outcome").map(String::as_str) == Some("ok"))
        .unwrap_or_else(|| panic!("no finished call span: {calls:#?}"));
    let primary = c.nodes[0].addr.to_string();
    let f = &call.fields;
    assert_eq!(call.level, Level::DEBUG);
    assert_eq!(f["name"], "post");
    assert_eq!(f["op"], "insert");
    assert_eq!(f["role"], format!("replica of {primary}"));
    assert_eq!(f["primary"], primary);
    assert_eq!(f["attempts"], "1");
    assert_eq!(f["key"].len(), 8, "{f:?}");
    assert!(f["txid"].parse::<u64>().unwrap() > 0, "{f:?}");
    for timed in ["forward_ms", "wait_ms"] {
        assert!(f[timed].parse::<f64>().unwrap() >= 0.0, "{f:?}");
    }
    assert!(saved.id > 0);
}

#[tokio::test]
async fn a_commit_on_the_primary_runs_in_a_batch_span_with_its_size_and_txid() {
    let traces = Traces::record();
    let c = TestCluster::start().await;
    post::new("batched")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    let call_txid = traces
        .spans("litefs_orm.call")
        .iter()
        .find_map(|s| s.fields.get("txid").cloned())
        .expect("a call span with its TXID");
    let batches = traces.spans("litefs_orm.batch");
    let batch = batches
        .iter()
        .find(|s| s.fields.get("txid") == Some(&call_txid))
        .unwrap_or_else(|| panic!("no batch span of txid {call_txid}: {batches:#?}"));
    assert_eq!(batch.fields["size"], "1");
    assert!(batch.fields["commit_ms"].parse::<f64>().unwrap() >= 0.0);
}

#[tokio::test]
async fn a_failed_write_is_a_warning_with_its_kind() {
    let traces = Traces::record();
    let c = TestCluster::start().await;
    let saved = post::new("first").insert_replicated(c.db(1)).await.unwrap();
    // The same id again: the primary's database refuses it.
    let mut again = post::new("second");
    again.id = Set(saved.id);
    let e = again.insert_replicated(c.db(1)).await.unwrap_err();
    assert!(matches!(e, Error::Rejected(_)), "{e}");
    let warnings = traces.events("replicated call failed");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].level, Level::WARN);
    assert_eq!(warnings[0].fields["kind"], "rejected");
}

#[tokio::test]
async fn nothing_is_logged_at_info_for_a_forwarded_write() {
    let c = TestCluster::start().await;
    let traces = Traces::record();
    post::new("quiet").insert_replicated(c.db(1)).await.unwrap();
    let loud: Vec<_> = traces
        .events_at_or_above(Level::INFO)
        .into_iter()
        .filter(|e| !e.name.starts_with("testkit"))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
}

/// A cluster whose replicas give up waiting for replication after 200 ms.
async fn impatient() -> TestCluster {
    TestCluster::start_with(Setup {
        replication_timeout: Duration::from_millis(200),
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn a_replicas_lag_shows_while_replication_is_paused() {
    let metrics = Metrics::record();
    let c = impatient().await;
    assert!(matches!(c.db(1).role(), Role::Replica { .. }));
    c.litefs.pause_replication();
    let e = post::new("behind")
        .insert_replicated(c.db(1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ReplicationTimeout { .. }), "{e}");
    let status = c.db(1).status();
    let seen = metrics.take();
    c.litefs.resume_replication();
    assert_eq!(status.lag_transactions, Some(1), "{status:?}");
    assert!(status.lag.is_some_and(|l| !l.is_zero()), "{status:?}");
    assert_eq!(seen.gauge(REPLICATION_LAG_TRANSACTIONS, &[]), Some(1.0));
    let lag = seen.gauge(REPLICATION_LAG_SECONDS, &[]);
    assert!(lag.is_some_and(|s| s > 0.0), "{seen:#?}");
}

#[tokio::test]
async fn a_replicas_lag_clears_once_replication_resumes() {
    let metrics = Metrics::record();
    let c = impatient().await;
    c.litefs.pause_replication();
    post::new("late")
        .insert_replicated(c.db(1))
        .await
        .unwrap_err();
    c.litefs.resume_replication();
    c.litefs.sync().await.unwrap();
    let status = c.db(1).status();
    let seen = metrics.take();
    assert_eq!(status.lag_transactions, Some(0), "{status:?}");
    assert_eq!(seen.gauge(REPLICATION_LAG_TRANSACTIONS, &[]), Some(0.0));
}
