//! What the primary's side records: commits (alone or batched), replayed calls, the RPC
//! endpoint's answers, and role changes.

use std::time::Duration;

use tracing::field::Empty;

use super::metrics::{
    COMMIT_DURATION_SECONDS, DURABILITY_WAIT_SECONDS, ENDPOINT_REJECTIONS_TOTAL,
    GROUP_COMMIT_WRITES, IDEMPOTENT_REPLAYS_TOTAL, IS_PRIMARY, ROLE_CHANGES_TOTAL,
    SERVED_CALLS_TOTAL,
};
use crate::litefs::role::Role;
use crate::protocol::wire::ErrorCode;

/// The span of one transaction on the primary (debug level): a write alone, or a
/// group-commit batch. Its fields `size`, `commit_ms` and `txid` are filled in by
/// [`committed`].
pub(crate) fn commit_span(alone: bool) -> tracing::Span {
    tracing::debug_span!(
        "litefs_orm.batch",
        alone,
        size = Empty,
        commit_ms = Empty,
        txid = Empty
    )
}

/// A transaction of `writes` writes committed as `txid`; its `COMMIT` took `took`. Fills in
/// the current [`commit_span`].
pub(crate) fn committed(writes: usize, took: Duration, txid: u64) {
    metrics::histogram!(GROUP_COMMIT_WRITES).record(writes as f64);
    metrics::histogram!(COMMIT_DURATION_SECONDS).record(took.as_secs_f64());
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("size", writes);
        span.record("commit_ms", took.as_secs_f64() * 1e3);
        span.record("txid", txid);
    }
}

/// The primary's durability wait after a commit took `took`, and ended `durable` or not.
pub(crate) fn durability_waited(took: Duration, durable: bool) {
    let outcome = if durable { "durable" } else { "not_durable" };
    metrics::histogram!(DURABILITY_WAIT_SECONDS, "outcome" => outcome).record(took.as_secs_f64());
}

/// The primary answered a call from its idempotency record.
pub(crate) fn replayed() {
    metrics::counter!(IDEMPOTENT_REPLAYS_TOTAL).increment(1);
}

/// The endpoint ran a forwarded call and answered it.
pub(crate) fn served() {
    metrics::counter!(SERVED_CALLS_TOTAL).increment(1);
}

/// The endpoint refused or failed a request (or one call of a batch) with `code`.
pub(crate) fn refused(code: &ErrorCode, message: &str) {
    let reason = reason(code);
    metrics::counter!(ENDPOINT_REJECTIONS_TOTAL, "reason" => reason).increment(1);
    match code {
        // Routine while a primary changes, and answered so that the caller retries.
        ErrorCode::NotPrimary => tracing::debug!(kind = reason, "refused a forwarded call"),
        _ => tracing::warn!(kind = reason, error = message, "refused a forwarded call"),
    }
}

impl crate::primary::endpoint::Refusal {
    /// Counts this refusal and logs it ([`refused`]); for the endpoint's answers.
    pub(crate) fn observed(self) -> Self {
        refused(&self.body.code, &self.body.message);
        self
    }
}

/// The `reason` label of an error code.
fn reason(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::UnknownEntity => "unknown_entity",
        ErrorCode::TooLarge => "too_large",
        ErrorCode::NotPrimary => "not_primary",
        ErrorCode::Rejected => "rejected",
        ErrorCode::OperationFailed => "operation_failed",
        ErrorCode::Internal => "internal",
        ErrorCode::UnknownDatabase => "unknown_database",
        ErrorCode::Stalled => "stalled",
        ErrorCode::Uncertain => "uncertain",
    }
}

/// The node's role changed to `role`.
pub(crate) fn role_changed(role: &Role) {
    metrics::gauge!(IS_PRIMARY).set(if role.writes_locally() { 1.0 } else { 0.0 });
    let to = match role {
        Role::Standalone => "standalone",
        Role::Primary => "primary",
        Role::Replica { .. } => "replica",
        Role::NoPrimary => "no_primary",
    };
    metrics::counter!(ROLE_CHANGES_TOTAL, "to" => to).increment(1);
}
