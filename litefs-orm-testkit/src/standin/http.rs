//! LiteFS's HTTP API per node: `GET /info` and the `GET /events` stream.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{self, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::state::Shared;
use litefs_orm::litefs::{Event, NodeInfo};

#[derive(Clone)]
struct NodeState {
    shared: Arc<Shared>,
    index: usize,
}

/// The router of node `index`.
pub(crate) fn router(shared: Arc<Shared>, index: usize) -> Router {
    Router::new()
        .route("/info", get(info))
        .route("/events", get(events))
        .with_state(NodeState { shared, index })
}

async fn info(State(s): State<NodeState>) -> axum::Json<NodeInfo> {
    axum::Json(s.shared.info(s.index))
}

fn line(event: &Event) -> Bytes {
    let mut buf = serde_json::to_vec(event).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

/// `init` first, then every later event of this node, one JSON object per line. Like LiteFS, a
/// subscriber that falls too far behind is disconnected.
async fn events(State(s): State<NodeState>) -> Response {
    // Subscribe before building `init` so no change between the two is lost.
    let rx = s.shared.nodes[s.index].events.subscribe();
    let init = line(&s.shared.init_event(s.index));
    let rest = stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(event) => Some((line(&event), rx)),
            Err(RecvError::Lagged(_) | RecvError::Closed) => None,
        }
    });
    let body = stream::once(async move { init })
        .chain(rest)
        .map(Ok::<_, Infallible>);
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}
