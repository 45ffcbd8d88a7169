//! Coalescing: concurrent forwarded calls from one replica travel to the primary in batch
//! requests, and each call keeps its own answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use litefs_orm::client::{HttpTransport, Transport};
use litefs_orm::wire::{BatchResponse, ErrorBody, ErrorCode};
use litefs_orm::{BATCH_PATH, Config, DbFailureKind, Error, ReplicatedActiveModel, ReplicatedDb};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::{SECRET, TestCluster, fresh_key, post_signed, registry};
use sea_orm::EntityTrait;
use serde_json::json;

/// HTTP, counting the batch requests it carries.
struct CountingTransport {
    http: HttpTransport,
    batches: AtomicUsize,
}

impl Transport for CountingTransport {
    fn send<'a>(
        &'a self,
        url: &'a str,
        body: Bytes,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn Future<Output = litefs_orm::Result<Bytes>> + Send + 'a>> {
        if url.ends_with(BATCH_PATH) {
            self.batches.fetch_add(1, Ordering::SeqCst);
        }
        self.http.send(url, body, timeout)
    }
}

/// A second handle on replica `i` of `c`, sending through a [`CountingTransport`].
async fn counted_replica(c: &TestCluster, i: usize) -> (ReplicatedDb, Arc<CountingTransport>) {
    let addr = c.litefs.http_addr(i).unwrap();
    let config = Config::litefs(c.litefs.mount(i), "app.db")
        .with_primary_url("http://{primary}")
        .with_rpc_secret(SECRET)
        .with_litefs_http(format!("http://{addr}"));
    let transport = Arc::new(CountingTransport {
        http: HttpTransport::new(SECRET).unwrap(),
        batches: AtomicUsize::new(0),
    });
    let db = ReplicatedDb::connect_with_transport(config, registry(), transport.clone())
        .await
        .unwrap();
    (db, transport)
}

/// Inserts every title at once from `db`; the results in order.
async fn insert_all(db: &ReplicatedDb, titles: &[String]) -> Vec<Result<post::Model, Error>> {
    let tasks: Vec<_> = titles
        .iter()
        .map(|t| {
            let (db, model) = (db.clone(), post::new(t));
            tokio::spawn(async move { model.insert_replicated(&db).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_from_one_replica_travel_in_batches_and_each_lands_once() {
    let c = TestCluster::start().await;
    let (db, transport) = counted_replica(&c, 1).await;
    let titles: Vec<String> = (0..48).map(|i| format!("batched {i}")).collect();
    for result in insert_all(&db, &titles).await {
        result.unwrap();
    }
    assert!(
        transport.batches.load(Ordering::SeqCst) > 0,
        "no batch was sent"
    );
    let on_primary = post::Entity::find().all(c.db(0)).await.unwrap();
    assert_eq!(on_primary.len(), titles.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_call_in_a_batch_fails_only_its_own_caller() {
    let c = TestCluster::start().await;
    post::new("taken").insert_replicated(c.db(0)).await.unwrap();
    c.litefs.sync().await.unwrap();
    let (db, transport) = counted_replica(&c, 2).await;
    let mut titles: Vec<String> = (0..32).map(|i| format!("fine {i}")).collect();
    titles[20] = "taken".into();
    let results = insert_all(&db, &titles).await;
    assert!(
        transport.batches.load(Ordering::SeqCst) > 0,
        "no batch was sent"
    );
    for (title, result) in titles.iter().zip(results) {
        match (title.as_str(), result) {
            ("taken", Err(Error::Rejected(f))) => {
                assert_eq!(f.kind, DbFailureKind::UniqueViolation)
            }
            ("taken", other) => panic!("the duplicate got {other:?}"),
            (_, result) => assert_eq!(result.unwrap().title, *title),
        }
    }
}

fn insert(entity: &str, title: &str) -> serde_json::Value {
    json!({
        "v": 1, "entity": entity, "op": "insert", "key": fresh_key(),
        "model": {"title": {"set": {"String": title}}, "body": {"set": {"String": "b"}}}
    })
}

#[tokio::test]
async fn a_batch_answers_each_call_with_its_own_status() {
    let c = TestCluster::start().await;
    let body = json!({"v": 1, "calls": [
        {"path": litefs_orm::RPC_PATH, "body": insert("post", "in a batch")},
        {"path": litefs_orm::RPC_PATH, "body": insert("nothing", "nowhere")},
        {"path": "/elsewhere", "body": insert("post", "astray")},
    ]});
    let resp = post_signed(&c.url(0, BATCH_PATH), serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.bytes().await.unwrap();
    let answers: BatchResponse<'_> = serde_json::from_slice(&bytes).unwrap();
    let statuses: Vec<u16> = answers.answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 404, 404]);
    let refused: ErrorBody = serde_json::from_str(answers.answers[1].body.get()).unwrap();
    assert_eq!(refused.code, ErrorCode::UnknownEntity);
    let titles: Vec<String> = post::Entity::find()
        .all(c.db(0))
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.title)
        .collect();
    assert_eq!(titles, ["in a batch"]);
}

#[tokio::test]
async fn an_empty_batch_is_a_bad_request() {
    let c = TestCluster::start().await;
    let resp = post_signed(&c.url(0, BATCH_PATH), br#"{"v":1,"calls":[]}"#.to_vec()).await;
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn an_unsigned_batch_is_unauthorized_and_runs_nothing() {
    let c = TestCluster::start().await;
    let body =
        json!({"v": 1, "calls": [{"path": litefs_orm::RPC_PATH, "body": insert("post", "x")}]});
    let resp = reqwest::Client::new()
        .post(c.url(0, BATCH_PATH))
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(post::Entity::find().all(c.db(0)).await.unwrap().is_empty());
}
