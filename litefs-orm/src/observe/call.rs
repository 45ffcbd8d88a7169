//! One replicated call as the caller sees it: its span, its metrics, its error event.

use std::time::Duration;

use tracing::field::Empty;

use super::Stats;
use super::metrics::{
    CALLS_TOTAL, FORWARD_DURATION_SECONDS, READ_YOUR_WRITES_WAIT_SECONDS, RETRIES_TOTAL,
};
use crate::error::{Error, Result};
use crate::litefs::role::Role;

/// How many characters of the idempotency key the span shows: enough to find the call in
/// the primary's logs, not the whole key.
const KEY_PREFIX: usize = 8;

/// Where a call's last attempt ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Local,
    Forwarded,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Local => "local",
            Route::Forwarded => "forwarded",
        }
    }
}

/// Watches one call from start to finish: the `litefs_orm.call` span (debug level) and the
/// caller-side metrics.
pub(crate) struct CallObserver {
    name: &'static str,
    op: &'static str,
    span: tracing::Span,
    attempts: u32,
    route: Route,
}

impl CallObserver {
    /// A call of entity or operation `name`, doing `op`.
    pub(crate) fn start(name: &'static str, op: &'static str) -> Self {
        let span = tracing::debug_span!(
            "litefs_orm.call",
            name,
            op,
            key = Empty,
            role = Empty,
            primary = Empty,
            attempts = 0u32,
            txid = Empty,
            forward_ms = Empty,
            wait_ms = Empty,
            outcome = Empty,
        );
        CallObserver {
            name,
            op,
            span,
            attempts: 0,
            route: Route::Local,
        }
    }

    /// The span the call runs in.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The call's idempotency key, made at its first forward.
    pub(crate) fn key(&self, key: &str) {
        let prefix = key.get(..KEY_PREFIX).unwrap_or(key);
        self.span.record("key", prefix);
    }

    /// An attempt starts with this node in `role`.
    pub(crate) fn attempt(&mut self, role: &Role) {
        self.attempts += 1;
        self.route = match role {
            Role::Replica { .. } => Route::Forwarded,
            _ => Route::Local,
        };
        if !self.span.is_disabled() {
            self.span.record("attempts", self.attempts);
            self.span.record("role", tracing::field::display(role));
            if let Some(primary) = role.primary() {
                self.span.record("primary", primary);
            }
        }
    }

    /// A forwarded attempt was answered after `took`.
    pub(crate) fn forwarded(&self, took: Duration) {
        metrics::histogram!(FORWARD_DURATION_SECONDS, "name" => self.name, "op" => self.op)
            .record(took.as_secs_f64());
        self.span.record("forward_ms", millis(took));
    }

    /// The call's commit has TXID `txid`.
    pub(crate) fn committed(&self, txid: u64) {
        self.span.record("txid", txid);
    }

    /// The read-your-writes wait took `took`.
    pub(crate) fn waited(&self, took: Duration) {
        metrics::histogram!(READ_YOUR_WRITES_WAIT_SECONDS, "name" => self.name, "op" => self.op)
            .record(took.as_secs_f64());
        self.span.record("wait_ms", millis(took));
    }

    /// An attempt failed with `error` and will be retried.
    pub(crate) fn retry(&self, error: &Error) {
        let reason = error.kind();
        metrics::counter!(RETRIES_TOTAL, "name" => self.name, "op" => self.op, "reason" => reason)
            .increment(1);
        tracing::debug!(parent: &self.span, kind = reason, error = %error, "replicated call not done; retrying");
    }

    /// The call ended with `result`: counts it, and reports an error at warn.
    pub(crate) fn finish<T>(self, stats: &Stats, result: &Result<T>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        metrics::counter!(
            CALLS_TOTAL,
            "name" => self.name,
            "op" => self.op,
            "route" => self.route.label(),
            "outcome" => outcome,
        )
        .increment(1);
        if result.is_ok() && self.route == Route::Forwarded {
            stats.forwarded();
        }
        self.span.record("outcome", outcome);
        if let Err(e) = result {
            tracing::warn!(
                parent: &self.span,
                kind = outcome,
                name = self.name,
                op = self.op,
                attempts = self.attempts,
                error = %e,
                "replicated call failed"
            );
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Error {
    /// The kind of error, as a short fixed string: the `outcome` label of
    /// [`CALLS_TOTAL`] and the `kind` field of the warning a
    /// failed call logs.
    ///
    /// ```
    /// let e = litefs_orm::Error::WriterBusy;
    /// assert_eq!(e.kind(), "writer_busy");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotPrimary { .. } => "not_primary",
            Error::NoPrimary { .. } => "no_primary",
            Error::Transport { .. } => "transport",
            Error::UnverifiedAnswer { .. } => "unverified_answer",
            Error::AnswerMismatch { .. } => "answer_mismatch",
            Error::WriterBusy => "writer_busy",
            Error::WriteStalled { .. } => "write_stalled",
            Error::CommitNotRecorded { .. } => "commit_not_recorded",
            Error::NotDurable { .. } => "not_durable",
            Error::Rejected(_) => "rejected",
            Error::Io(_) => "io",
            Error::ReplicationTimeout { .. } => "replication_timeout",
            Error::Unauthorized(_) => "unauthorized",
            Error::Operation { .. } => "operation",
            Error::UnknownEntity(_) => "unknown_entity",
            Error::Protocol(_) => "protocol",
            Error::Database(_) => "database",
            Error::LiteFs { .. } => "litefs",
            Error::Config(_) => "config",
            Error::SchemaWaitTimeout { .. } => "schema_wait_timeout",
            Error::MigrationFailed { .. } => "migration_failed",
        }
    }
}
