//! The RPC endpoint refuses every request it should, with a 4xx and no change to the data.

use litefs_orm::auth;
use litefs_orm::wire::{ErrorBody, ErrorCode};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::{SECRET, TestCluster, fresh_key, post_signed, post_with};
use sea_orm::EntityTrait;
use serde_json::json;

fn insert_body(entity: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "v": 1,
        "entity": entity,
        "op": "insert",
        "model": {
            "title": {"set": {"String": "over the wire"}},
            "body": {"set": {"String": "b"}}
        },
        "key": fresh_key(),
    }))
    .unwrap()
}

async fn code_of(resp: reqwest::Response) -> (u16, ErrorCode) {
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.unwrap();
    (status, body.code)
}

async fn rows(c: &TestCluster) -> usize {
    post::Entity::find().all(c.db(0)).await.unwrap().len()
}

#[tokio::test]
async fn a_signed_request_is_applied() {
    let c = TestCluster::start().await;
    let resp = post_signed(&c.rpc_url(0), insert_body("post")).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(rows(&c).await, 1);
}

#[tokio::test]
async fn an_unsigned_request_is_unauthorized() {
    let c = TestCluster::start().await;
    let resp = reqwest::Client::new()
        .post(c.rpc_url(0))
        .body(insert_body("post"))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(resp).await, (401, ErrorCode::Unauthorized));
    assert_eq!(rows(&c).await, 0);
}

#[tokio::test]
async fn a_tampered_request_is_unauthorized() {
    let c = TestCluster::start().await;
    let sig = auth::sign(
        SECRET.as_bytes(),
        litefs_orm::RPC_PATH,
        &insert_body("post"),
    );
    let mut tampered = insert_body("post");
    let at = tampered.iter().position(|b| *b == b'b').unwrap();
    tampered[at] = b'c';
    let resp = post_with(&c.rpc_url(0), tampered, &sig).await;
    assert_eq!(code_of(resp).await, (401, ErrorCode::Unauthorized));
    assert_eq!(rows(&c).await, 0);
}

#[tokio::test]
async fn a_request_signed_with_another_secret_is_unauthorized() {
    let c = TestCluster::start().await;
    let body = insert_body("post");
    let sig = auth::sign(b"some other secret entirely", litefs_orm::RPC_PATH, &body);
    let resp = post_with(&c.rpc_url(0), body, &sig).await;
    assert_eq!(code_of(resp).await, (401, ErrorCode::Unauthorized));
    assert_eq!(rows(&c).await, 0);
}

#[tokio::test]
async fn a_replayed_request_is_unauthorized() {
    let c = TestCluster::start().await;
    let body = insert_body("post");
    let sig = auth::sign(SECRET.as_bytes(), litefs_orm::RPC_PATH, &body);
    assert_eq!(
        post_with(&c.rpc_url(0), body.clone(), &sig)
            .await
            .status()
            .as_u16(),
        200
    );
    let resp = post_with(&c.rpc_url(0), body, &sig).await;
    assert_eq!(code_of(resp).await, (401, ErrorCode::Unauthorized));
    assert_eq!(rows(&c).await, 1);
}

#[tokio::test]
async fn a_stale_request_is_unauthorized() {
    let c = TestCluster::start().await;
    let body = insert_body("post");
    let mut sig = auth::sign(SECRET.as_bytes(), litefs_orm::RPC_PATH, &body);
    sig.timestamp_ms -= 10 * 60 * 1000;
    let resp = post_with(&c.rpc_url(0), body, &sig).await;
    assert_eq!(code_of(resp).await, (401, ErrorCode::Unauthorized));
    assert_eq!(rows(&c).await, 0);
}

#[tokio::test]
async fn an_oversize_request_is_refused() {
    let c = TestCluster::start().await;
    let big = "x".repeat(2 << 20);
    let body = serde_json::to_vec(&json!({
        "v": 1, "entity": "post", "op": "insert", "key": fresh_key(),
        "model": {"title": {"set": {"String": big}}, "body": {"set": {"String": "b"}}}
    }))
    .unwrap();
    let resp = post_signed(&c.rpc_url(0), body).await;
    assert_eq!(code_of(resp).await, (413, ErrorCode::TooLarge));
    assert_eq!(rows(&c).await, 0);
}

#[tokio::test]
async fn a_malformed_request_is_a_bad_request() {
    let c = TestCluster::start().await;
    let resp = post_signed(&c.rpc_url(0), b"{not json".to_vec()).await;
    assert_eq!(code_of(resp).await, (400, ErrorCode::BadRequest));
    assert_eq!(rows(&c).await, 0);
}

#[tokio::test]
async fn an_unknown_entity_is_not_found() {
    let c = TestCluster::start().await;
    let resp = post_signed(&c.rpc_url(0), insert_body("secret")).await;
    assert_eq!(code_of(resp).await, (404, ErrorCode::UnknownEntity));
}

#[tokio::test]
async fn a_value_of_the_wrong_type_is_a_bad_request() {
    let c = TestCluster::start().await;
    let body = serde_json::to_vec(&json!({
        "v": 1, "entity": "post", "op": "insert", "key": fresh_key(),
        "model": {"title": {"set": {"Int": 5}}, "body": {"set": {"String": "b"}}}
    }))
    .unwrap();
    let resp = post_signed(&c.rpc_url(0), body).await;
    assert_eq!(code_of(resp).await, (400, ErrorCode::BadRequest));
    assert_eq!(rows(&c).await, 0);
}

#[tokio::test]
async fn an_unknown_column_is_a_bad_request() {
    let c = TestCluster::start().await;
    let body = serde_json::to_vec(&json!({
        "v": 1, "entity": "post", "op": "insert", "key": fresh_key(),
        "model": {"title": {"set": {"String": "t"}}, "body": {"set": {"String": "b"}}, "admin": {"set": {"Bool": true}}}
    }))
    .unwrap();
    let resp = post_signed(&c.rpc_url(0), body).await;
    assert_eq!(code_of(resp).await, (400, ErrorCode::BadRequest));
    assert_eq!(rows(&c).await, 0);
}

#[tokio::test]
async fn another_wire_version_is_a_bad_request() {
    let c = TestCluster::start().await;
    let body = serde_json::to_vec(&json!({
        "v": 99, "entity": "post", "op": "insert", "model": {}
    }))
    .unwrap();
    let resp = post_signed(&c.rpc_url(0), body).await;
    assert_eq!(code_of(resp).await, (400, ErrorCode::BadRequest));
}

#[tokio::test]
async fn a_replica_refuses_forwarded_writes_as_not_primary() {
    let c = TestCluster::start().await;
    let resp = post_signed(&c.rpc_url(1), insert_body("post")).await;
    assert_eq!(code_of(resp).await, (409, ErrorCode::NotPrimary));
    assert_eq!(rows(&c).await, 0);
}

#[tokio::test]
async fn an_unkeyed_write_is_refused() {
    let c = TestCluster::start().await;
    let body = serde_json::to_vec(&json!({
        "v": 2, "entity": "post", "op": "insert",
        "model": {"title": {"set": {"String": "t"}}, "body": {"set": {"String": "b"}}}
    }))
    .unwrap();
    let resp = post_signed(&c.rpc_url(0), body).await;
    let status = resp.status().as_u16();
    let answer: ErrorBody = resp.json().await.unwrap();
    assert_eq!((status, answer.code), (400, ErrorCode::BadRequest));
    assert!(answer.message.contains("key"), "{}", answer.message);
    assert_eq!(rows(&c).await, 0);
}

/// Sends `headers` and the first bytes of a body announced as a megabyte, which never
/// comes; returns the status line of the answer.
async fn answer_to_an_unfinished_body(c: &TestCluster, headers: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(c.nodes[0].addr)
        .await
        .unwrap();
    let request = format!(
        "POST {} HTTP/1.1\r\nhost: node\r\ncontent-type: application/json\r\n\
         content-length: 1000000\r\n{headers}\r\n{{\"v\":2,",
        litefs_orm::RPC_PATH
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    // Bounds a hang, so that a server that waits for the body fails the test.
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("an answer before the body ends")
        .unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_unsigned_request_is_refused_before_its_body_is_read() {
    let c = TestCluster::start().await;
    let status = answer_to_an_unfinished_body(&c, "").await;
    assert!(status.contains("401"), "{status}");
}

#[tokio::test]
async fn a_stale_request_is_refused_before_its_body_is_read() {
    let c = TestCluster::start().await;
    let stale = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 10 * 60 * 1000;
    let headers = format!(
        "{}: {stale}\r\n{}: 00ff\r\n{}: 00ff\r\n",
        auth::TIMESTAMP_HEADER,
        auth::NONCE_HEADER,
        auth::SIGNATURE_HEADER
    );
    let status = answer_to_an_unfinished_body(&c, &headers).await;
    assert!(status.contains("401"), "{status}");
}
