//! The RPC endpoint: an Axum router that runs forwarded writes and operations on the primary.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;

use crate::auth::{self, Signature};
use crate::config::{OPERATION_PATH, RPC_PATH};
use crate::db::ReplicatedDb;
use crate::error::DbFailure;
use crate::executor::{ExecError, in_transaction};
use crate::ops::BoxFut;
use crate::wire::{
    ErrorBody, ErrorCode, OperationRequest, OperationResponse, WIRE_VERSION, WriteRequest,
    WriteResponse,
};

/// The router that accepts forwarded writes at [`RPC_PATH`] and operations at
/// [`OPERATION_PATH`]; merge it into the app's router (or serve it on a port of its own).
/// Every node serves it: whichever is primary answers, the others refuse with "not primary".
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
    Router::new()
        .route(RPC_PATH, post(handle_write))
        .route(OPERATION_PATH, post(handle_operation))
        .with_state(db)
}

async fn handle_write(State(db): State<ReplicatedDb>, request: Request) -> Response {
    let request: WriteRequest = match intake(&db, request, RPC_PATH).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let Some(handler) = db.registry().entity_handler(&request.entity).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownEntity,
            request.entity,
        );
    };
    let (op, model) = (request.op, request.model);
    match execute(&db, "", move |txn| {
        Box::pin(async move { handler.run(op, model, txn).await })
    })
    .await
    {
        Ok((outcome, txid)) => axum::Json(WriteResponse {
            v: WIRE_VERSION,
            txid,
            outcome,
        })
        .into_response(),
        Err(refused) => refused,
    }
}

async fn handle_operation(State(db): State<ReplicatedDb>, request: Request) -> Response {
    let request: OperationRequest = match intake(&db, request, OPERATION_PATH).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let Some(handler) = db.registry().operation_handler(&request.operation).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownEntity,
            request.operation,
        );
    };
    let (name, args) = (request.operation, request.args);
    match execute(&db, &name, move |txn| {
        Box::pin(async move { handler.run(args, txn).await })
    })
    .await
    {
        Ok((output, txid)) => axum::Json(OperationResponse {
            v: WIRE_VERSION,
            txid,
            output,
        })
        .into_response(),
        Err(refused) => refused,
    }
}

/// Size limit, signature, JSON, version: everything a request passes before it may run.
async fn intake<T: DeserializeOwned + Versioned>(
    db: &ReplicatedDb,
    request: Request,
    path: &str,
) -> Result<T, Response> {
    let limit = db.config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let bytes: Bytes = axum::body::to_bytes(Body::new(body), limit)
        .await
        .map_err(|_| too_large(limit))?;
    signature(&parts.headers)
        .and_then(|sig| db.verifier().verify(&sig, path, &bytes))
        .map_err(|e| {
            refuse(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                e.to_string(),
            )
        })?;
    let request: T = serde_json::from_slice(&bytes).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("malformed request: {e}"),
        )
    })?;
    if request.version() != WIRE_VERSION {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!(
                "wire version {} is not supported; this node speaks {WIRE_VERSION}",
                request.version()
            ),
        ));
    }
    Ok(request)
}

trait Versioned {
    fn version(&self) -> u32;
}

impl Versioned for WriteRequest {
    fn version(&self) -> u32 {
        self.v
    }
}

impl Versioned for OperationRequest {
    fn version(&self) -> u32 {
        self.v
    }
}

/// Runs `work` in a transaction if this node is the primary, and shapes the answer.
async fn execute<T, F>(db: &ReplicatedDb, operation: &str, work: F) -> Result<(T, u64), Response>
where
    F: for<'t> FnOnce(&'t sea_orm::DatabaseTransaction) -> BoxFut<'t, Result<T, ExecError>>,
{
    let role = db.role();
    if !role.writes_locally() {
        return Err(not_primary(role.primary().map(str::to_owned)));
    }
    // A panic (in a hook, say) drops the transaction, which rolls it back: say so, rather
    // than closing the connection and leaving the caller unsure.
    let work = in_transaction(db.writer(), db.position(), work);
    let Ok(result) = std::panic::AssertUnwindSafe(work).catch_unwind().await else {
        return Err(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the write panicked on the primary and was rolled back",
        ));
    };
    result.map_err(|e| exec_error(db, operation, e))
}

fn exec_error(db: &ReplicatedDb, operation: &str, e: ExecError) -> Response {
    match e {
        ExecError::NotPrimary => {
            db.refresh_role();
            not_primary(None)
        }
        ExecError::Wire(e) => refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            e.to_string(),
        ),
        ExecError::Args(e) => refuse(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, e),
        ExecError::Db(e) => {
            let failure = DbFailure::from(&e);
            let mut body = ErrorBody::new(ErrorCode::Rejected, failure.message.clone());
            body.db = Some(failure);
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
        }
        ExecError::Operation(error) => {
            let mut body = ErrorBody::new(ErrorCode::OperationFailed, operation);
            body.error = Some(error);
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
        }
        e @ ExecError::Position(_) => {
            tracing::error!(error = %e, "cannot read the LiteFS position; the write was rolled back");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                e.to_string(),
            )
        }
    }
}

fn refuse(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody::new(code, message))).into_response()
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

fn too_large(limit: usize) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TooLarge,
        format!("request body is over the {limit}-byte limit"),
    )
}

fn not_primary(primary: Option<String>) -> Response {
    let mut body = ErrorBody::new(
        ErrorCode::NotPrimary,
        "this node is not the LiteFS primary; the write was not applied",
    );
    body.primary = primary;
    (StatusCode::CONFLICT, axum::Json(body)).into_response()
}
