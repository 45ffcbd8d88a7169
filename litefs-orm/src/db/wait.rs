//! Read-your-writes: waiting until this node's replica holds a commit — one this node
//! forwarded, or one a [`Token`] names — and the tokens this node's writes earn.

use std::time::{Duration, Instant};

use super::ReplicatedDb;
use crate::consistency::{Token, Tokens};
use crate::error::{Error, Result};

impl ReplicatedDb {
    /// Waits until this node's replica holds the commit at `txid` that recorded idempotency
    /// key `key`: its position has reached `txid`, and the key's record is in it. After a
    /// failover a replica may hold TXIDs of an abandoned history, at or past `txid`, that do
    /// not hold the commit: it waits on until LiteFS replaces that history. Past
    /// [`replication_timeout`](crate::Config::replication_timeout) it fails with
    /// [`Error::ReplicationTimeout`] (the write *is* committed) — never early.
    pub(crate) async fn wait_for_commit(&self, txid: u64, key: &str) -> Result<()> {
        let Some(position) = self.position() else {
            return Ok(());
        };
        let start = Instant::now();
        let deadline = start + self.inner.config.replication_timeout;
        let timed_out = |local: u64| Error::ReplicationTimeout {
            txid,
            local,
            waited: start.elapsed(),
            committed: true,
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let pos = position
                .wait_for(txid, remaining)
                .await
                .map_err(|t| timed_out(t.last.txid))?;
            if self.inner.proofs.is_recorded(|| self.reader(), key).await? {
                return Ok(());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timed_out(pos.txid));
            }
            tracing::debug!(
                txid,
                local = pos.txid,
                "replica past the commit's TXID without it: a history a failover abandoned; waiting"
            );
            position.wait_for_change(pos, remaining).await;
        }
    }

    /// The name requests and tokens give this node's database: its file name.
    pub fn database_name(&self) -> &str {
        &self.inner.name
    }

    /// How long a token this node issues is honoured: half the idempotency window, so that
    /// the record that proves its commit outlives it.
    pub fn token_lifetime(&self) -> Duration {
        self.inner.config.idempotency_window / 2
    }

    /// The secret tokens are signed with (the RPC secret); `None` when standalone without one.
    pub(crate) fn token_secret(&self) -> Option<&[u8]> {
        self.inner.config.rpc_secret.as_deref().map(str::as_bytes)
    }

    /// Notes the commit of a replicated call for the running
    /// [`capture`](crate::consistency::capture): on a LiteFS node only (a standalone node has
    /// no other node to be consistent with).
    pub(crate) fn record_token(&self, txid: u64, key: &str) {
        // Outside a capture nothing wants it: build no token on every forwarded write.
        if self.position().is_some() && crate::consistency::active() {
            crate::consistency::record(Token::new(self.database_name(), txid, key));
        }
    }

    /// Waits until this node holds the commit `token` names (any node may have issued it),
    /// within [`replication_timeout`](crate::Config::replication_timeout). A token of
    /// another database is refused as [`Error::Config`]; on a standalone node every token is
    /// held.
    ///
    /// ```no_run
    /// # async fn run(db: litefs_orm::ReplicatedDb, model: impl litefs_orm::ReplicatedActiveModel) -> litefs_orm::Result<()> {
    /// use litefs_orm::consistency::capture;
    /// let (saved, tokens) = capture(model.insert_replicated(&db)).await;
    /// saved?;
    /// // Later, on any node (a background job, a WebSocket):
    /// db.wait_for_tokens(&tokens).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(&self, token: &Token) -> Result<()> {
        if token.database() != self.database_name() {
            return Err(Error::Config(format!(
                "a token of database {:?} cannot be waited for on {:?}",
                token.database(),
                self.database_name()
            )));
        }
        self.wait_for_commit(token.txid(), token.key()).await
    }

    /// Waits for this database's token among `tokens`, if there is one.
    pub async fn wait_for_tokens(&self, tokens: &Tokens) -> Result<()> {
        match tokens.get(self.database_name()) {
            Some(token) => self.wait_for(token).await,
            None => Ok(()),
        }
    }
}
