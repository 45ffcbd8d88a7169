//! A small lease server speaking the part of Consul's HTTP API that LiteFS v0.5.14 calls, with
//! a gate per node that a test can cut.
//!
//! What it serves, following Consul's documented semantics:
//!
//! - `PUT /v1/session/create` (`Name`, `Node`, `Behavior` `"delete"` or `"release"` — the
//!   default —, `LockDelay` as a Go duration string or a number: seconds below 1000,
//!   nanoseconds otherwise; default 15 s; `TTL` as a Go duration string) → `{"ID": <uuid>}`;
//! - `PUT /v1/session/renew/<id>` → `[<session>]` with the TTL reset, 404 once it is gone;
//! - `PUT /v1/session/destroy/<id>` → `true`, even when it is gone;
//! - `GET /v1/kv/<key>` → 404 or `[<entry>]` (base64 `Value`, `Session` while locked);
//! - `PUT /v1/kv/<key>` with `?acquire=<session>`, `?release=<session>` or neither (the body
//!   becomes the value in all three, as in Consul) → `true` or `false`; `DELETE` → `true`;
//! - `PUT /v1/catalog/register` → `true`; anything else → 404 with a text body.
//!
//! Every answer carries `X-Consul-Index`, `X-Consul-KnownLeader` and `X-Consul-LastContact`.
//! A session not renewed within its TTL is invalidated exactly at the TTL — by a timer, even
//! when no request arrives. Consul itself may wait up to twice the TTL and refuses TTLs under
//! 10 s; this server takes any TTL. An invalidated session's keys are deleted or released as
//! its behaviour says and cannot be acquired by anyone for its lock delay; a key released
//! explicitly has no lock delay. Acquiring with a session that does not exist answers `false`
//! (Consul answers an error).
//!
//! Each node reaches the server through a [`gate::Gate`] of its own (a TCP forwarder), so one
//! node can be cut off ([`Cut`]) while the others carry on. Requests are logged at debug level
//! with `tracing`; [`ConsulServer::events`] is the server's own log of sessions and keys.

mod gate;
mod http;
mod state;
mod wire;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use super::Cut;
use super::error::{RealError, Result};
use gate::Gate;
use http::{Shared, lock};
pub(crate) use wire::go_duration;

/// How often the timer looks for sessions past their TTL.
const TICK: Duration = Duration::from_millis(10);

/// The lease server of one cluster: its runtime, one router and one gate per node, and the
/// timer that expires sessions. Dropping it stops everything it runs.
#[derive(Debug)]
pub(crate) struct ConsulServer {
    state: Shared,
    gates: Vec<Gate>,
    labels: Vec<String>,
    started: Instant,
    started_wall: chrono::DateTime<chrono::Utc>,
    rt: Option<Runtime>,
}

impl ConsulServer {
    /// Starts the server with one gate per label (each node's name, for the event log).
    pub fn start(labels: Vec<String>) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("litefs-testkit-consul")
            .enable_all()
            .build()
            .map_err(|e| RealError::io("start the lease server's runtime", e))?;
        let state: Shared = Arc::new(Mutex::new(state::State::default()));
        let mut gates = Vec::with_capacity(labels.len());
        for index in 0..labels.len() {
            let listener = {
                let _guard = rt.enter();
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .and_then(tokio::net::TcpListener::from_std)
                    .map_err(|e| RealError::io("bind the lease server", e))?
            };
            let upstream: SocketAddr = listener
                .local_addr()
                .map_err(|e| RealError::io("bind the lease server", e))?;
            let app = http::router(state.clone(), index);
            rt.spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::warn!("lease server for node {index} stopped: {e}");
                }
            });
            let gate = Gate::open(rt.handle(), upstream)
                .map_err(|e| RealError::io("open a lease gate", e))?;
            gates.push(gate);
        }
        let ticking = state.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                lock(&ticking).expire(Instant::now());
            }
        });
        Ok(Self {
            state,
            gates,
            labels,
            started: Instant::now(),
            started_wall: chrono::Utc::now(),
            rt: Some(rt),
        })
    }

    /// The URL node `i` reaches the server at (its gate), e.g. `http://127.0.0.1:40123`.
    pub fn url(&self, i: usize) -> Option<String> {
        self.gates.get(i).map(|g| format!("http://{}", g.addr()))
    }

    /// Cuts node `i` off the server.
    pub fn cut(&self, i: usize, how: Cut) -> Result<()> {
        self.gate(i)?
            .cut(how)
            .map_err(|e| RealError::io(format!("cut node {i}'s lease gate"), e))?;
        self.note(i, format!("gate cut ({how:?})"));
        Ok(())
    }

    /// Heals node `i`'s gate.
    pub fn heal(&self, i: usize) -> Result<()> {
        self.gate(i)?
            .heal()
            .map_err(|e| RealError::io(format!("heal node {i}'s lease gate"), e))?;
        self.note(i, "gate healed".to_owned());
        Ok(())
    }

    fn gate(&self, i: usize) -> Result<&Gate> {
        self.gates.get(i).ok_or(RealError::NoSuchNode {
            index: i,
            nodes: self.gates.len(),
        })
    }

    /// Adds a line of the harness's own to the event log.
    fn note(&self, i: usize, what: String) {
        let mut state = lock(&self.state);
        state.note(Instant::now(), Some(i), what);
    }

    /// The event log, one line per event: wall-clock time (UTC, as LiteFS logs it), seconds
    /// since the server started, the node whose gate it came through, and what happened.
    pub fn events(&self) -> Vec<String> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        state.expire(now);
        state
            .events()
            .iter()
            .map(|e| {
                let since = e.at.saturating_duration_since(self.started);
                let wall = self.started_wall
                    + chrono::Duration::from_std(since).unwrap_or(chrono::Duration::zero());
                let via = e
                    .via
                    .and_then(|i| self.labels.get(i))
                    .map_or("-", String::as_str);
                format!(
                    "{} +{:.3}s {via}: {}",
                    wall.format("%H:%M:%S%.3f"),
                    since.as_secs_f64(),
                    e.what
                )
            })
            .collect()
    }
}

impl Drop for ConsulServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
