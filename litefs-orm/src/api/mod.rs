//! What an app writes with: the derive's trait, the replicated ActiveModel methods,
//! operations and the registry of what a primary may run.

pub(crate) mod active_model;
pub(crate) mod operation;
pub(crate) mod registry;
pub(crate) mod replicated;
