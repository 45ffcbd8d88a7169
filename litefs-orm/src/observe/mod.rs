//! Observability: a tracing span per replicated call and per commit on the primary, and
//! metrics through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! litefs-orm installs no exporter: with no recorder installed the metrics cost next to
//! nothing, and with no subscriber listening at debug level neither do the spans. An app
//! installs the recorder it wants (Prometheus, StatsD, OpenTelemetry...), then calls
//! [`metrics::describe`] for the help texts. Every name, kind, label and unit is in
//! [`metrics`] (and the README's "Observability" table).
//!
//! Spans (debug level):
//! - `litefs_orm.call` — one replicated call on the caller's node. Fields `name` (entity or
//!   operation), `op`, `key` (the first 8 characters of the idempotency key, once one was
//!   made), `role` and `primary` at the last attempt, `attempts`, `txid` of the commit,
//!   `forward_ms`, `wait_ms` (read-your-writes), `outcome`.
//! - `litefs_orm.batch` — one transaction committed on the primary. Fields `alone` (a write
//!   that ran in a transaction of its own), `size` (writes), `commit_ms`, `txid`.
//!
//! Events: a call that fails, and a request the RPC endpoint refuses, are logged at warn
//! with their `kind` (a refusal for "not primary", routine during a primary change, at
//! debug); a retried attempt at debug; a role change at info (LiteFS's flapping
//! `primaryChange` events are debounced first). Nothing is logged at info per call.
//!
//! ```
//! // In an app, after installing its recorder (e.g. metrics-exporter-prometheus):
//! litefs_orm::observe::metrics::describe();
//! ```

pub(crate) mod call;
pub mod metrics;
pub(crate) mod primary;
mod status;

use std::time::Duration;

pub(crate) use call::CallObserver;
pub use status::NodeStatus;
pub(crate) use status::Stats;

/// How often a LiteFS node samples its position and `.lag` into the gauges.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The `op` label of a write.
pub(crate) fn op_label(op: crate::protocol::wire::Op) -> &'static str {
    use crate::protocol::wire::Op;
    match op {
        Op::Insert => "insert",
        Op::Update => "update",
        Op::Save => "save",
        Op::Delete => "delete",
    }
}

/// The `op` label of an operation.
pub(crate) const RUN: &str = "run";

/// Records what one successful forwarded insert records, on the replica that forwarded it
/// and on the primary that ran it alone, in the order the dispatcher and the endpoint
/// record it: the observing a forwarded write costs, without the write. For the benchmark.
#[doc(hidden)]
pub fn record_forwarded_call(role: &crate::Role, key: &str, took: Duration, txid: u64) {
    let stats = Stats::default();
    let mut obs = CallObserver::start("item", op_label(crate::protocol::wire::Op::Insert));
    {
        let _call = obs.span().clone().entered();
        obs.attempt(role);
        obs.key(key);
        {
            let _batch = primary::commit_span(true).entered();
            primary::committed(1, took, txid);
        }
        stats.served();
        obs.forwarded(took);
        obs.committed(txid);
        obs.waited(took);
        stats.primary_at(txid, txid);
    }
    obs.finish(&stats, &Ok::<(), crate::Error>(()));
}
