//! The name of every metric litefs-orm records, with its kind, labels and unit.
//!
//! Names follow Prometheus conventions: the `litefs_orm_` prefix, base units (seconds) in
//! the name, `_total` on counters. Label values are bounded: registered entity and
//! operation names, the write's kind, an outcome or reason from a fixed list — never a key,
//! a TXID or a message.
//!
//! | name | kind | labels | unit | meaning |
//! |---|---|---|---|---|
//! | `litefs_orm_calls_total` | counter | `name`, `op`, `route`, `outcome` | calls | replicated calls finished, by entity or operation, where the last attempt ran, and outcome |
//! | `litefs_orm_forward_duration_seconds` | histogram | `name`, `op` | seconds | one forwarded attempt: sent until the primary's answer is decoded |
//! | `litefs_orm_read_your_writes_wait_seconds` | histogram | `name`, `op` | seconds | after the answer, until this replica had the commit's TXID |
//! | `litefs_orm_retries_total` | counter | `name`, `op`, `reason` | attempts | attempts that failed and were retried |
//! | `litefs_orm_group_commit_writes` | histogram | — | writes | writes per commit on the primary (1: a write that ran alone) |
//! | `litefs_orm_commit_duration_seconds` | histogram | — | seconds | the primary's `COMMIT` of one transaction (alone or a batch) |
//! | `litefs_orm_idempotent_replays_total` | counter | — | calls | calls the primary answered from its idempotency record instead of running them again |
//! | `litefs_orm_served_calls_total` | counter | — | calls | forwarded calls this node ran as the primary and answered |
//! | `litefs_orm_endpoint_rejections_total` | counter | `reason` | requests | requests and batch calls the RPC endpoint refused or failed |
//! | `litefs_orm_replication_lag_transactions` | gauge | — | transactions | the primary's highest TXID this node knows of minus its own |
//! | `litefs_orm_replication_lag_seconds` | gauge | — | seconds | LiteFS's `.lag`: time since this replica last heard from the primary (0 on the primary) |
//! | `litefs_orm_txid` | gauge | — | TXID | this node's LiteFS position |
//! | `litefs_orm_is_primary` | gauge | — | 0 or 1 | 1 while this node writes locally (primary or standalone) |
//! | `litefs_orm_role_changes_total` | counter | `to` | changes | role changes seen, by the new role |
//! | `litefs_orm_durability_wait_seconds` | histogram | `outcome` | seconds | on the primary, after a commit, until the nodes the durability asks for held it (`durable`) or the bound passed (`not_durable`) |
//!
//! Label values:
//! - `name`: the entity's or operation's registered name.
//! - `op`: `insert`, `update`, `save`, `delete`, or `run` (an operation).
//! - `route`: `local` (ran on this node, the primary or standalone) or `forwarded`.
//! - `outcome`: `ok` or the error's [`Error::kind`](crate::Error::kind), e.g. `transport`,
//!   `replication_timeout`, `rejected`, `operation`.
//! - `reason` of a retry: the failed attempt's error kind (`transport`, `not_primary`).
//! - `reason` of a rejection: the wire error code (`unauthorized`, `bad_request`,
//!   `unknown_entity`, `too_large`, `not_primary`, `rejected`, `operation_failed`,
//!   `internal`).
//! - `to`: `standalone`, `primary`, `replica`, `no_primary`.
//!
//! The gauges are set by a sampler each [`SAMPLE_EVERY`](super::SAMPLE_EVERY) on a LiteFS
//! node, and by every [`ReplicatedDb::status`](crate::ReplicatedDb::status).
//!
//! ```
//! use litefs_orm::observe::metrics;
//! assert_eq!(metrics::CALLS_TOTAL, "litefs_orm_calls_total");
//! ```

use metrics::Unit;

/// Counter: replicated calls finished. Labels `name`, `op`, `route`, `outcome`.
pub const CALLS_TOTAL: &str = "litefs_orm_calls_total";
/// Histogram, seconds: one forwarded attempt, sent until its answer is decoded. Labels
/// `name`, `op`.
pub const FORWARD_DURATION_SECONDS: &str = "litefs_orm_forward_duration_seconds";
/// Histogram, seconds: the read-your-writes wait after a forwarded answer. Labels `name`,
/// `op`.
pub const READ_YOUR_WRITES_WAIT_SECONDS: &str = "litefs_orm_read_your_writes_wait_seconds";
/// Counter: attempts that failed and were retried. Labels `name`, `op`, `reason`.
pub const RETRIES_TOTAL: &str = "litefs_orm_retries_total";
/// Histogram, writes: writes per commit on the primary.
pub const GROUP_COMMIT_WRITES: &str = "litefs_orm_group_commit_writes";
/// Histogram, seconds: the primary's `COMMIT` statement.
pub const COMMIT_DURATION_SECONDS: &str = "litefs_orm_commit_duration_seconds";
/// Counter: calls answered from the idempotency record.
pub const IDEMPOTENT_REPLAYS_TOTAL: &str = "litefs_orm_idempotent_replays_total";
/// Counter: forwarded calls run and answered by this node as the primary.
pub const SERVED_CALLS_TOTAL: &str = "litefs_orm_served_calls_total";
/// Counter: requests and batch calls the RPC endpoint refused or failed. Label `reason`.
pub const ENDPOINT_REJECTIONS_TOTAL: &str = "litefs_orm_endpoint_rejections_total";
/// Gauge, transactions: the primary's highest known TXID minus this node's.
pub const REPLICATION_LAG_TRANSACTIONS: &str = "litefs_orm_replication_lag_transactions";
/// Gauge, seconds: LiteFS's `.lag`.
pub const REPLICATION_LAG_SECONDS: &str = "litefs_orm_replication_lag_seconds";
/// Gauge: this node's LiteFS TXID.
pub const TXID: &str = "litefs_orm_txid";
/// Gauge: 1 while this node writes locally, else 0.
pub const IS_PRIMARY: &str = "litefs_orm_is_primary";
/// Counter: role changes. Label `to`.
pub const ROLE_CHANGES_TOTAL: &str = "litefs_orm_role_changes_total";
/// Histogram, seconds: the primary's durability wait after a commit. Label `outcome`
/// (`durable`, `not_durable`).
pub const DURABILITY_WAIT_SECONDS: &str = "litefs_orm_durability_wait_seconds";

/// Every metric's name, for exporters that want the list.
pub const ALL: &[&str] = &[
    CALLS_TOTAL,
    FORWARD_DURATION_SECONDS,
    READ_YOUR_WRITES_WAIT_SECONDS,
    RETRIES_TOTAL,
    GROUP_COMMIT_WRITES,
    COMMIT_DURATION_SECONDS,
    IDEMPOTENT_REPLAYS_TOTAL,
    SERVED_CALLS_TOTAL,
    ENDPOINT_REJECTIONS_TOTAL,
    REPLICATION_LAG_TRANSACTIONS,
    REPLICATION_LAG_SECONDS,
    TXID,
    IS_PRIMARY,
    ROLE_CHANGES_TOTAL,
    DURABILITY_WAIT_SECONDS,
];

/// Describes every metric (unit and help text) to the installed recorder; an exporter
/// then prints them (Prometheus: `# HELP` and `# TYPE` lines). Call it once, after
/// installing the recorder.
///
/// ```
/// litefs_orm::observe::metrics::describe();
/// ```
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        CALLS_TOTAL,
        Unit::Count,
        "Replicated calls finished, by entity or operation, op, route and outcome."
    );
    describe_histogram!(
        FORWARD_DURATION_SECONDS,
        Unit::Seconds,
        "One forwarded attempt: sent until the primary's answer is decoded."
    );
    describe_histogram!(
        READ_YOUR_WRITES_WAIT_SECONDS,
        Unit::Seconds,
        "After a forwarded answer, until this replica had the commit's TXID."
    );
    describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "Attempts of replicated calls that failed and were retried, by reason."
    );
    describe_histogram!(
        GROUP_COMMIT_WRITES,
        Unit::Count,
        "Writes per commit on the primary (1: a write that ran alone)."
    );
    describe_histogram!(
        COMMIT_DURATION_SECONDS,
        Unit::Seconds,
        "The primary's COMMIT of one transaction, alone or a group-commit batch."
    );
    describe_counter!(
        IDEMPOTENT_REPLAYS_TOTAL,
        Unit::Count,
        "Calls the primary answered from its idempotency record instead of running them again."
    );
    describe_counter!(
        SERVED_CALLS_TOTAL,
        Unit::Count,
        "Forwarded calls this node ran as the primary and answered."
    );
    describe_counter!(
        ENDPOINT_REJECTIONS_TOTAL,
        Unit::Count,
        "Requests and batch calls the RPC endpoint refused or failed, by reason."
    );
    describe_gauge!(
        REPLICATION_LAG_TRANSACTIONS,
        Unit::Count,
        "The primary's highest TXID this node knows of, minus this node's TXID."
    );
    describe_gauge!(
        REPLICATION_LAG_SECONDS,
        Unit::Seconds,
        "LiteFS .lag: time since this replica last heard from the primary (0 on the primary)."
    );
    describe_gauge!(TXID, "This node's LiteFS TXID.");
    describe_gauge!(
        IS_PRIMARY,
        "1 while this node writes locally (LiteFS primary or standalone), else 0."
    );
    describe_counter!(
        ROLE_CHANGES_TOTAL,
        Unit::Count,
        "Role changes this node saw, by the new role."
    );
    describe_histogram!(
        DURABILITY_WAIT_SECONDS,
        Unit::Seconds,
        "On the primary, after a commit, until the nodes the durability asks for held it."
    );
}
