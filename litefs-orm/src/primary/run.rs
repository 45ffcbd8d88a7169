//! Running an admitted request on this node: decode it, find its entity or operation, run
//! it at most once per idempotency key in a transaction, and shape the answer or refusal.

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use super::endpoint::{Refusal, check_database, refuse};
use crate::BoxFut;
use crate::config::{OPERATION_PATH, RPC_PATH};
use crate::db::ReplicatedDb;
use crate::durability::Durability;
use crate::error::DbFailure;
use crate::primary::executor::{ExecError, in_transaction_until, io_failure};
use crate::primary::idempotency::{self, Key};
use crate::protocol::wire::{
    ErrorBody, ErrorCode, OperationRequest, OperationResponse, SUPPORTED_WIRE_VERSIONS,
    WIRE_VERSION, WriteRequest, WriteResponse,
};

/// Runs an admitted request body on this node and encodes the answer: decode, look up the
/// entity or operation, run it at most once per idempotency key in a transaction.
///
/// What the RPC endpoint does once a request is admitted — and what a dispatch does locally when an
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
    check_database(db, request.db.as_deref())?;
    let key = key_of(request.key, body)?;
    let v = request.v;
    let Some(handler) = db.registry().entity_handler(&request.entity).cloned() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownEntity,
            request.entity,
        ));
    };
    let durability = requested_durability(db, request.durability.as_deref())?;
    let (op, model) = (request.op, request.model);
    let ((outcome, run), txid) = execute_once(db, "", key, move |txn| {
        Box::pin(async move { handler.run(op, model, txn).await })
    })
    .await?;
    let not_durable = db.wait_durable_as(txid, durability).await.err();
    encode(&WriteResponse {
        v,
        txid,
        run,
        not_durable,
        outcome,
    })
}

async fn run_operation(db: &ReplicatedDb, body: &Bytes) -> Result<Bytes, Refusal> {
    let request: OperationRequest = decode(body)?;
    check_database(db, request.db.as_deref())?;
    let key = key_of(request.key, body)?;
    let v = request.v;
    let Some(handler) = db.registry().operation_handler(&request.operation).cloned() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownEntity,
            request.operation,
        ));
    };
    let durability = requested_durability(db, request.durability.as_deref())?;
    let args = request.args;
    let ((output, run), txid) = execute_once(db, &request.operation, key, move |txn| {
        Box::pin(async move { handler.run(args, txn).await })
    })
    .await?;
    let not_durable = db.wait_durable_as(txid, durability).await.err();
    encode(&OperationResponse {
        v,
        txid,
        run,
        not_durable,
        output,
    })
}

/// The durability a request asks for, or the primary's own when it asks for none.
fn requested_durability(db: &ReplicatedDb, asked: Option<&str>) -> Result<Durability, Refusal> {
    match asked {
        None => Ok(db.config().durability),
        Some(d) => d.parse().map_err(|e: crate::Error| {
            refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                e.to_string(),
            )
        }),
    }
}

/// Parses a request body of the supported wire version.
fn decode<T: DeserializeOwned + Versioned>(body: &[u8]) -> Result<T, Refusal> {
    let request: T = decode_json(body)?;
    check_version(request.version())?;
    Ok(request)
}

pub(crate) fn decode_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("malformed request: {e}"),
        )
    })
}

pub(crate) fn check_version(v: u32) -> Result<(), Refusal> {
    if SUPPORTED_WIRE_VERSIONS.contains(&v) {
        return Ok(());
    }
    Err(refuse(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest,
        format!(
            "wire version {v} is not supported; this node speaks versions {}..={WIRE_VERSION}",
            SUPPORTED_WIRE_VERSIONS.start()
        ),
    ))
}

fn key_of(key: String, body: &[u8]) -> Result<Key, Refusal> {
    Key::new(key, body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            e.to_string(),
        )
    })
}

pub(crate) fn encode<T: serde::Serialize>(answer: &T) -> Result<Bytes, Refusal> {
    serde_json::to_vec(answer).map(Bytes::from).map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("encoding the answer: {e}"),
        )
    })
}

/// A call's result with the run that recorded it (`None` for a record older than runs).
type WithRun<T> = (T, Option<String>);

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

/// Runs `work` in a transaction, at most once per idempotency key: runs it and records its
/// result under `key` in the same transaction. When that fails — the key was recorded by an
/// earlier attempt, or the work itself failed (a retried insert meeting the row its first
/// attempt wrote) — reads the record in a transaction of its own: a recorded result is the
/// answer (with the current TXID, which covers the recorded commit); without one, the
/// failure is. A key that may be a repeat's ([`Key::may_be_repeat`]: a retry, a replay) is
/// looked up first, so that the work — hooks, an operation's body, and what they do outside
/// the database — does not run again when the record already answers it. Returns the result
/// with the run that recorded it (see [`idempotency::new_run`]), and the TXID.
async fn execute_once<T, F>(
    db: &ReplicatedDb,
    operation: &str,
    key: Key,
    work: F,
) -> Result<(WithRun<T>, u64), Refusal>
where
    T: Serialize + DeserializeOwned + Send,
    F: for<'t> FnOnce(&'t sea_orm::DatabaseTransaction) -> BoxFut<'t, Result<T, ExecError>>
        + Send
        + 'static,
{
    let key = Arc::new(key);
    if key.may_be_repeat() {
        match recall(db, key.clone()).await? {
            Ok((Some(recorded), txid)) => {
                crate::observe::primary::replayed();
                return Ok((recorded, txid));
            }
            Ok((None, _)) => {}
            Err(e) => return Err(exec_error(db, operation, e).await),
        }
    }
    let (node, k) = (db.clone(), key.clone());
    let failure = match transact(db, move |txn| {
        Box::pin(async move { node.ledger().run_and_record(txn, &k, work(txn)).await })
    })
    .await?
    {
        Ok(((value, run), txid)) => return Ok(((value, Some(run)), txid)),
        Err(e) if e.may_come_from_a_repeat() => e,
        Err(e) => return Err(exec_error(db, operation, e).await),
    };
    match recall(db, key).await? {
        Ok((Some(recorded), txid)) => {
            crate::observe::primary::replayed();
            Ok((recorded, txid))
        }
        Ok((None, _)) => Err(exec_error(db, operation, failure).await),
        Err(e) => Err(exec_error(db, operation, e).await),
    }
}

/// The result recorded under `key` and its run, read in a transaction of its own, with the
/// current TXID.
async fn recall<T: DeserializeOwned + Send>(
    db: &ReplicatedDb,
    key: Arc<Key>,
) -> Result<Result<(Option<WithRun<T>>, u64), ExecError>, Refusal> {
    transact(db, move |txn| {
        Box::pin(async move { idempotency::recall(txn, &key).await })
    })
    .await
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
    // than closing the connection and leaving the caller unsure. The call ends at this
    // node's write deadline even when its database does not answer.
    db.fresh_connections().await;
    let deadline = std::time::Instant::now() + db.config().write_timeout;
    let work = in_transaction_until(db.committer(), Some(deadline), work);
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
        e @ (ExecError::WriterBusy | ExecError::Stalled { committing: false }) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Stalled,
            e.to_string(),
        ),
        e @ (ExecError::Stalled { committing: true } | ExecError::Unrecorded { .. }) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Uncertain,
            e.to_string(),
        ),
        e @ (ExecError::Position(_) | ExecError::Stored(_) | ExecError::AlreadyRecorded) => {
            tracing::error!(error = %e, "the write was rolled back");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                e.to_string(),
            )
        }
    }
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
