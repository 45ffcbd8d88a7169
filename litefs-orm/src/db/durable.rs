//! Durable acknowledgements on the primary: the wait after a commit until as many nodes as
//! [`Config::durability`](crate::Config::durability) asks hold it.

use std::time::Instant;

use super::ReplicatedDb;
use crate::durability::{Durability, NotDurable};

impl ReplicatedDb {
    /// Waits, on the primary, until the nodes this handle's durability asks for hold the
    /// commit at `txid` ([`wait_durable_as`](Self::wait_durable_as)).
    pub(crate) async fn wait_durable(&self, txid: u64) -> Result<(), NotDurable> {
        self.wait_durable_as(txid, self.durability).await
    }

    /// Waits, on the primary, until the nodes `durability` asks for hold the commit at
    /// `txid`, at most [`durability_timeout`](crate::Config::durability_timeout);
    /// [`NotDurable`] past it. At once with `local` durability, standalone, or when this
    /// node is not the primary.
    pub(crate) async fn wait_durable_as(
        &self,
        txid: u64,
        durability: Durability,
    ) -> Result<(), NotDurable> {
        let config = &self.inner.config;
        let Some(tracker) = self.position() else {
            return Ok(());
        };
        if durability == Durability::Local || txid == 0 || !self.role().writes_locally() {
            return Ok(());
        }
        let start = Instant::now();
        let waited = self
            .inner
            .peers
            .wait(txid, durability, config.durability_timeout, tracker)
            .await;
        crate::observe::primary::durability_waited(start.elapsed(), waited.is_ok());
        waited
    }
}
