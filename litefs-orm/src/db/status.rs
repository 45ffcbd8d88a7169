//! [`ReplicatedDb::status`], and the sampler that keeps the replication gauges current.

use std::sync::Weak;

use super::{Inner, ReplicatedDb};
use crate::litefs::{LAG_FILE, read_lag};
use crate::observe::{NodeStatus, SAMPLE_EVERY, Stats};

impl ReplicatedDb {
    /// This node's replication status now: role, TXID, the primary's TXID it knows of,
    /// how far behind it is (in transactions, and LiteFS's `.lag`), and the forwarded calls
    /// it sent and served. Reads `-pos` and `.lag` (a FUSE round trip each on LiteFS), and
    /// sets the replication gauges of [`crate::observe::metrics`] from them.
    ///
    /// ```no_run
    /// # fn show(db: &litefs_orm::ReplicatedDb) {
    /// let status = db.status();
    /// if status.lag_transactions.is_some_and(|n| n > 0) {
    ///     println!("{} transactions behind the primary", status.lag_transactions.unwrap());
    /// }
    /// # }
    /// ```
    pub fn status(&self) -> NodeStatus {
        let txid = self.local_position().map(|p| p.txid);
        let lag_ms = self
            .inner
            .config
            .litefs_mount
            .as_ref()
            .and_then(|mount| read_lag(&mount.join(LAG_FILE)).ok().flatten());
        let mut status = self.stats().status(self.role(), txid, lag_ms);
        if let (Some(tracker), true) = (self.position(), status.role.writes_locally()) {
            status.peers = self
                .peers()
                .status(self.inner.config.durability_timeout, tracker);
        }
        status
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.inner.stats
    }
}

/// Samples the status every [`SAMPLE_EVERY`] while the handle lives, so that the gauges
/// move without anyone asking.
pub(super) async fn sample(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        // `status` reads LiteFS's files: off the runtime's threads, which a frozen mount
        // would block.
        let db = ReplicatedDb::from_inner(inner);
        let _ = tokio::task::spawn_blocking(move || db.status()).await;
    }
}
