//! The replica's side of the wire: the HTTP client and the outbox that coalesces calls.

pub mod client;
pub(crate) mod outbox;
