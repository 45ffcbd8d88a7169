//! The primary's side of the wire: the endpoint, the executor, group commit and the
//! idempotency ledger.

pub(crate) mod endpoint;
mod endpoint_batch;
pub(crate) mod executor;
pub(crate) mod group_commit;
pub(crate) mod idempotency;
mod run;
