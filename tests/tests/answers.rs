//! A replica trusts only answers signed with the cluster secret for its own request: a
//! forged success, refusal or "not primary" is an error that says the write may have been
//! committed, never a commit or a refusal.

use axum::http::{HeaderMap, StatusCode};
use litefs_orm::auth;
use litefs_orm::{Error, ReplicatedActiveModel, ReplicatedDb};
use litefs_orm_tests::entities::post;
use litefs_orm_tests::{
    SECRET, Served, TestCluster, fresh_key, post_insert_body, post_signed, registry,
};
use sea_orm::EntityTrait;

/// What the forger answers: a status and a body, signed (or not) by `sign` from the
/// request's nonce.
#[derive(Clone)]
struct Forgery {
    status: StatusCode,
    body: &'static str,
    sign: fn(&str, u16, &[u8]) -> Option<String>,
}

const FORGED_COMMIT: &str = r#"{"v":2,"txid":0,"outcome":{"model":{"id":{"unchanged":{"Int":1}},"title":{"unchanged":{"String":"never written"}},"body":{"unchanged":{"String":"b"}},"note":{"unchanged":{"String":null}}}}}"#;

/// An HTTP server that answers every request with `forgery`.
async fn forger(forgery: Forgery) -> (String, Served) {
    let router = axum::Router::new().fallback(move |headers: HeaderMap| {
        let f = forgery.clone();
        async move {
            let nonce = headers
                .get(auth::NONCE_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let mut response = axum::response::Response::builder()
                .status(f.status)
                .header("content-type", "application/json");
            if let Some(sig) = (f.sign)(nonce, f.status.as_u16(), f.body.as_bytes()) {
                response = response.header(auth::ANSWER_SIGNATURE_HEADER, sig);
            }
            response.body(axum::body::Body::from(f.body)).unwrap()
        }
    });
    TestCluster::serve(router).await
}

/// Node 1 of `c`, sending its writes for the primary (node 0) to `url` instead.
async fn replica_sending_to(c: &TestCluster, url: &str) -> ReplicatedDb {
    let config = c.configs[1]
        .clone()
        .with_primary_url_for(c.hostname(0), url);
    ReplicatedDb::connect(config, registry()).await.unwrap()
}

async fn outcome_through(forgery: Forgery) -> Error {
    let c = TestCluster::start().await;
    let (url, _served) = forger(forgery).await;
    let db = replica_sending_to(&c, &url).await;
    let err = post::new("through a forger")
        .insert_replicated(&db)
        .await
        .unwrap_err();
    assert!(post::Entity::find().all(c.db(0)).await.unwrap().is_empty());
    err
}

fn unsigned(_: &str, _: u16, _: &[u8]) -> Option<String> {
    None
}

fn assert_untrusted(e: &Error) {
    assert!(matches!(e, Error::UnverifiedAnswer { .. }), "{e:?}");
    assert!(e.may_be_committed(), "{e}");
    assert!(!e.is_committed(), "{e}");
}

#[tokio::test]
async fn an_unsigned_success_is_not_taken_for_a_commit() {
    let e = outcome_through(Forgery {
        status: StatusCode::OK,
        body: FORGED_COMMIT,
        sign: unsigned,
    })
    .await;
    assert_untrusted(&e);
    assert!(e.to_string().contains("no signature"), "{e}");
}

#[tokio::test]
async fn a_success_signed_with_another_secret_is_not_taken_for_a_commit() {
    let e = outcome_through(Forgery {
        status: StatusCode::OK,
        body: FORGED_COMMIT,
        sign: |nonce, status, body| {
            Some(auth::sign_answer(
                b"another secret, long enough",
                nonce,
                status,
                body,
            ))
        },
    })
    .await;
    assert_untrusted(&e);
}

#[tokio::test]
async fn a_success_signed_for_another_request_is_not_taken_for_a_commit() {
    let e = outcome_through(Forgery {
        status: StatusCode::OK,
        body: FORGED_COMMIT,
        sign: |_, status, body| {
            Some(auth::sign_answer(
                SECRET.as_bytes(),
                "another nonce",
                status,
                body,
            ))
        },
    })
    .await;
    assert_untrusted(&e);
}

#[tokio::test]
async fn a_forged_not_primary_is_not_retried_as_one() {
    let e = outcome_through(Forgery {
        status: StatusCode::CONFLICT,
        body: r#"{"v":2,"code":"not_primary","message":"this node is not the LiteFS primary"}"#,
        sign: unsigned,
    })
    .await;
    assert_untrusted(&e);
    assert!(
        e.to_string().contains("not the LiteFS primary"),
        "the answer is quoted: {e}"
    );
}

#[tokio::test]
async fn a_forged_rejection_does_not_say_nothing_was_written() {
    let e = outcome_through(Forgery {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: r#"{"v":2,"code":"rejected","message":"UNIQUE constraint failed","db":{"kind":"unique_violation","message":"UNIQUE constraint failed"}}"#,
        sign: unsigned,
    })
    .await;
    assert_untrusted(&e);
}

#[tokio::test]
async fn the_primary_signs_its_answer_for_the_request() {
    let c = TestCluster::start().await;
    let body = post_insert_body("signed answer", &fresh_key());
    let url = c.rpc_url(0);
    let path = url.split_once("://").unwrap().1;
    let path = &path[path.find('/').unwrap()..];
    let sig = auth::sign(SECRET.as_bytes(), path, &body);
    let resp = litefs_orm_tests::post_with(&url, body, &sig).await;
    let status = resp.status().as_u16();
    let signature = resp
        .headers()
        .get(auth::ANSWER_SIGNATURE_HEADER)
        .expect("a signed answer")
        .to_str()
        .unwrap()
        .to_owned();
    let answer = resp.bytes().await.unwrap();
    assert_eq!(status, 200);
    auth::verify_answer(SECRET.as_bytes(), &sig.nonce, status, &answer, &signature).unwrap();
}

#[tokio::test]
async fn a_request_that_fails_authentication_gets_no_signed_answer() {
    // Signing it would let anyone without the secret have an answer signed for a nonce of
    // their choosing.
    let c = TestCluster::start().await;
    let body = post_insert_body("forged request", &fresh_key());
    let sig = auth::sign(
        b"not the cluster secret at all",
        litefs_orm::RPC_PATH,
        &body,
    );
    let resp = litefs_orm_tests::post_with(&c.rpc_url(0), body, &sig).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().get(auth::ANSWER_SIGNATURE_HEADER).is_none());
}

#[tokio::test]
async fn a_refusal_after_authentication_is_signed() {
    let c = TestCluster::start().await;
    let resp = post_signed(
        &c.rpc_url(1),
        post_insert_body("on a replica", &fresh_key()),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 409);
    assert!(resp.headers().get(auth::ANSWER_SIGNATURE_HEADER).is_some());
}
