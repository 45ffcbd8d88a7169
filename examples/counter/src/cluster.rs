//! The cluster as this node sees it: its own status (`GET /api/node`) and every node it
//! knows of (`GET /api/cluster`) — itself, its configured peers (`COUNTER_PEERS`) and the
//! primary — each asked for its `/api/node` with a short timeout.
//!
//! How far behind a node is comes from comparing TXIDs across nodes: the primary's TXID
//! (as the primary reports it) minus the node's. A node that does not answer in time is
//! listed as unreachable.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use litefs_orm::{Durability, NodeStatus, ReplicatedDb};
use serde::{Deserialize, Serialize};

use crate::app::AppState;

/// How long a peer has to answer `/api/node`.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the forwarded-call counts are sampled for the rates.
const RATE_EVERY: Duration = Duration::from_secs(1);
/// The rates are averaged over the last this many samples.
const RATE_WINDOW: usize = 10;

/// This node's status, as `GET /api/node` answers it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's name.
    pub node: String,
    /// Its role, as text.
    pub role: String,
    /// True on the primary (and standalone).
    pub is_primary: bool,
    /// Its LiteFS TXID (`null` standalone).
    pub txid: Option<u64>,
    /// LiteFS's `.lag` in milliseconds on a replica.
    pub lag_ms: Option<u64>,
    /// Forwarded calls this node sent per second, over the last seconds.
    pub forwarded_per_second: f64,
    /// Forwarded calls this node served as the primary per second.
    pub served_per_second: f64,
    /// The durability its writes are acknowledged with (`local`, `candidates`, a count).
    #[serde(default)]
    pub durability: String,
    /// On the primary: live candidates reporting their position to it, waited for by
    /// `candidates` durability.
    #[serde(default)]
    pub peers_waited_for: usize,
    /// On the primary: nodes set aside after missing a durability bound.
    #[serde(default)]
    pub peers_set_aside: usize,
}

impl NodeView {
    /// `status` of node `node`, with its rates.
    fn of(node: &str, durability: Durability, status: &NodeStatus, rates: (f64, f64)) -> Self {
        NodeView {
            node: node.to_owned(),
            role: status.role.to_string(),
            is_primary: status.role.writes_locally(),
            txid: status.txid,
            lag_ms: status.lag.map(|d| d.as_millis() as u64),
            forwarded_per_second: rates.0,
            served_per_second: rates.1,
            durability: durability.to_string(),
            peers_waited_for: status
                .peers
                .iter()
                .filter(|p| p.live && !p.set_aside && p.candidate)
                .count(),
            peers_set_aside: status.peers.iter().filter(|p| p.set_aside).count(),
        }
    }
}

/// One node in `GET /api/cluster`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterNode {
    /// Where it was asked (`self` for this node).
    pub url: String,
    /// Its status; `null` when it did not answer.
    pub status: Option<NodeView>,
    /// Why it is unreachable.
    pub error: Option<String>,
    /// Transactions it is behind the primary; `null` when unknown.
    pub behind: Option<u64>,
}

/// `GET /api/cluster`: this node and every node it knows of.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    /// The primary's TXID, when the primary answered.
    pub primary_txid: Option<u64>,
    /// Every node, this one first.
    pub nodes: Vec<ClusterNode>,
}

/// Forwarded-call counts sampled each second, for the rates.
#[derive(Debug, Default)]
pub struct Rates {
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
}

impl Rates {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, u64, u64)>> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a sample of the counts `forwarded` and `served` taken `at`.
    pub fn push(&self, at: Instant, forwarded: u64, served: u64) {
        let mut samples = self.lock();
        samples.push_back((at, forwarded, served));
        while samples.len() > RATE_WINDOW {
            samples.pop_front();
        }
    }

    /// Forwarded and served calls per second over the samples (0 before two samples).
    pub fn per_second(&self) -> (f64, f64) {
        let samples = self.lock();
        match (samples.front(), samples.back()) {
            (Some(first), Some(last)) if last.0 > first.0 => {
                let secs = (last.0 - first.0).as_secs_f64();
                (
                    last.1.saturating_sub(first.1) as f64 / secs,
                    last.2.saturating_sub(first.2) as f64 / secs,
                )
            }
            _ => (0.0, 0.0),
        }
    }

    /// Samples `db`'s counts every second, forever.
    pub async fn sample(&self, db: ReplicatedDb) {
        let mut tick = tokio::time::interval(RATE_EVERY);
        loop {
            tick.tick().await;
            let status = db.status();
            self.push(Instant::now(), status.forwarded, status.served);
        }
    }
}

/// This node's view of itself.
pub fn this_node(state: &AppState) -> NodeView {
    NodeView::of(
        &state.node,
        state.db.durability(),
        &state.db.status(),
        state.rates.per_second(),
    )
}

/// `GET /api/node`.
pub async fn node(State(state): State<AppState>) -> Json<NodeView> {
    Json(this_node(&state))
}

/// `GET /api/cluster`.
pub async fn cluster(State(state): State<AppState>) -> Json<ClusterView> {
    Json(gather(&state).await)
}

/// The base URLs to ask: the configured peers, and the primary (from
/// `LITEFS_ORM_PRIMARY_URL`, which points at the primary's app), without repeats.
fn peer_urls(state: &AppState) -> Vec<String> {
    let mut urls: Vec<String> = state.peers.iter().map(|u| base(u)).collect();
    if let Some(primary) = state.db.role().primary() {
        let rpc = state.db.config().primary_rpc_url(primary);
        let url = base(rpc.strip_suffix(litefs_orm::RPC_PATH).unwrap_or(&rpc));
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

fn base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// Asks every peer for its status at once, and works out how far behind each node is.
pub async fn gather(state: &AppState) -> ClusterView {
    let me = this_node(state);
    let client = &state.client;
    let asks = peer_urls(state).into_iter().map(|url| async move {
        match ask(client, &url).await {
            Ok(view) => ClusterNode {
                url,
                status: Some(view),
                error: None,
                behind: None,
            },
            Err(e) => ClusterNode {
                url,
                status: None,
                error: Some(e),
                behind: None,
            },
        }
    });
    let peers = futures_util::future::join_all(asks).await;
    let mut nodes = vec![ClusterNode {
        url: "self".to_owned(),
        status: Some(me.clone()),
        error: None,
        behind: None,
    }];
    // A peer list may name this node too: it is listed once, as itself.
    nodes.extend(
        peers
            .into_iter()
            .filter(|n| n.status.as_ref().is_none_or(|s| s.node != me.node)),
    );
    let primary_txid = nodes
        .iter()
        .filter_map(|n| n.status.as_ref())
        .find(|s| s.is_primary)
        .and_then(|s| s.txid);
    for n in &mut nodes {
        n.behind = primary_txid
            .zip(n.status.as_ref().and_then(|s| s.txid))
            .map(|(p, t)| p.saturating_sub(t));
    }
    ClusterView {
        node: me.node,
        primary_txid,
        nodes,
    }
}

async fn ask(client: &reqwest::Client, url: &str) -> Result<NodeView, String> {
    let response = client
        .get(format!("{url}/api/node"))
        .timeout(PEER_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    response
        .json()
        .await
        .map_err(|e| format!("unreadable answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_the_increase_over_the_samples_per_second() {
        let rates = Rates::default();
        let t = Instant::now();
        rates.push(t, 10, 0);
        rates.push(t + Duration::from_secs(2), 16, 4);
        assert_eq!(rates.per_second(), (3.0, 2.0));
    }

    #[test]
    fn one_sample_gives_no_rate() {
        let rates = Rates::default();
        rates.push(Instant::now(), 10, 3);
        assert_eq!(rates.per_second(), (0.0, 0.0));
    }

    #[test]
    fn rates_forget_samples_older_than_the_window() {
        let rates = Rates::default();
        let t = Instant::now();
        rates.push(t, 0, 0);
        for i in 1..=RATE_WINDOW as u64 {
            rates.push(t + Duration::from_secs(i), 100 + i, 0);
        }
        // The first sample (0 at t) is gone: 101 → 110 over 9 s.
        assert_eq!(rates.per_second().0, 1.0);
    }
}
