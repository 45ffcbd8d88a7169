//! Read-your-writes: waiting until this node's replica holds a commit — one this node
//! forwarded, or one a [`Token`] names — and the tokens this node's writes earn.

use std::time::{Duration, Instant};

use super::ReplicatedDb;
use crate::consistency::{Token, Tokens};
use crate::db::job::Committed;
use crate::error::{Error, Result};

/// First pause before the proof is read again after a read failed; it doubles up to
/// [`PROOF_RETRY_MAX`].
const PROOF_RETRY: Duration = Duration::from_millis(10);
const PROOF_RETRY_MAX: Duration = Duration::from_millis(200);

impl ReplicatedDb {
    /// Waits until this node's replica holds the commit `committed` names, of the call with
    /// idempotency key `key`: its position has reached the TXID, and the key's record of
    /// the commit's run is in it. After a failover a replica may hold TXIDs of an abandoned
    /// history, at or past the TXID, that do not hold the commit (or hold a record of the
    /// same key by an abandoned run): it waits on until LiteFS replaces that history. Past
    /// [`replication_timeout`](crate::Config::replication_timeout) it fails with
    /// [`Error::ReplicationTimeout`] (the write *is* committed) — never early, and never
    /// with an error that says it was not: a failed read of the proof is read again.
    pub(crate) async fn wait_for_commit(&self, committed: &Committed, key: &str) -> Result<()> {
        let Some(position) = self.position() else {
            return Ok(());
        };
        let txid = committed.txid;
        let start = Instant::now();
        let deadline = start + self.inner.config.replication_timeout;
        let timed_out = |local: u64| Error::ReplicationTimeout {
            txid,
            local,
            waited: start.elapsed(),
            committed: true,
        };
        let mut retry = PROOF_RETRY;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let pos = position
                .wait_for(txid, remaining)
                .await
                .map_err(|t| timed_out(t.last.txid))?;
            let held = self
                .inner
                .proofs
                .is_recorded(|| self.reader(), key, committed.run.as_deref())
                .await;
            let remaining = deadline.saturating_duration_since(Instant::now());
            match held {
                Ok(true) => return Ok(()),
                _ if remaining.is_zero() => return Err(timed_out(pos.txid)),
                Ok(false) => {
                    tracing::debug!(
                        txid,
                        local = pos.txid,
                        "replica past the commit's TXID without it: a history a failover abandoned; waiting"
                    );
                    position.wait_for_change(pos, remaining).await;
                }
                // The primary committed it: a read of the proof that fails (the connections
                // reopening under it, say) says nothing about that. Read again.
                Err(e) => {
                    tracing::debug!(txid, error = %e, "reading the proof of a commit failed; reading again");
                    tokio::time::sleep(retry.min(remaining)).await;
                    retry = (retry * 2).min(PROOF_RETRY_MAX);
                }
            }
        }
    }

    /// Whether this node holds the commit `token` names now (no wait).
    async fn holds_now(&self, token: &Token) -> bool {
        let reached = self
            .position()
            .is_none_or(|p| p.last().txid >= token.txid());
        reached
            && self
                .inner
                .proofs
                .is_recorded(|| self.reader(), token.key(), token.run())
                .await
                .unwrap_or(true)
    }

    /// The name requests and tokens give this node's database: its file name.
    pub fn database_name(&self) -> &str {
        &self.inner.name
    }

    /// How long a token this node issues is honoured: see [`Config::token_lifetime`](crate::Config::token_lifetime).
    pub fn token_lifetime(&self) -> Duration {
        self.inner.config.token_lifetime()
    }

    /// The secret tokens are signed with (the RPC secret); `None` when standalone without one.
    pub(crate) fn token_secret(&self) -> Option<&[u8]> {
        self.inner.config.rpc_secret.as_deref().map(str::as_bytes)
    }

    /// Notes the commit of a replicated call for the running
    /// [`capture`](crate::consistency::capture): on a LiteFS node only (a standalone node has
    /// no other node to be consistent with). The capture keeps one token per database, the
    /// latest write's — unless that write's TXID is below the held token's and this node
    /// still holds the held commit: then both are of one history (two writes that finished
    /// out of order), and the higher one holds the lower. Otherwise a failover lost the held
    /// commit, and only the latest write can still be held anywhere.
    pub(crate) async fn record_token(&self, committed: &Committed, key: &str) {
        // Outside a capture nothing wants it: build no token on every forwarded write.
        if self.position().is_none() || !crate::consistency::active() {
            return;
        }
        let mut token = Token::new(self.database_name(), committed.txid, key);
        if let Some(run) = &committed.run {
            token = token.with_run(run.clone());
        }
        if let Some(held) = crate::consistency::held(self.database_name())
            && held.txid() > token.txid()
            && self.holds_now(&held).await
        {
            return;
        }
        crate::consistency::replace(token);
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
        let committed = Committed {
            txid: token.txid(),
            run: token.run().map(str::to_owned),
            not_durable: None,
        };
        self.wait_for_commit(&committed, token.key()).await
    }

    /// Waits for this database's token among `tokens`, if there is one.
    pub async fn wait_for_tokens(&self, tokens: &Tokens) -> Result<()> {
        match tokens.get(self.database_name()) {
            Some(token) => self.wait_for(token).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
