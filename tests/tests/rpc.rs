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
