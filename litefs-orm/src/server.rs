//! The RPC endpoint: an Axum router that runs forwarded writes on the primary.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::FutureExt;

use crate::auth::{self, Signature};
use crate::config::RPC_PATH;
use crate::db::ReplicatedDb;
use crate::error::DbFailure;
use crate::executor::{ExecError, in_transaction};
use crate::wire::{ErrorBody, ErrorCode, WIRE_VERSION, WriteRequest, WriteResponse};

/// The router that accepts forwarded writes at [`RPC_PATH`]; merge it into the app's router
/// (or serve it on a port of its own). Every node serves it: whichever is primary answers,
/// the others refuse with "not primary".
///
/// ```no_run
/// # async fn run(db: litefs_orm::ReplicatedDb) {
/// let app = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .merge(litefs_orm::router(db));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await.unwrap();
/// axum::serve(listener, app).await.unwrap();
/// # }
/// ```
pub fn router(db: ReplicatedDb) -> Router {
    Router::new().route(RPC_PATH, post(handle)).with_state(db)
}

fn refuse(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        v: WIRE_VERSION,
        code,
        message: message.into(),
        db: None,
        primary: None,
    };
    (status, axum::Json(body)).into_response()
}

fn signature(headers: &HeaderMap) -> Result<Signature, auth::AuthError> {
    let get = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(auth::AuthError::Missing(name))
    };
    Ok(Signature {
        timestamp_ms: get(auth::TIMESTAMP_HEADER)?
            .parse()
            .map_err(|_| auth::AuthError::Missing(auth::TIMESTAMP_HEADER))?,
        nonce: get(auth::NONCE_HEADER)?,
        signature: get(auth::SIGNATURE_HEADER)?,
    })
}

async fn handle(State(db): State<ReplicatedDb>, request: Request) -> Response {
    let limit = db.config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(limit);
    }
    let Ok(bytes) = axum::body::to_bytes(Body::new(body), limit).await else {
        return too_large(limit);
    };
    let verified =
        signature(&parts.headers).and_then(|sig| db.verifier().verify(&sig, RPC_PATH, &bytes));
    if let Err(e) = verified {
        return refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            e.to_string(),
        );
    }
    let request: WriteRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                format!("malformed request: {e}"),
            );
        }
    };
    if request.v != WIRE_VERSION {
        return refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!(
                "wire version {} is not supported; this node speaks {WIRE_VERSION}",
                request.v
            ),
        );
    }
    let Some(handler) = db.registry().get(&request.entity).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownEntity,
            request.entity,
        );
    };
    let role = db.role();
    if !role.writes_locally() {
        return not_primary(role.primary().map(str::to_owned));
    }
    let op = request.op;
    let model = request.model;
    let work = in_transaction(db.writer(), db.position(), move |txn| {
        Box::pin(async move { handler.run(op, model, txn).await })
    });
    // A panic (in a hook, say) drops the transaction, which rolls it back: say so, rather
    // than closing the connection and leaving the caller unsure.
    let Ok(result) = std::panic::AssertUnwindSafe(work).catch_unwind().await else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the write panicked on the primary and was rolled back",
        );
    };
    match result {
        Ok((outcome, txid)) => axum::Json(WriteResponse {
            v: WIRE_VERSION,
            txid,
            outcome,
        })
        .into_response(),
        Err(ExecError::NotPrimary) => {
            db.refresh_role();
            not_primary(None)
        }
        Err(ExecError::Wire(e)) => refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            e.to_string(),
        ),
        Err(ExecError::Db(e)) => {
            let failure = DbFailure::from(&e);
            let body = ErrorBody {
                v: WIRE_VERSION,
                code: ErrorCode::Rejected,
                message: failure.message.clone(),
                db: Some(failure),
                primary: None,
            };
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
        }
        Err(e @ ExecError::Position(_)) => {
            tracing::error!(error = %e, "cannot read the LiteFS position; the write was rolled back");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                e.to_string(),
            )
        }
    }
}

fn too_large(limit: usize) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TooLarge,
        format!("request body is over the {limit}-byte limit"),
    )
}

fn not_primary(primary: Option<String>) -> Response {
    let body = ErrorBody {
        v: WIRE_VERSION,
        code: ErrorCode::NotPrimary,
        message: "this node is not the LiteFS primary; the write was not applied".into(),
        db: None,
        primary,
    };
    (StatusCode::CONFLICT, axum::Json(body)).into_response()
}
