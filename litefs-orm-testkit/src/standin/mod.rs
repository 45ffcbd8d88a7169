//! The stand-in: node directories kept in sync the way LiteFS would, by threads of the test process.

mod cluster;
mod control;
mod copy;
mod error;
mod files;
mod fuse;
mod http;
mod options;
mod replicator;
mod sqlite;
mod state;
mod sync;
mod watcher;
mod worker;

#[cfg(test)]
mod tests;

pub use cluster::Cluster;
pub use error::{Error, Result};
pub use options::{ClusterOptions, JournalMode, ReplicaWrites};
