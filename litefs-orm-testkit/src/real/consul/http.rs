//! The lease server's HTTP routes: the part of Consul's `/v1/session`, `/v1/kv` and
//! `/v1/catalog` API that LiteFS calls.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use serde_json::Value;

use super::state::{Call, State as LeaseState};
use super::wire;

/// What every node's router shares: the one state.
pub(crate) type Shared = Arc<Mutex<LeaseState>>;

/// Locks the state, even after a panic elsewhere poisoned it.
pub(crate) fn lock(state: &Shared) -> MutexGuard<'_, LeaseState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A router's state: the shared lease state and the node whose gate leads to it.
#[derive(Clone)]
struct Node {
    state: Shared,
    index: usize,
}

impl Node {
    fn call(&self) -> Call {
        Call {
            now: Instant::now(),
            via: Some(self.index),
        }
    }
}

/// The router behind node `index`'s gate.
pub(crate) fn router(state: Shared, index: usize) -> Router {
    let node = Node { state, index };
    Router::new()
        .route("/v1/session/create", put(create))
        .route("/v1/session/renew/{id}", put(renew))
        .route("/v1/session/destroy/{id}", put(destroy))
        .route("/v1/kv/{*key}", put(kv_put).get(kv_get).delete(kv_delete))
        .route("/v1/catalog/register", put(register))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(node.clone(), consul_headers))
        .with_state(node)
}

/// Logs the request and adds the headers the Go client reads on every answer.
async fn consul_headers(State(node): State<Node>, req: Request, next: Next) -> Response {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let mut resp = next.run(req).await;
    let index = lock(&node.state).index();
    tracing::debug!(node = node.index, %method, %uri, status = %resp.status(), "consul request");
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&index.to_string()) {
        headers.insert("X-Consul-Index", v);
    }
    headers.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    headers.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    resp
}

fn json(v: &Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

async fn create(State(node): State<Node>, body: Bytes) -> Response {
    tracing::debug!(node = node.index, body = %String::from_utf8_lossy(&body), "session create");
    let spec = match wire::session_spec(&body) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let id = wire::new_id();
    lock(&node.state).create_session(id.clone(), spec, node.call());
    json(&serde_json::json!({ "ID": id }))
}

async fn renew(State(node): State<Node>, Path(id): Path<String>) -> Response {
    let mut state = lock(&node.state);
    match state.renew(&id, node.call()) {
        Some(s) => json(&Value::Array(vec![wire::session_json(&s, state.index())])),
        None => (
            StatusCode::NOT_FOUND,
            format!("Session id '{id}' not found"),
        )
            .into_response(),
    }
}

async fn destroy(State(node): State<Node>, Path(id): Path<String>) -> Response {
    lock(&node.state).destroy(&id, node.call());
    json(&Value::Bool(true))
}

async fn kv_get(State(node): State<Node>, Path(key): Path<String>) -> Response {
    let now = Instant::now();
    let mut state = lock(&node.state);
    match state.get(&key, now) {
        Some(e) => json(&Value::Array(vec![wire::entry_json(&key, e)])),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn kv_put(
    State(node): State<Node>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let param = |name: &str| {
        query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then(|| v.to_owned())
            })
    };
    let flags = match param("flags").map(|f| f.parse::<u64>()) {
        None => 0,
        Some(Ok(f)) => f,
        Some(Err(_)) => return (StatusCode::BAD_REQUEST, "bad flags").into_response(),
    };
    let value = body.to_vec();
    let call = node.call();
    let mut state = lock(&node.state);
    let done = if let Some(session) = param("acquire") {
        state.acquire(&key, &session, value, flags, call).is_ok()
    } else if let Some(session) = param("release") {
        state.release(&key, &session, value, flags, call).is_ok()
    } else {
        state.put(&key, value, flags, call);
        true
    };
    json(&Value::Bool(done))
}

async fn kv_delete(State(node): State<Node>, Path(key): Path<String>) -> Response {
    lock(&node.state).delete(&key, node.call());
    json(&Value::Bool(true))
}

async fn register(State(node): State<Node>, body: Bytes) -> Response {
    tracing::debug!(node = node.index, body = %String::from_utf8_lossy(&body), "catalog register");
    json(&Value::Bool(true))
}

async fn not_found(req: Request) -> Response {
    let what = format!("no route for {} {}", req.method(), req.uri());
    (StatusCode::NOT_FOUND, what).into_response()
}
