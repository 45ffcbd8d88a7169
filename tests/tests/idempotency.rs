//! Exactly once: a forwarded call whose answer was lost, or whose primary changed while it
//! waited, is retried under its idempotency key and applied once.

use std::time::Duration;

use litefs_orm::wire::{ErrorBody, ErrorCode, OperationResponse, WriteResponse};
use litefs_orm::{Error, ReplicatedActiveModel, ReplicatedDb};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::operations::IncrementPage;
use litefs_orm_tests::proxy::Fault;
use litefs_orm_tests::{TestCluster, post_insert_body, post_signed};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;

async fn views(db: &ReplicatedDb, page: &str) -> Option<i64> {
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "SELECT count FROM page_view WHERE page = ?",
        [page.into()],
    ))
    .await
    .unwrap()
    .map(|row| row.try_get_by_index(0).unwrap())
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_retried_and_lands_once() {
    let c = TestCluster::proxied(Duration::from_secs(10)).await;
    c.proxies[0].reset_next_answers(1);
    let saved = post::new("lost answer")
        .insert_replicated(c.db(1))
        .await
        .unwrap();
    assert_eq!(post::titled(c.db(0), "lost answer").await, vec![saved]);
}

#[tokio::test]
async fn an_operation_whose_answer_was_lost_is_retried_and_runs_once() {
    let c = TestCluster::proxied(Duration::from_secs(10)).await;
    c.proxies[0].reset_next_answers(1);
    let page = IncrementPage {
        page: "lost".into(),
    };
    assert_eq!(c.db(2).run(page).await.unwrap(), 1);
    assert_eq!(views(c.db(0), "lost").await, Some(1));
}

#[tokio::test]
async fn answers_lost_until_the_deadline_end_as_maybe_committed_after_several_attempts() {
    let c = TestCluster::proxied(Duration::from_secs(1)).await;
    c.proxies[0].set(Fault::ResetAfterRequest);
    let err = post::new("always reset")
        .insert_replicated(c.db(1))
        .await
        .unwrap_err();
    let Error::Transport {
        maybe_committed: true,
        attempts,
        ..
    } = err
    else {
        panic!("expected a maybe-committed transport error, got {err:?}");
    };
    assert!(attempts > 1, "{attempts} attempt(s)");
    assert!(err.to_string().contains("idempotency key"), "{err}");
}

#[tokio::test]
async fn answers_lost_until_the_deadline_leave_the_call_applied_once() {
    let c = TestCluster::proxied(Duration::from_secs(1)).await;
    c.proxies[0].set(Fault::ResetAfterRequest);
    let page = IncrementPage {
        page: "always reset".into(),
    };
    let err = c.db(1).run(page).await.unwrap_err();
    assert!(err.to_string().contains("may have been committed"), "{err}");
    assert_eq!(views(c.db(0), "always reset").await, Some(1));
}

#[tokio::test]
async fn a_primary_change_during_a_stalled_answer_retries_on_the_new_primary_once() {
    let c = TestCluster::proxied(Duration::from_secs(10)).await;
    c.proxies[0].set(Fault::Stall);
    let writer = c.db(2).clone();
    let write = tokio::spawn(async move { post::new("moved").insert_replicated(&writer).await });
    // The old primary commits; its answer is held back.
    wait_until(|| async { post::titled(c.db(0), "moved").await.len() == 1 }).await;
    c.litefs.sync().await.unwrap();
    c.litefs.switch_primary(1).await;
    let saved = write.await.unwrap().unwrap();
    assert_eq!(post::titled(c.db(1), "moved").await, vec![saved]);
}

#[tokio::test]
async fn a_replica_promoted_while_its_forwarded_write_stalled_answers_it_from_the_record() {
    let c = TestCluster::proxied(Duration::from_secs(10)).await;
    c.proxies[0].set(Fault::Stall);
    let writer = c.db(1).clone();
    let write = tokio::spawn(async move { post::new("promoted").insert_replicated(&writer).await });
    wait_until(|| async { post::titled(c.db(0), "promoted").await.len() == 1 }).await;
    c.litefs.sync().await.unwrap();
    // The writing node itself becomes primary: it runs the call locally, under its key.
    c.litefs.switch_primary(1).await;
    let saved = write.await.unwrap().unwrap();
    assert_eq!(post::titled(c.db(1), "promoted").await, vec![saved]);
}

fn keyed_insert(key: &str, title: &str) -> Vec<u8> {
    post_insert_body(title, key)
}

#[tokio::test]
async fn a_request_sent_twice_under_one_key_gets_the_first_answer_and_writes_once() {
    let c = TestCluster::start().await;
    let first: WriteResponse = post_signed(&c.rpc_url(0), keyed_insert("k-1", "twice"))
        .await
        .json()
        .await
        .unwrap();
    let again: WriteResponse = post_signed(&c.rpc_url(0), keyed_insert("k-1", "twice"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again.outcome, first.outcome);
    assert_eq!(post::titled(c.db(0), "twice").await.len(), 1);
}

#[tokio::test]
async fn a_key_sent_again_with_another_request_is_refused_and_writes_nothing() {
    let c = TestCluster::start().await;
    assert!(
        post_signed(&c.rpc_url(0), keyed_insert("k-2", "first"))
            .await
            .status()
            .is_success()
    );
    let refused = post_signed(&c.rpc_url(0), keyed_insert("k-2", "second")).await;
    assert_eq!(refused.status().as_u16(), 422);
    let body: ErrorBody = refused.json().await.unwrap();
    assert_eq!(body.code, ErrorCode::BadRequest);
    assert!(body.message.contains("k-2"), "{}", body.message);
    assert!(post::titled(c.db(0), "second").await.is_empty());
}

fn keyed_increment(key: &str, page: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "v": 1,
        "operation": "increment_page",
        "args": {"page": page},
        "key": key,
    }))
    .unwrap()
}

#[tokio::test]
async fn an_operation_sent_twice_under_one_key_gets_the_first_answer_and_runs_once() {
    let c = TestCluster::start().await;
    let url = c.url(0, litefs_orm::OPERATION_PATH);
    let first: OperationResponse = post_signed(&url, keyed_increment("k-op", "twice"))
        .await
        .json()
        .await
        .unwrap();
    let again: OperationResponse = post_signed(&url, keyed_increment("k-op", "twice"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((first.output.clone(), again.output), (json!(1), json!(1)));
    assert!(again.txid >= first.txid);
    assert_eq!(views(c.db(0), "twice").await, Some(1));
}

#[tokio::test]
async fn a_keyed_call_that_fails_answers_its_own_error_every_time_and_records_nothing() {
    let c = TestCluster::start().await;
    let taken = post_signed(&c.rpc_url(0), keyed_insert("k-takes", "taken")).await;
    assert!(taken.status().is_success());
    for _ in 0..2 {
        let refused = post_signed(&c.rpc_url(0), keyed_insert("k-fails", "taken")).await;
        assert_eq!(refused.status().as_u16(), 422);
        let body: ErrorBody = refused.json().await.unwrap();
        assert_eq!(body.code, ErrorCode::Rejected);
    }
    assert_eq!(records(c.db(0), "key = 'k-fails'").await, 0);
}

#[tokio::test]
async fn a_malformed_key_is_a_bad_request() {
    let c = TestCluster::start().await;
    let resp = post_signed(&c.rpc_url(0), keyed_insert("", "no key")).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(post::titled(c.db(0), "no key").await.is_empty());
}

#[tokio::test]
async fn the_record_of_a_key_replicates_with_its_write() {
    let c = TestCluster::start().await;
    post::new("recorded")
        .insert_replicated(c.db(2))
        .await
        .unwrap();
    assert_eq!(records(c.db(2), "1").await, 1);
}

/// Idempotency records on node `db` matching the SQL condition `filter`.
async fn records(db: &ReplicatedDb, filter: &str) -> i64 {
    let table = litefs_orm::IDEMPOTENCY_TABLE;
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("SELECT count(*) FROM {table} WHERE {filter}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

/// Polls `check` every 10 ms for up to 5 s.
async fn wait_until<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}

/// Sends the very same signed request (headers and body) to each URL in turn; returns the
/// answers' statuses and bodies.
async fn replay(urls: &[String], body: Vec<u8>) -> Vec<(u16, serde_json::Value)> {
    let sig = litefs_orm::auth::sign(
        litefs_orm_tests::SECRET.as_bytes(),
        litefs_orm::RPC_PATH,
        &body,
    );
    let mut answers = Vec::new();
    for url in urls {
        let resp = litefs_orm_tests::post_with(url, body.clone(), &sig).await;
        answers.push((resp.status().as_u16(), resp.json().await.unwrap()));
    }
    answers
}

#[tokio::test]
async fn a_request_replayed_to_a_new_primary_is_answered_from_the_record() {
    let c = TestCluster::start().await;
    let body = keyed_insert(&litefs_orm_tests::fresh_key(), "replayed");
    let first = replay(&[c.rpc_url(0)], body.clone()).await;
    c.litefs.switch_primary(1).await;
    wait_until(|| async { c.db(1).role() == litefs_orm::Role::Primary }).await;
    let again = replay(&[c.rpc_url(1)], body).await;
    assert_eq!(first[0].0, 200);
    assert_eq!(again[0].0, 200);
    assert_eq!(first[0].1["outcome"], again[0].1["outcome"]);
    assert_eq!(post::titled(c.db(1), "replayed").await.len(), 1);
}

#[tokio::test]
async fn a_request_replayed_to_a_restarted_primary_is_answered_from_the_record() {
    let c = TestCluster::start().await;
    // A fresh handle on the primary's database: a restarted app, which remembers no nonce.
    let restarted = ReplicatedDb::connect(c.configs[0].clone(), litefs_orm_tests::registry())
        .await
        .unwrap();
    let (url, _served) = TestCluster::serve(litefs_orm::router(restarted)).await;
    let body = keyed_insert(&litefs_orm_tests::fresh_key(), "replayed after a restart");
    let answers = replay(
        &[c.rpc_url(0), format!("{url}{}", litefs_orm::RPC_PATH)],
        body,
    )
    .await;
    assert_eq!((answers[0].0, answers[1].0), (200, 200));
    assert_eq!(answers[0].1["outcome"], answers[1].1["outcome"]);
    assert_eq!(
        post::titled(c.db(0), "replayed after a restart")
            .await
            .len(),
        1
    );
}

/// Counts its runs in this process.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct CountedRun;

static COUNTED_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl litefs_orm::Operation for CountedRun {
    const NAME: &'static str = "counted_run";
    type Output = usize;
    type Error = litefs_orm::DbFailure;

    async fn run(self, txn: &sea_orm::DatabaseTransaction) -> Result<usize, litefs_orm::DbFailure> {
        txn.execute_unprepared("INSERT INTO runs DEFAULT VALUES")
            .await?;
        Ok(COUNTED_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
    }
}

#[tokio::test]
async fn a_call_repeated_under_its_key_does_not_run_its_work_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = litefs_orm::Config::standalone(dir.path().join("app.db"))
        .with_rpc_secret(litefs_orm_tests::SECRET);
    let registry = litefs_orm::Registry::new().operation::<CountedRun>();
    let db = ReplicatedDb::connect(config, registry).await.unwrap();
    db.execute_unprepared("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let (url, _served) = TestCluster::serve(litefs_orm::router(db.clone())).await;
    let body = serde_json::to_vec(&json!({
        "v": 2, "operation": "counted_run", "args": null, "key": "k-counted",
    }))
    .unwrap();
    let url = format!("{url}{}", litefs_orm::OPERATION_PATH);
    for _ in 0..3 {
        let answer: OperationResponse = post_signed(&url, body.clone()).await.json().await.unwrap();
        assert_eq!(answer.output, json!(1));
    }
    assert_eq!(COUNTED_RUNS.load(std::sync::atomic::Ordering::SeqCst), 1);
}
