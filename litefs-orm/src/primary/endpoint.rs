//! The RPC endpoint: an Axum router that runs forwarded writes and operations on the primary.

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
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
    ErrorBody, ErrorCode, OperationRequest, OperationResponse, SUPPORTED_WIRE_VERSIONS,
    WIRE_VERSION, WriteRequest, WriteResponse,
};

/// The router that accepts forwarded writes at [`RPC_PATH`], operations at
/// [`OPERATION_PATH`] and batches of both at [`BATCH_PATH`]; merge it into the app's router
/// (or serve it on a port of its own).
/// Every node serves it: whichever is primary answers, the others refuse with "not primary".
/// It may be nested under a prefix (`Router::nest("/rpc", ...)`) when every node's
/// [`primary_url`](crate::Config::primary_url) carries the same prefix. An app with several
/// databases serves them all with one [`router_for`].
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
    router_for([db])
}

/// The router of [`router`] for several databases of one app (per tenant, or app and
/// queue), each with its own handle: every request names its database (the handle's
/// [`database_name`](ReplicatedDb::database_name)), and runs on that handle. Requests that
/// name none (from replicas of wire version 1) go to the first.
///
/// # Panics
///
/// With no handle, or two handles on one database: a mistake at start.
///
/// ```no_run
/// # async fn run(app_db: litefs_orm::ReplicatedDb, queue_db: litefs_orm::ReplicatedDb) {
/// let app = axum::Router::new().merge(litefs_orm::router_for([app_db, queue_db]));
/// # }
/// ```
pub fn router_for(dbs: impl IntoIterator<Item = ReplicatedDb>) -> Router {
    let mut named: Vec<(String, ReplicatedDb)> = Vec::new();
    for db in dbs {
        let name = db.database_name();
        assert!(
            named.iter().all(|(n, _)| *n != name),
            "litefs_orm::router_for: two handles on database {name:?}"
        );
        named.push((name, db));
    }
    assert!(
        !named.is_empty(),
        "litefs_orm::router_for: give at least one handle"
    );
    Router::new()
        .route(RPC_PATH, post(handle_write))
        .route(OPERATION_PATH, post(handle_operation))
        .route(BATCH_PATH, post(super::endpoint_batch::handle_batch))
        .with_state(Databases(Arc::new(named)))
}

/// The databases one endpoint serves, by name; the first serves requests naming none.
#[derive(Clone)]
pub(crate) struct Databases(Arc<Vec<(String, ReplicatedDb)>>);

impl Databases {
    /// The handle that admits requests and signs answers (all share the cluster's secret).
    pub(crate) fn front(&self) -> &ReplicatedDb {
        &self.0[0].1
    }

    /// The handle a request body is for: the database it names (read without decoding the
    /// rest when there are several), or the first.
    pub(crate) fn for_body(&self, body: &[u8]) -> Result<&ReplicatedDb, Refusal> {
        if self.0.len() == 1 {
            // The request's own decoding checks the name it gives.
            return Ok(self.front());
        }
        #[derive(serde::Deserialize)]
        struct Named {
            #[serde(default)]
            db: Option<String>,
        }
        match serde_json::from_slice::<Named>(body)
            .ok()
            .and_then(|n| n.db)
        {
            None => Ok(self.front()),
            Some(name) => self
                .0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, db)| db)
                .ok_or_else(|| unknown_database(&name)),
        }
    }
}

/// A request for a database this endpoint does not serve.
pub(crate) fn unknown_database(name: &str) -> Refusal {
    refuse(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownDatabase,
        format!("this endpoint serves no database {name:?}"),
    )
}

/// Refuses a request naming another database than `db`'s.
pub(crate) fn check_database(db: &ReplicatedDb, named: Option<&str>) -> Result<(), Refusal> {
    match named {
        Some(name) if name != db.database_name() => Err(unknown_database(name)),
        _ => Ok(()),
    }
}

async fn handle_write(State(dbs): State<Databases>, request: Request) -> Response {
    serve(&dbs, request, RPC_PATH).await
}

async fn handle_operation(State(dbs): State<Databases>, request: Request) -> Response {
    serve(&dbs, request, OPERATION_PATH).await
}

async fn serve(dbs: &Databases, request: Request, path: &str) -> Response {
    let front = dbs.front();
    let (nonce, body) = match admit(front, request, path).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused.observed().into_response(),
    };
    let result = match dbs.for_body(&body) {
        Ok(db) => {
            let ran = run_body(db, path, &body).await;
            if ran.is_ok() {
                db.stats().served();
            }
            ran
        }
        Err(refused) => Err(refused),
    };
    answer(front, &nonce, result)
}

/// The answer to an admitted request, signed for its nonce: only answers to requests that
/// passed authentication are signed, so that no one without the secret can have this node
/// sign an answer for a nonce of their choosing.
pub(super) fn answer(db: &ReplicatedDb, nonce: &str, result: Result<Bytes, Refusal>) -> Response {
    let (status, body) = match result {
        Ok(body) => (StatusCode::OK, body),
        Err(refused) => {
            let refused = refused.observed();
            match encode(&*refused.body) {
                Ok(body) => (refused.status, body),
                Err(unencodable) => return unencodable.into_response(),
            }
        }
    };
    let signature = db.verifier().sign_answer(nonce, status.as_u16(), &body);
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(value) = signature.and_then(|s| s.parse().ok()) {
        response
            .headers_mut()
            .insert(auth::ANSWER_SIGNATURE_HEADER, value);
    }
    response
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

/// What a request passes before its body is read as JSON: the signature headers present and
/// the timestamp fresh (before the body is even buffered), the size limit, then the
/// signature over path and body. Gives the request's nonce and body.
pub(super) async fn admit(
    db: &ReplicatedDb,
    request: Request,
    route: &str,
) -> Result<(String, Bytes), Refusal> {
    let limit = db.config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let unauthorized = |e: auth::AuthError| {
        refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            e.to_string(),
        )
    };
    let sig = signature(&parts.headers).map_err(unauthorized)?;
    db.verifier().check_fresh(&sig).map_err(unauthorized)?;
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
    // The path the replica signed is the whole path it asked for: the route's, behind the
    // prefix of a `Router::nest`, when there is one.
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(route, |uri| uri.path());
    db.verifier()
        .verify(&sig, path, &bytes)
        .map_err(unauthorized)?;
    Ok((sig.nonce, bytes))
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
    let (op, model) = (request.op, request.model);
    let (outcome, txid) = execute_once(db, "", key, move |txn| {
        Box::pin(async move { handler.run(op, model, txn).await })
    })
    .await?;
    encode(&WriteResponse { v, txid, outcome })
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
    let args = request.args;
    let (output, txid) = execute_once(db, &request.operation, key, move |txn| {
        Box::pin(async move { handler.run(args, txn).await })
    })
    .await?;
    encode(&OperationResponse { v, txid, output })
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

/// Runs `work` in a transaction, at most once per idempotency key: runs it and records its
/// result under `key` in the same transaction. When that fails — the key was recorded by an
/// earlier attempt, or the work itself failed (a retried insert meeting the row its first
/// attempt wrote) — reads the record in a transaction of its own: a recorded result is the
/// answer (with the current TXID, which covers the recorded commit); without one, the
/// failure is. A key that may be a repeat's ([`Key::may_be_repeat`]: a retry, a replay) is
/// looked up first, so that the work — hooks, an operation's body, and what they do outside
/// the database — does not run again when the record already answers it.
async fn execute_once<T, F>(
    db: &ReplicatedDb,
    operation: &str,
    key: Key,
    work: F,
) -> Result<(T, u64), Refusal>
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
        Ok(done) => return Ok(done),
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

/// The result recorded under `key`, read in a transaction of its own, with the current TXID.
async fn recall<T: DeserializeOwned + Send>(
    db: &ReplicatedDb,
    key: Arc<Key>,
) -> Result<Result<(Option<T>, u64), ExecError>, Refusal> {
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
