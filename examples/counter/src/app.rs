//! The counter's routes (counted views, counts as JSON, health) and litefs-orm's RPC router.
//!
//! Every node serves the RPC router, so whichever is primary runs the views forwarded to it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use litefs_orm::consistency::ConsistencyLayer;
use litefs_orm::{Config, DbFailure, Error, OpError, Registry, ReplicatedDb, Role, migrate};
use sea_orm::EntityTrait;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::cluster::Rates;
use crate::html::{self, Committed, CountedView};
use crate::page_view::{self, CountView};
use crate::{cluster, cluster_page, telemetry};
use metrics_exporter_prometheus::PrometheusHandle;

/// What every handler shares: the database handle, this node's name, and what the cluster
/// views need.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The replicated database: local reads, operations run on the primary.
    pub db: ReplicatedDb,
    /// This node's name, shown on every page.
    pub node: Arc<str>,
    /// The other nodes' base URLs (`COUNTER_PEERS`), asked for their status.
    pub peers: Arc<[String]>,
    /// This node's forwarded-call rates.
    pub rates: Arc<Rates>,
    /// Renders `/metrics`; `None` when the process installed no recorder.
    pub metrics: Option<PrometheusHandle>,
    /// Asks peers for their status.
    pub client: reqwest::Client,
}

impl AppState {
    /// The state of node `node` on `db`, knowing of `peers`.
    pub fn new(
        db: ReplicatedDb,
        node: &str,
        peers: Vec<String>,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        AppState {
            db,
            node: Arc::from(node),
            peers: peers.into(),
            rates: Arc::default(),
            metrics,
            client: reqwest::Client::new(),
        }
    }
}

/// The registry of every node: the one operation the counter runs on the primary.
pub fn registry() -> Registry {
    Registry::new().operation::<CountView>()
}

/// Opens the database and prepares its schema: the primary (or a standalone node) applies
/// the migrations, a replica waits until they have replicated.
pub async fn open(config: Config) -> anyhow::Result<ReplicatedDb> {
    let path = config.db_path();
    let db = ReplicatedDb::connect(config, registry())
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let report = migrate::prepare::<migrations::Migrator>(&db)
        .await
        .context("preparing the schema")?;
    tracing::info!("{report}");
    Ok(db)
}

/// The app's routes merged with litefs-orm's RPC router. The app's routes sit behind
/// litefs-orm's consistency layer: a request carrying the token of a view this client
/// counted (a cookie for the browser, a header for API clients) is answered, by any node,
/// only once that node has the view.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/pages/{name}", get(page))
        .route("/pages/{name}/views", post(count_and_redirect))
        .route("/pages/{name}/count", get(show_count))
        .route("/api/pages/{name}/views", post(api_count_view))
        .route("/api/counts", get(counts))
        .route("/health", get(health))
        .route("/metrics", get(telemetry::metrics))
        .route("/api/node", get(cluster::node))
        .route("/api/cluster", get(cluster::cluster))
        .route("/cluster", get(cluster_page::page))
        .with_state(state.clone())
        .layer(ConsistencyLayer::new(state.db.clone()))
        .merge(litefs_orm::router(state.db))
}

/// Serves the app on `listener` until `shutdown` completes, then lets requests in flight
/// finish; samples the forwarded-call rates meanwhile.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (rates, db) = (state.rates.clone(), state.db.clone());
    let sampler = tokio::spawn(async move { rates.sample(db).await });
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    sampler.abort();
    served
}

async fn home(State(state): State<AppState>) -> Response {
    count_view(&state, "home").await
}

async fn page(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if let Err(why) = html::check_page_name(&name) {
        let body = html::error_page("No such page", &why, Committed::No, &state.node);
        return (StatusCode::BAD_REQUEST, Html(body)).into_response();
    }
    count_view(&state, &name).await
}

/// `POST /pages/{name}/views` (the page's form): counts one view, then sends the browser
/// to `GET /pages/{name}/count` (303), which shows it — on whichever node serves that
/// request, since the response's cookie makes that node wait for the view.
async fn count_and_redirect(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if let Err(why) = html::check_page_name(&name) {
        let body = html::error_page("No such page", &why, Committed::No, &state.node);
        return (StatusCode::BAD_REQUEST, Html(body)).into_response();
    }
    let counted = state.db.run(CountView { page: name.clone() }).await;
    match counted {
        Ok(_) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("/pages/{name}/count"))],
        )
            .into_response(),
        Err(e) => failure(&state, &name, &e),
    }
}

/// `GET /pages/{name}/count`: the page's count as this node's replica has it, counting
/// nothing.
async fn show_count(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if let Err(why) = html::check_page_name(&name) {
        let body = html::error_page("No such page", &why, Committed::No, &state.node);
        return (StatusCode::BAD_REQUEST, Html(body)).into_response();
    }
    match page_view::Entity::find_by_id(name.clone())
        .one(&state.db)
        .await
    {
        Ok(row) => {
            let role = state.db.role();
            Html(html::counted_page(&CountedView {
                page: &name,
                count: row.map_or(0, |r| r.count),
                node: &state.node,
                role: &role,
                txid: state.db.local_position().map(|p| p.txid),
            }))
            .into_response()
        }
        Err(e) => {
            let message = e.to_string();
            let body = html::error_page(
                "Cannot read the count",
                &message,
                Committed::No,
                &state.node,
            );
            (StatusCode::INTERNAL_SERVER_ERROR, Html(body)).into_response()
        }
    }
}

/// `POST /api/pages/{name}/views`: counts one view; answers the new count as JSON, with
/// the view's token in the `x-litefs-orm-token` header for the client's next request.
async fn api_count_view(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if let Err(why) = html::check_page_name(&name) {
        let body = serde_json::json!({ "error": why });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    match state.db.run(CountView { page: name.clone() }).await {
        Ok(count) => {
            let body = serde_json::json!({ "page": name, "count": count, "node": &*state.node });
            Json(body).into_response()
        }
        Err(e) => {
            let outcome = Outcome::of(&e);
            tracing::warn!(node = %state.node, page = %name, status = outcome.status.as_u16(), error = %outcome.message, "view failed");
            let body = serde_json::json!({
                "error": outcome.message,
                "committed": outcome.committed.as_str(),
                "node": &*state.node,
            });
            outcome.respond(Json(body))
        }
    }
}

/// Counts one view of `page` on the primary and renders the count it returned.
async fn count_view(state: &AppState, page: &str) -> Response {
    let started = Instant::now();
    let result = state
        .db
        .run(CountView {
            page: page.to_owned(),
        })
        .await;
    let role = state.db.role();
    match result {
        Ok(count) => {
            tracing::info!(
                node = %state.node,
                page,
                count,
                role = %role,
                ms = %format_args!("{:.1}", started.elapsed().as_secs_f64() * 1e3),
                "view counted"
            );
            Html(html::counted_page(&CountedView {
                page,
                count,
                node: &state.node,
                role: &role,
                txid: state.db.local_position().map(|p| p.txid),
            }))
            .into_response()
        }
        Err(e) => failure(state, page, &e),
    }
}

/// The error page of a view that could not be counted.
fn failure(state: &AppState, page: &str, e: &OpError<DbFailure>) -> Response {
    let outcome = Outcome::of(e);
    tracing::warn!(node = %state.node, page, status = outcome.status.as_u16(), error = %outcome.message, "view failed");
    let page = html::error_page(
        outcome.title,
        &outcome.message,
        outcome.committed,
        &state.node,
    );
    outcome.respond(Html(page))
}

/// What a failed view tells its client, on the page and in the API alike: 503 with
/// `Retry-After` when the cluster is the cause and asking again will do (no primary, a
/// primary unreachable, stalled or changing, replication behind), 500 otherwise; and
/// whether the view was counted.
struct Outcome {
    status: StatusCode,
    title: &'static str,
    message: String,
    committed: Committed,
}

impl Outcome {
    fn of(e: &OpError<DbFailure>) -> Outcome {
        let (status, title, message, committed) = match e {
            OpError::Failed(f) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The view was not counted",
                format!("the primary's database refused it: {f}"),
                Committed::No,
            ),
            OpError::Replicated(err @ Error::ReplicationTimeout { .. }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Counted, but this node is behind",
                format!(
                    "The view was counted on the primary, but this node has not caught up with it yet: {err}. Reload in a moment."
                ),
                Committed::Yes,
            ),
            OpError::Replicated(
                err @ (Error::NoPrimary { .. }
                | Error::NotPrimary { .. }
                | Error::Transport { .. }
                | Error::WriterBusy
                | Error::WriteStalled { .. }
                | Error::CommitNotRecorded { .. }
                | Error::Io(_)),
            ) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The primary could not count the view",
                format!("{err}. Reload in a moment."),
                committed_state(err),
            ),
            OpError::Replicated(err) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The view was not counted",
                err.to_string(),
                committed_state(err),
            ),
        };
        Outcome {
            status,
            title,
            message,
            committed,
        }
    }

    /// `body` with this outcome's status (and `Retry-After: 1` on a 503).
    fn respond(&self, body: impl IntoResponse) -> Response {
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn committed_state(e: &Error) -> Committed {
    if e.is_committed() {
        Committed::Yes
    } else if e.may_be_committed() {
        Committed::Maybe
    } else {
        Committed::No
    }
}

/// This node and its view of the cluster, in the JSON answers.
#[derive(Debug, Serialize)]
struct NodeInfo {
    node: String,
    role: String,
    /// The primary's name; `null` while no primary is known.
    primary: Option<String>,
    /// This node's LiteFS TXID; `null` when standalone.
    txid: Option<u64>,
}

impl NodeInfo {
    fn of(state: &AppState) -> Self {
        let role = state.db.role();
        let primary = match &role {
            Role::Standalone | Role::Primary => Some(state.node.to_string()),
            Role::Replica { primary } => Some(primary.clone()),
            Role::NoPrimary => None,
        };
        NodeInfo {
            node: state.node.to_string(),
            role: role.to_string(),
            primary,
            txid: state.db.local_position().map(|p| p.txid),
        }
    }
}

/// `GET /api/counts`: every page's count as this node's replica has it.
async fn counts(State(state): State<AppState>) -> Response {
    #[derive(Serialize)]
    struct Counts {
        #[serde(flatten)]
        node: NodeInfo,
        counts: BTreeMap<String, i64>,
    }
    match page_view::Entity::find().all(&state.db).await {
        Ok(rows) => Json(Counts {
            node: NodeInfo::of(&state),
            counts: rows.into_iter().map(|r| (r.page, r.count)).collect(),
        })
        .into_response(),
        Err(e) => {
            tracing::error!(node = %state.node, error = %e, "cannot read the counts");
            let body = serde_json::json!({ "error": format!("cannot read the counts: {e}") });
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}

/// `GET /health`: 200 while this node can read its database, 503 otherwise.
async fn health(State(state): State<AppState>) -> Response {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        #[serde(flatten)]
        node: NodeInfo,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    }
    let (status, code, error) = match page_view::Entity::find().one(&state.db).await {
        Ok(_) => ("ok", StatusCode::OK, None),
        Err(e) => (
            "unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            Some(e.to_string()),
        ),
    };
    let body = Health {
        status,
        node: NodeInfo::of(&state),
        error,
    };
    (code, Json(body)).into_response()
}
