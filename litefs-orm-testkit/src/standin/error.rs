//! The testkit's error type.

use std::time::Duration;

/// Why a [`Cluster`](super::Cluster) operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options cannot describe a cluster (e.g. zero nodes).
    #[error("invalid cluster options: {0}")]
    InvalidOptions(String),
    /// Creating the mounts, files, runtime or HTTP listeners failed.
    #[error("testkit i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// [`Cluster::sync`](super::Cluster::sync) was called while no node is primary.
    #[error("no node is primary; call switch_primary first")]
    NoPrimary,
    /// The replicas did not reach the primary's position in time (replication paused, a long
    /// write lock on the primary, or a replication error in the log).
    #[error("replicas still behind the primary after {waited:?}: {behind}")]
    SyncTimeout {
        /// How long `sync` waited.
        waited: Duration,
        /// Which nodes were behind, and where they were.
        behind: String,
    },
}

/// `Result` with the testkit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
