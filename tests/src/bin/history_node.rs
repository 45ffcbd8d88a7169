//! One node of the failover tests' app, as its own process: writes values through
//! litefs-orm from any node and lists what its replica holds, so that a test can kill it
//! together with its LiteFS and check the history of every write.
//!
//! Configured like any litefs-orm app (`LITEFS_ORM_*`), plus `HISTORY_ADDR` (where to
//! listen) and `HISTORY_NODE` (its name, stored with each value it writes).
//!
//! - `POST /write/{value}`: writes one entry; 200 `{"txid": n}`, or an error status with
//!   `{"kind", "may_be_committed", "committed", "txid", "message"}` (`txid` when the error
//!   names the commit).
//! - `GET /values`: every value this node's replica holds, with how many rows hold it.
//! - `GET /health`: 200 once the database is open.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use litefs_orm::consistency::capture;
use litefs_orm::{Config, Error, Registry, ReplicatedActiveModel, ReplicatedDb};
use litefs_orm_tests::entities::entry;
use sea_orm::{ConnectionTrait, EntityTrait};

#[derive(Clone)]
struct Node {
    db: ReplicatedDb,
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::var("HISTORY_ADDR")?;
    let name = std::env::var("HISTORY_NODE")?;
    let db = ReplicatedDb::connect(
        Config::from_env()?,
        Registry::new().entity::<entry::Entity>(),
    )
    .await?;
    if db.role().writes_locally() {
        db.execute_unprepared(entry::SCHEMA).await?;
    }
    let app = axum::Router::new()
        .route("/write/{value}", post(write))
        .route("/values", get(values))
        .route("/health", get(|| async { "ok" }))
        .with_state(Node {
            db: db.clone(),
            name,
        })
        .merge(litefs_orm::router(db));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "history node listening");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn write(State(node): State<Node>, Path(value): Path<String>) -> Response {
    let (written, tokens) =
        capture(entry::new(&value, &node.name).insert_replicated(&node.db)).await;
    match written {
        Ok(_) => {
            let txid = tokens.get(node.db.database_name()).map(|t| t.txid());
            Json(serde_json::json!({ "txid": txid })).into_response()
        }
        Err(e) => failure(&e),
    }
}

fn failure(e: &Error) -> Response {
    let status = match e {
        Error::Rejected(_) | Error::Protocol(_) | Error::Config(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let txid = match e {
        Error::ReplicationTimeout { txid, .. } | Error::NotDurable { txid, .. } => Some(*txid),
        Error::AnswerMismatch { txid, .. } => *txid,
        _ => None,
    };
    let body = serde_json::json!({
        "kind": e.kind(),
        "may_be_committed": e.may_be_committed(),
        "committed": e.is_committed(),
        "txid": txid,
        "message": e.to_string(),
    });
    (status, Json(body)).into_response()
}

async fn values(State(node): State<Node>) -> Response {
    let read = tokio::time::timeout(Duration::from_secs(10), entry::Entity::find().all(&node.db));
    match read.await {
        Ok(Ok(rows)) => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for row in rows {
                *counts.entry(row.value).or_default() += 1;
            }
            Json(counts).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the read timed out").into_response(),
    }
}
