//! The RPC endpoint: an Axum router that runs forwarded writes and operations on the primary.

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use std::sync::Arc;

use crate::config::{BATCH_PATH, OPERATION_PATH, POSITIONS_PATH, RPC_PATH};
use crate::db::ReplicatedDb;
use crate::protocol::auth::{self, Signature};
use crate::protocol::wire::{ErrorBody, ErrorCode};

pub(crate) use super::run::{check_version, decode_json, encode, run_body};

/// The router that accepts forwarded writes at [`RPC_PATH`], operations at
/// [`OPERATION_PATH`], batches of both at [`BATCH_PATH`] and replicas' position reports at
/// [`POSITIONS_PATH`]; merge it into the app's router
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
        let name = db.database_name().to_owned();
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
        .route(POSITIONS_PATH, post(crate::durability::handle_positions))
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

    /// The handle of database `name`.
    pub(crate) fn by_name(&self, name: &str) -> Option<&ReplicatedDb> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, db)| db)
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
pub(crate) fn answer(db: &ReplicatedDb, nonce: &str, result: Result<Bytes, Refusal>) -> Response {
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
pub(crate) async fn admit(
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

pub(crate) fn refuse(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        body: Box::new(ErrorBody::new(code, message)),
    }
}

/// The authentication headers of a request.
pub(crate) fn signature(headers: &HeaderMap) -> Result<Signature, auth::AuthError> {
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
