//! A node's replication status: its role and TXID, the primary's TXID it knows of, its
//! lag, and how many forwarded calls it sent and served — for dashboards, and the gauges.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::metrics::{IS_PRIMARY, REPLICATION_LAG_SECONDS, REPLICATION_LAG_TRANSACTIONS, TXID};
use crate::litefs::role::Role;

/// Counts kept per [`ReplicatedDb`](crate::ReplicatedDb), whether or not a metrics recorder
/// is installed: they feed [`NodeStatus`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    forwarded: AtomicU64,
    served: AtomicU64,
    /// The highest TXID the primary answered this node with.
    primary_txid: AtomicU64,
}

impl Stats {
    /// A forwarded call of this node succeeded.
    pub(crate) fn forwarded(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }

    /// This node, the primary, answered a forwarded call.
    pub(crate) fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
        super::primary::served();
    }

    /// The primary answered with a commit at `txid`; sets the TXID-lag gauge against
    /// `local`, this node's TXID as last read.
    pub(crate) fn primary_at(&self, txid: u64, local: u64) {
        let known = self
            .primary_txid
            .fetch_max(txid, Ordering::Relaxed)
            .max(txid);
        metrics::gauge!(REPLICATION_LAG_TRANSACTIONS).set(known.saturating_sub(local) as f64);
    }

    /// This node's status now, given its `role`, its TXID (`None` standalone) and its
    /// `.lag` in milliseconds (`None` without LiteFS); sets the gauges from it.
    pub(crate) fn status(&self, role: Role, txid: Option<u64>, lag_ms: Option<i64>) -> NodeStatus {
        let primary_txid = match (&role, txid) {
            (Role::Primary, t) => t,
            (_, Some(t)) => Some(self.primary_txid.load(Ordering::Relaxed).max(t)),
            (_, None) => None,
        };
        let lag_transactions = primary_txid.zip(txid).map(|(p, t)| p.saturating_sub(t));
        let lag = match (&role, lag_ms) {
            (Role::Primary | Role::Standalone, _) | (_, None) => None,
            // `.lag` before the first sync reads `+2147483647`: no lag to speak of.
            (_, Some(ms)) if ms >= crate::litefs::LAG_NEVER_SYNCED_MS => None,
            (_, Some(ms)) => Some(crate::litefs::lag_duration(ms)),
        };
        let status = NodeStatus {
            role,
            txid,
            primary_txid,
            lag_transactions,
            lag,
            forwarded: self.forwarded.load(Ordering::Relaxed),
            served: self.served.load(Ordering::Relaxed),
            peers: Vec::new(),
        };
        status.set_gauges(lag_ms);
        status
    }
}

/// What a node knows of its own replication, from
/// [`ReplicatedDb::status`](crate::ReplicatedDb::status).
///
/// ```no_run
/// # fn show(db: &litefs_orm::ReplicatedDb) {
/// let status = db.status();
/// println!(
///     "{}: txid {:?}, {:?} transactions behind, {} forwarded",
///     status.role, status.txid, status.lag_transactions, status.forwarded
/// );
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NodeStatus {
    /// The role as last seen.
    #[serde(serialize_with = "display")]
    pub role: Role,
    /// This node's LiteFS TXID (`None` when standalone or `-pos` is unreadable).
    pub txid: Option<u64>,
    /// The primary's highest TXID this node knows of: its own on the primary; on a replica,
    /// the latest the primary answered this node's forwarded calls with, or its own TXID
    /// when that is higher. A replica that forwards nothing learns no newer one: compare
    /// with the primary's own status for the cluster's view.
    pub primary_txid: Option<u64>,
    /// `primary_txid − txid`: transactions this node is known to be behind.
    pub lag_transactions: Option<u64>,
    /// LiteFS's `.lag` on a replica: time since it last heard from the primary (`None` on
    /// the primary, standalone, or before the replica's first sync).
    #[serde(rename = "lag_ms", serialize_with = "millis")]
    pub lag: Option<Duration>,
    /// Forwarded calls this node sent that succeeded, since it started.
    pub forwarded: u64,
    /// Forwarded calls this node ran as the primary and answered, since it started.
    pub served: u64,
    /// On the primary: the nodes that report their position to it, for durable
    /// acknowledgements ([`crate::durability`]); empty on a replica.
    pub peers: Vec<crate::durability::PeerStatus>,
}

impl NodeStatus {
    fn set_gauges(&self, lag_ms: Option<i64>) {
        metrics::gauge!(IS_PRIMARY).set(if self.role.writes_locally() { 1.0 } else { 0.0 });
        if let Some(txid) = self.txid {
            metrics::gauge!(TXID).set(txid as f64);
        }
        if let Some(lag) = self.lag_transactions {
            metrics::gauge!(REPLICATION_LAG_TRANSACTIONS).set(lag as f64);
        }
        let seconds = match (&self.role, lag_ms) {
            (Role::Primary | Role::Standalone, _) => Some(0.0),
            (_, Some(ms)) if ms >= crate::litefs::LAG_NEVER_SYNCED_MS => Some(f64::INFINITY),
            (_, Some(_)) => self.lag.map(|d| d.as_secs_f64()),
            (_, None) => None,
        };
        if let Some(s) = seconds {
            metrics::gauge!(REPLICATION_LAG_SECONDS).set(s);
        }
    }
}

fn display<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(role)
}

fn millis<S: serde::Serializer>(lag: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match lag {
        Some(d) => s.serialize_some(&(d.as_millis() as u64)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica() -> Role {
        Role::Replica {
            primary: "n1".into(),
        }
    }

    #[test]
    fn a_replica_is_behind_by_the_primary_txid_it_heard_of() {
        let stats = Stats::default();
        stats.primary_at(12, 9);
        let status = stats.status(replica(), Some(9), Some(40));
        assert_eq!(status.primary_txid, Some(12));
        assert_eq!(status.lag_transactions, Some(3));
        assert_eq!(status.lag, Some(Duration::from_millis(40)));
    }

    #[test]
    fn a_replica_past_the_last_answer_is_not_behind() {
        let stats = Stats::default();
        stats.primary_at(5, 4);
        let status = stats.status(replica(), Some(8), Some(0));
        assert_eq!(status.primary_txid, Some(8));
        assert_eq!(status.lag_transactions, Some(0));
    }

    #[test]
    fn the_primary_is_never_behind_and_has_no_lag() {
        let status = Stats::default().status(Role::Primary, Some(7), Some(0));
        assert_eq!(status.primary_txid, Some(7));
        assert_eq!(status.lag_transactions, Some(0));
        assert_eq!(status.lag, None);
    }

    #[test]
    fn a_replica_never_synced_shows_no_lag_duration() {
        let never = crate::litefs::LAG_NEVER_SYNCED_MS;
        let status = Stats::default().status(replica(), Some(0), Some(never));
        assert_eq!(status.lag, None);
    }

    #[test]
    fn the_status_serializes_the_role_as_text_and_the_lag_in_milliseconds() {
        let status = Stats::default().status(replica(), Some(3), Some(1500));
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["role"], "replica of n1");
        assert_eq!(json["lag_ms"], 1500);
    }
}
