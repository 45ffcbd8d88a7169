//! A node's RPC router called in-process with correctly signed bodies, for the property
//! tests and the fuzz target of the endpoint.

use axum::body::Body;
use axum::http::Request;
use litefs_orm::wire::BatchResponse;
use litefs_orm::{ReplicatedDb, auth};
use tower::ServiceExt;

use crate::SECRET;

/// Sends `body`, signed with [`SECRET`], to `path` of `db`'s router; returns the status.
/// For a batch answered 200, its calls' statuses stand in: a 5xx if any call got one, else
/// 200 if any call ran, else the refusal (every call refused: nothing may have changed).
/// An answer not signed for the request (every answer to a correctly signed request must
/// be) stands in as status 0.
pub async fn status_of(db: &ReplicatedDb, path: &str, body: Vec<u8>) -> u16 {
    let sig = auth::sign(SECRET.as_bytes(), path, &body);
    let request = Request::post(path)
        .header(auth::TIMESTAMP_HEADER, sig.timestamp_ms.to_string())
        .header(auth::NONCE_HEADER, &sig.nonce)
        .header(auth::SIGNATURE_HEADER, sig.signature)
        .body(Body::from(body))
        .expect("a request");
    let response = litefs_orm::router(db.clone())
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status().as_u16();
    let signature = response
        .headers()
        .get(auth::ANSWER_SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the answer");
    let signed = signature.is_some_and(|s| {
        auth::verify_answer(SECRET.as_bytes(), &sig.nonce, status, &bytes, &s).is_ok()
    });
    if !signed {
        return 0;
    }
    if path != litefs_orm::BATCH_PATH || status != 200 {
        return status;
    }
    let answers: BatchResponse<'_> =
        serde_json::from_slice(&bytes).expect("a batch answered 200 lists its calls' answers");
    let statuses: Vec<u16> = answers.answers.iter().map(|a| a.status).collect();
    let worst = statuses.iter().copied().max().unwrap_or(200);
    match (worst >= 500, statuses.iter().any(|s| *s < 300)) {
        (true, _) => worst,
        (false, true) => 200,
        (false, false) => worst,
    }
}

/// Sends `body` to `path` as [`status_of`] does and checks what the endpoint promises for
/// any input: an answer signed for the request, never a 5xx, and a refused request leaves
/// the database as it was (compared with [`litefs_orm_testkit::dump`]). Returns the status,
/// or what was broken.
pub async fn check_request(db: &ReplicatedDb, path: &str, body: Vec<u8>) -> Result<u16, String> {
    let dump = || async { litefs_orm_testkit::dump(db).await.expect("dump") };
    let before = dump().await;
    let status = status_of(db, path, body).await;
    if status == 0 {
        return Err("the answer is not signed for the request".into());
    }
    if status >= 500 {
        return Err(format!("answered {status}"));
    }
    if status >= 400 && dump().await != before {
        return Err(format!("refused with {status}, yet the database changed"));
    }
    Ok(status)
}
