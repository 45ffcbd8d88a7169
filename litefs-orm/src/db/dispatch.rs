//! Where a replicated call runs: locally on the primary, forwarded from a replica, retried
//! under its idempotency key until the write deadline, then waited for until this replica
//! has its commit.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::Instrument;

use super::ReplicatedDb;
use crate::db::job::Job;
use crate::durability::Durability;
use crate::error::{DbFailureKind, Error, Result};
use crate::litefs::role::Role;
use crate::observe::CallObserver;
use crate::primary::endpoint as server;
use crate::primary::executor::in_transaction_until;
use crate::primary::idempotency;
use crate::replica::client;

/// First pause between failed attempts; it doubles up to [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Longest pause between attempts.
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(500);
/// How long a forwarded attempt may still answer once the role changed under it. A primary
/// that went away refuses the connection within this, and the attempt then ends as one
/// that was not applied; only an attempt still unanswered after it ends as one of unknown
/// fate.
const ROLE_CHANGE_GRACE: Duration = Duration::from_millis(500);

impl ReplicatedDb {
    /// Where work runs: locally in a transaction on the primary (or standalone), forwarded
    /// from a replica, waited for while no primary is known. Attempts that were not applied
    /// ("not primary", a refused connection) and attempts whose fate is unknown (a lost
    /// answer, a primary change mid-request) are retried against the current primary until
    /// the write deadline: every attempt carries the call's idempotency key, so a primary
    /// that already committed it answers from its record instead of writing again.
    ///
    /// The call runs in its `litefs_orm.call` span, and its metrics are recorded as it goes
    /// ([`crate::observe`]).
    pub(super) async fn dispatch<J: Job>(&self, job: J) -> Result<J::Output> {
        let mut obs = CallObserver::start(job.name(), job.op());
        let span = obs.span().clone();
        let result = self.attempts(job, &mut obs).instrument(span).await;
        obs.finish(&self.inner.stats, &result);
        result
    }

    /// [`dispatch`](Self::dispatch)'s attempts, reported to `obs`.
    async fn attempts<J: Job>(&self, job: J, obs: &mut CallObserver) -> Result<J::Output> {
        if !self.inner.registry.contains(job.name()) {
            return Err(Error::UnknownEntity(job.name().to_owned()));
        }
        let cfg = &self.inner.config;
        let deadline = Instant::now() + cfg.write_timeout;
        let remaining = || deadline.saturating_duration_since(Instant::now());
        // Encoded once, at the first forward (or the first local run that earns a token):
        // every later attempt sends the same bytes, under the same key.
        let mut sent: Option<Sent> = None;
        let mut attempts = Attempts::default();
        let mut pause = RETRY_PAUSE;
        // Since when no primary has been reachable: set when the role says there is none,
        // kept while attempts fail to reach the one a brief role change named, cleared when
        // an attempt reaches a primary. The primary wait counts from it, so a role that
        // flaps does not restart the wait.
        let mut unreachable_since: Option<Instant> = None;
        loop {
            if remaining().is_zero() {
                return Err(job.name_error(attempts.timed_out(cfg.write_timeout)));
            }
            let role = self.role();
            let result = match &role {
                Role::Standalone | Role::Primary => {
                    obs.attempt(&role);
                    // A capture wants a token: the run is keyed, so that its record proves
                    // the commit on other nodes.
                    if sent.is_none() && crate::consistency::active() && self.position().is_some() {
                        let call = self.encode(&job)?;
                        obs.key(&call.key);
                        sent = Some(call);
                    }
                    self.run_here(&job, sent.as_ref(), deadline, obs).await
                }
                Role::Replica { primary } => {
                    obs.attempt(&role);
                    let call = match &sent {
                        Some(call) => call.clone(),
                        None => {
                            let call = self.encode(&job)?;
                            obs.key(&call.key);
                            sent.insert(call).clone()
                        }
                    };
                    self.forward(&job, primary, &role, call, remaining(), obs)
                        .await
                }
                Role::NoPrimary => {
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    let wait = cfg
                        .primary_wait
                        .saturating_sub(since.elapsed())
                        .min(remaining());
                    if !wait.is_zero() && self.inner.role.wait_for_primary(wait).await.is_some() {
                        continue;
                    }
                    let none = Error::NoPrimary {
                        waited: since.elapsed(),
                    };
                    return Err(job.name_error(attempts.ended_by(none)));
                }
            };
            let error = match result {
                Ok(out) => return Ok(out),
                Err(e @ Error::Transport { .. }) => e,
                Err(e @ Error::NotPrimary { .. }) => {
                    // A node answered: a primary was reachable a moment ago.
                    unreachable_since = None;
                    e
                }
                // The primary's database failed with an I/O error: not a refusal to retry.
                Err(Error::Rejected(f)) if f.kind == DbFailureKind::Io => {
                    return Err(job.name_error(attempts.ended_by(Error::Io(f))));
                }
                Err(e) => return Err(job.name_error(attempts.ended_by(e))),
            };
            if let Error::Transport {
                maybe_committed: true,
                ..
            } = error
            {
                unreachable_since = None;
            }
            obs.retry(&error);
            attempts.failed(error);
            self.refresh_role();
            self.inner
                .role
                .changed_from(&role, pause.min(remaining()))
                .await;
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
        }
    }

    /// `job`'s request under a fresh idempotency key; one over the body limit is refused
    /// here, before it leaves (every node has the same limit), rather than by the primary.
    fn encode<J: Job>(&self, job: &J) -> Result<Sent> {
        let key = idempotency::new_key();
        let durability =
            (self.durability() != Durability::Local).then(|| self.durability().to_string());
        let body = job.request(&key, self.database_name(), durability)?;
        let limit = self.inner.config.max_body_bytes;
        if body.len() > limit {
            return Err(Error::Protocol(format!(
                "the `{}` request is {} bytes, over the {limit}-byte limit of forwarded writes \
                 (LITEFS_ORM_MAX_BODY_BYTES); it was not sent, and nothing was written",
                job.name(),
                body.len()
            )));
        }
        Ok(Sent { body, key })
    }

    /// Runs `job` on this node, the primary (or standalone), if the writer is free for it by
    /// `deadline`.
    async fn run_here<J: Job>(
        &self,
        job: &J,
        sent: Option<&Sent>,
        deadline: Instant,
        obs: &CallObserver,
    ) -> Result<J::Output> {
        let Some(Sent { body, key }) = sent else {
            // Never sent anywhere: no other node can have committed it, so there is no key
            // to honour.
            self.fresh_connections().await;
            let attempt = job.clone();
            let ran = in_transaction_until(&self.inner.committer, Some(deadline), move |txn| {
                Box::pin(async move { attempt.local(txn).await })
            })
            .await;
            return match ran {
                Ok((out, txid)) => {
                    obs.committed(txid);
                    match self.wait_durable(txid).await {
                        Ok(()) => Ok(out),
                        Err(n) => Err(Error::NotDurable {
                            txid,
                            held_by: n.held_by,
                            wanted: n.wanted,
                        }),
                    }
                }
                Err(e) => Err(self.resolve(e).await.into_error(None)),
            };
        };
        // An earlier attempt was sent, and may have committed there and replicated here:
        // run the very request the primary would have run, under its key.
        let answer = server::run_body(self, J::PATH, body)
            .await
            .map_err(|refused| client::error_from_body(LOCAL, *refused.body))?;
        let (out, committed) = job.answer(&answer)?;
        self.record_token(&committed, key).await;
        obs.committed(committed.txid);
        match committed.durability_error() {
            None => Ok(out),
            Some(e) => Err(e),
        }
    }

    /// Sends `job`'s request `body` to `primary` and waits for this replica to catch up with
    /// the commit. A primary change while the answer is awaited leaves the attempt
    /// [`ROLE_CHANGE_GRACE`] to answer — a refused connection then still says nothing was
    /// applied — and then ends it as one of unknown fate: the old primary may never answer,
    /// and the key makes asking the new one safe.
    async fn forward<J: Job>(
        &self,
        job: &J,
        primary: &str,
        role: &Role,
        call: Sent,
        timeout: Duration,
        obs: &CallObserver,
    ) -> Result<J::Output> {
        let started = Instant::now();
        let base = self.inner.config.primary_url_for(primary, "");
        let send = self.inner.outbox.send(&base, J::PATH, call.body, timeout);
        tokio::pin!(send);
        let answer = tokio::select! {
            answer = &mut send => answer?,
            () = self.inner.role.until_changed(role) => {
                match tokio::time::timeout(ROLE_CHANGE_GRACE.min(timeout), &mut send).await {
                    Ok(answer) => answer?,
                    Err(_) => return Err(Error::Transport {
                        message: format!(
                            "the primary changed (this node is now {}) before it answered",
                            self.role()
                        ),
                        url: format!("{base}{}", J::PATH),
                        maybe_committed: true,
                        attempts: 1,
                    }),
                }
            }
        };
        match job.answer(&answer) {
            Ok((out, committed)) => {
                obs.forwarded(started.elapsed());
                obs.committed(committed.txid);
                let waiting = Instant::now();
                let waited = self.wait_for_commit(&committed, &call.key).await;
                obs.waited(waiting.elapsed());
                let local = self.position().map_or(0, |p| p.last().txid);
                self.inner.stats.primary_at(committed.txid, local);
                waited?;
                self.record_token(&committed, &call.key).await;
                match committed.durability_error() {
                    None => Ok(out),
                    Some(e) => Err(e),
                }
            }
            // Committed, whatever this node makes of the answer: let the commit reach this
            // replica all the same, so that reading the row back finds it.
            Err(unreadable) => {
                if let Some(committed) = &unreadable.committed {
                    let _ = self.wait_for_commit(committed, &call.key).await;
                }
                Err(unreadable.into())
            }
        }
    }
}

/// Where a call run here under its key is said to have gone, in errors.
const LOCAL: &str = "this node (the primary)";

/// A call's request as sent: its body and the idempotency key in it.
#[derive(Clone)]
struct Sent {
    body: Bytes,
    key: String,
}

/// The failed attempts of one call, for the error it ends with.
#[derive(Default)]
struct Attempts {
    count: u32,
    last: Option<Error>,
    /// Where and how the first attempt of unknown fate failed: the call may have been
    /// committed.
    uncertain: Option<(String, String)>,
}

impl Attempts {
    fn failed(&mut self, e: Error) {
        self.count += 1;
        if let Error::Transport {
            url,
            message,
            maybe_committed: true,
            ..
        } = &e
        {
            self.uncertain
                .get_or_insert_with(|| (url.clone(), message.clone()));
        }
        self.last = Some(e);
    }

    /// The error of a call that `last` ended: an attempt that cannot be retried, or no
    /// primary for the whole wait.
    fn ended_by(mut self, last: Error) -> Error {
        self.count += 1;
        self.describe(last)
    }

    /// The error of a call whose deadline passed: the last retried attempt's, or no primary
    /// when none was made.
    fn timed_out(mut self, waited: Duration) -> Error {
        let last = self.last.take().unwrap_or(Error::NoPrimary { waited });
        self.describe(last)
    }

    /// `last`, said to be of unknown outcome when an earlier attempt may have committed and
    /// `last` does not prove otherwise.
    fn describe(self, last: Error) -> Error {
        let attempts = self.count.max(1);
        match (last, self.uncertain) {
            (
                Error::Transport {
                    url,
                    message,
                    maybe_committed,
                    ..
                },
                uncertain,
            ) => Error::Transport {
                url,
                message,
                maybe_committed: maybe_committed || uncertain.is_some(),
                attempts,
            },
            // Answers from a primary that found no record of the key after the call failed:
            // its history does not hold this call's write. And a commit is a commit.
            (
                e @ (Error::Rejected(_)
                | Error::Operation { .. }
                | Error::ReplicationTimeout { .. }
                | Error::NotDurable { .. }
                | Error::AnswerMismatch { .. }
                | Error::UnverifiedAnswer { .. }),
                _,
            ) => e,
            (other, Some((url, message))) => Error::Transport {
                url,
                message: format!("{message}; then, at the last attempt: {other}"),
                maybe_committed: true,
                attempts,
            },
            (other, None) => other,
        }
    }
}

#[cfg(test)]
mod observed;
#[cfg(test)]
pub(super) mod tests;
