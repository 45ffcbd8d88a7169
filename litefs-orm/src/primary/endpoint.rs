//! The RPC endpoint: an Axum router that runs forwarded writes and operations on the primary.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::BoxFut;
use crate::config::{BATCH_PATH, OPERATION_PATH, RPC_PATH};
use crate::db::ReplicatedDb;
use crate::error::DbFailure;
use crate::primary::executor::{ExecError, in_transaction, io_failure};
use crate::primary::idempotency::{self, Key};
use crate::protocol::auth::{self, Signature};

use crate::protocol::wire::{
    ErrorBody, ErrorCode, OperationRequest, OperationResponse, WIRE_VERSION, WriteRequest,
    WriteResponse,
};

/// The router that accepts forwarded writes at [`RPC_PATH`], operations at
/// [`OPERATION_PATH`] and batches of both at [`BATCH_PATH`]; merge it into the app's router
/// (or serve it on a port of its own).
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
        .route(BATCH_PATH, post(super::endpoint_batch::handle_batch))
        .with_state(db)
}

async fn handle_write(State(db): State<ReplicatedDb>, request: Request) -> Response {
    serve(&db, request, RPC_PATH).await
}

async fn handle_operation(State(db): State<ReplicatedDb>, request: Request) -> Response {
    serve(&db, request, OPERATION_PATH).await
}

async fn serve(db: &ReplicatedDb, request: Request, path: &str) -> Response {
    let body = match admit(db, request, path).await {
        Ok(body) => body,
        Err(refused) => return refused.observed().into_response(),
    };
    match run_body(db, path, &body).await {
        Ok(answer) => {
            db.stats().served();
            ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
        }
        Err(refused) => refused.observed().into_response(),
    }
}

/// A refused or failed request: its status and error body.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) body: Box<ErrorBody>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, axum::Json(*self.body)).into_response()
    }
}

/// Size limit and signature: what a request passes before its body is even read as JSON.
pub(super) async fn admit(
    db: &ReplicatedDb,
    request: Request,
    path: &str,
) -> Result<Bytes, Refusal> {
    let limit = db.config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
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
    Ok(bytes)
}

/// Runs an admitted request body on this node and encodes the answer: decode, look up the
/// entity or operation, run it at most once per idempotency key in a transaction.
///
/// What the RPC endpoint does after [`admit`] — and what a dispatch does locally when an
/// earlier attempt of the same call was sent to another node, so that its key is honoured
/// on whichever node is primary now.
pub(crate) async fn run_body(
    db: &ReplicatedDb,
    path: &str,
    body: &Bytes,
) -> Result<Bytes, Refusal> {
    match path {
        RPC_PATH => run_write(db, body).await,
        OPERATION_PATH => run_operation(db, body).await,
        other => Err(refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::BadRequest,
            format!("no RPC endpoint at {other}"),
        )),
    }
}

async fn run_write(db: &ReplicatedDb, body: &Bytes) -> Result<Bytes, Refusal> {
    let request: WriteRequest = decode(body)?;
    let key = key_of(request.key, body)?;
    let Some(handler) = db.registry().entity_handler(&request.entity).cloned() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownEntity,
            request.entity,
        ));
    };
    let (op, model) = (request.op, request.model);
    let (outcome, txid) = execute_once(db, "", key, move |txn| {
        Box::pin(async move { handler.run(op, model, txn).await })
    })
    .await?;
    encode(&WriteResponse {
        v: WIRE_VERSION,
        txid,
        outcome,
    })
}

async fn run_operation(db: &ReplicatedDb, body: &Bytes) -> Result<Bytes, Refusal> {
    let request: OperationRequest = decode(body)?;
    let key = key_of(request.key, body)?;
    let Some(handler) = db.registry().operation_handler(&request.operation).cloned() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownEntity,
            request.operation,
        ));
    };
    let args = request.args;
    let (output, txid) = execute_once(db, &request.operation, key, move |txn| {
        Box::pin(async move { handler.run(args, txn).await })
    })
    .await?;
    encode(&OperationResponse {
        v: WIRE_VERSION,
        txid,
        output,
    })
}

/// Parses a request body of the supported wire version.
fn decode<T: DeserializeOwned + Versioned>(body: &[u8]) -> Result<T, Refusal> {
    let request: T = decode_json(body)?;
    check_version(request.version())?;
    Ok(request)
}

pub(super) fn decode_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("malformed request: {e}"),
        )
    })
}

pub(super) fn check_version(v: u32) -> Result<(), Refusal> {
    if v == WIRE_VERSION {
        return Ok(());
    }
    Err(refuse(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest,
        format!("wire version {v} is not supported; this node speaks {WIRE_VERSION}"),
    ))
}

fn key_of(key: Option<String>, body: &[u8]) -> Result<Option<Key>, Refusal> {
    key.map(|k| Key::new(k, body)).transpose().map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            e.to_string(),
        )
    })
}

pub(super) fn encode<T: serde::Serialize>(answer: &T) -> Result<Bytes, Refusal> {
    serde_json::to_vec(answer).map(Bytes::from).map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("encoding the answer: {e}"),
        )
    })
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

/// Runs `work` in a transaction if this node is the primary, and shapes a failure.
async fn execute<T, F>(db: &ReplicatedDb, operation: &str, work: F) -> Result<(T, u64), Refusal>
where
    F: for<'t> FnOnce(&'t sea_orm::DatabaseTransaction) -> BoxFut<'t, Result<T, ExecError>>,
{
    match transact(db, work).await? {
        Ok(done) => Ok(done),
        Err(e) => Err(exec_error(db, operation, e).await),
    }
}

/// [`execute`] at most once per idempotency key: runs `work` and records its result under
/// `key` in the same transaction. When that fails — the key was recorded by an earlier
/// attempt, or the work itself failed (a retried insert meeting the row its first attempt
/// wrote) — reads the record in a transaction of its own: a recorded result is the answer
/// (with the current TXID, which covers the recorded commit); without one, the failure is.
async fn execute_once<T, F>(
    db: &ReplicatedDb,
    operation: &str,
    key: Option<Key>,
    work: F,
) -> Result<(T, u64), Refusal>
where
    T: Serialize + DeserializeOwned + Send,
    F: for<'t> FnOnce(&'t sea_orm::DatabaseTransaction) -> BoxFut<'t, Result<T, ExecError>>
        + Send
        + 'static,
{
    let Some(key) = key else {
        return execute(db, operation, work).await;
    };
    let key = Arc::new(key);
    let (node, k) = (db.clone(), key.clone());
    let failure = match transact(db, move |txn| {
        Box::pin(async move { node.ledger().run_and_record(txn, &k, work(txn)).await })
    })
    .await?
    {
        Ok(done) => return Ok(done),
        Err(e) if e.may_come_from_a_repeat() => e,
        Err(e) => return Err(exec_error(db, operation, e).await),
    };
    let recall = transact(db, move |txn| {
        Box::pin(async move { idempotency::recall(txn, &key).await })
    });
    match recall.await? {
        Ok((Some(recorded), txid)) => {
            crate::observe::primary::replayed();
            Ok((recorded, txid))
        }
        Ok((None, _)) => Err(exec_error(db, operation, failure).await),
        Err(e) => Err(exec_error(db, operation, e).await),
    }
}

/// Runs `work` in a transaction on this node if it is primary: refuses when it is not, or
/// when the work panicked; otherwise the work's result.
async fn transact<T, F>(db: &ReplicatedDb, work: F) -> Result<Result<(T, u64), ExecError>, Refusal>
where
    F: for<'t> FnOnce(&'t sea_orm::DatabaseTransaction) -> BoxFut<'t, Result<T, ExecError>>,
{
    let role = db.role();
    if !role.writes_locally() {
        return Err(not_primary(role.primary().map(str::to_owned)));
    }
    // A panic (in a hook, say) drops the transaction, which rolls it back: say so, rather
    // than closing the connection and leaving the caller unsure.
    let work = in_transaction(db.committer(), work);
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|_| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the write panicked on the primary and was rolled back",
            )
        })
}

/// Shapes a failure into the answer. SQLite refusing the write the way a LiteFS replica
/// does is "not primary" only when a fresh look at the role agrees; otherwise, like any I/O
/// failure, it is answered as the database failure it is (never as "not primary", which the
/// caller would retry).
async fn exec_error(db: &ReplicatedDb, operation: &str, e: ExecError) -> Refusal {
    match db.resolve(e).await {
        ExecError::NotPrimary => {
            db.refresh_role();
            not_primary(None)
        }
        ExecError::ReadOnly(e) | ExecError::Io(e) => {
            let failure = io_failure(&e);
            let mut body = ErrorBody::new(ErrorCode::Rejected, failure.message.clone());
            body.db = Some(failure);
            Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: Box::new(body),
            }
        }
        ExecError::Wire(e) => refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            e.to_string(),
        ),
        ExecError::Args(e) => refuse(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, e),
        e @ ExecError::KeyReused(_) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::BadRequest,
            e.to_string(),
        ),
        ExecError::Db(e) => {
            let failure = DbFailure::from(&e);
            let mut body = ErrorBody::new(ErrorCode::Rejected, failure.message.clone());
            body.db = Some(failure);
            Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: Box::new(body),
            }
        }
        ExecError::Operation(error) => {
            let mut body = ErrorBody::new(ErrorCode::OperationFailed, operation);
            body.error = Some(error);
            Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: Box::new(body),
            }
        }
        // The endpoint runs calls without a deadline of its own, so `WriterBusy` comes only
        // from a local dispatch; listed for completeness.
        e @ (ExecError::Position(_)
        | ExecError::Stored(_)
        | ExecError::WriterBusy
        | ExecError::AlreadyRecorded) => {
            tracing::error!(error = %e, "the write was rolled back");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                e.to_string(),
            )
        }
    }
}

pub(super) fn refuse(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        body: Box::new(ErrorBody::new(code, message)),
    }
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

fn too_large(limit: usize) -> Refusal {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TooLarge,
        format!("request body is over the {limit}-byte limit"),
    )
}

fn not_primary(primary: Option<String>) -> Refusal {
    let mut body = ErrorBody::new(
        ErrorCode::NotPrimary,
        "this node is not the LiteFS primary; the write was not applied",
    );
    body.primary = primary;
    Refusal {
        status: StatusCode::CONFLICT,
        body: Box::new(body),
    }
}
