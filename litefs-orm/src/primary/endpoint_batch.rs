//! The batch endpoint: several calls in one request, each run as if it had come alone.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::endpoint::{
    Databases, Refusal, admit, answer, check_database, check_version, decode_json, encode, refuse,
    run_body,
};
use crate::config::{BATCH_PATH, OPERATION_PATH, RPC_PATH};
use crate::db::ReplicatedDb;
use crate::primary::group_commit;
use crate::protocol::wire::{BatchRequest, ErrorCode};

/// Serves a batch; the batch's answer is signed as a whole, so every call's answer in it is.
pub(crate) async fn handle_batch(State(dbs): State<Databases>, request: Request) -> Response {
    let front = dbs.front();
    let (nonce, body) = match admit(front, request, BATCH_PATH).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused.observed().into_response(),
    };
    let result = match dbs.for_body(&body) {
        Ok(db) => run_batch(db, &body).await,
        Err(refused) => Err(refused),
    };
    answer(front, &nonce, result)
}

/// Most calls in one batch.
const MAX_BATCH_CALLS: usize = 256;

/// Runs every call of a batch as if it had come alone, all at once — so they share
/// group-commit transactions — and answers each with its own status and body.
async fn run_batch(db: &ReplicatedDb, body: &[u8]) -> Result<Bytes, Refusal> {
    let batch: BatchRequest<'_> = decode_json(body)?;
    check_version(batch.v)?;
    check_database(db, batch.db.as_deref())?;
    if batch.calls.is_empty() || batch.calls.len() > MAX_BATCH_CALLS {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("a batch holds 1 to {MAX_BATCH_CALLS} calls"),
        ));
    }
    let runs = batch.calls.iter().map(|call| async move {
        let body = Bytes::copy_from_slice(call.body.get().as_bytes());
        let path = match call.path.as_str() {
            RPC_PATH => RPC_PATH,
            OPERATION_PATH => OPERATION_PATH,
            other => {
                return Err(refuse(
                    StatusCode::NOT_FOUND,
                    ErrorCode::BadRequest,
                    format!("a batch call cannot go to {other}"),
                ));
            }
        };
        run_body(db, path, &body).await
    });
    let results = group_commit::together(futures_util::future::join_all(runs)).await;
    // The answers are JSON already: frame them without parsing them again.
    let mut out = Vec::with_capacity(64 * results.len());
    out.extend_from_slice(format!("{{\"v\":{},\"answers\":[", batch.v).as_bytes());
    for (i, result) in results.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (status, answer) = match result {
            Ok(answer) => {
                db.stats().served();
                (StatusCode::OK, answer)
            }
            Err(refused) => (refused.status, encode(&*refused.observed().body)?),
        };
        out.extend_from_slice(format!("{{\"status\":{},\"body\":", status.as_u16()).as_bytes());
        out.extend_from_slice(&answer);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(Bytes::from(out))
}
