//! The error type of the real-LiteFS test harness.

use std::path::PathBuf;
use std::time::Duration;

/// Result of every fallible operation of the harness.
pub type Result<T, E = RealError> = std::result::Result<T, E>;

/// What can go wrong while starting or controlling a real LiteFS cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RealError {
    /// No LiteFS binary was found.
    #[error(
        "litefs binary not found (looked at: {looked}); set LITEFS_BIN to a LiteFS v0.5.14 \
         binary, put `litefs` v0.5.14 on PATH, or place it at shared/litefs/litefs beside the \
         project folder"
    )]
    BinaryNotFound {
        /// Places that were searched, comma separated.
        looked: String,
    },
    /// FUSE cannot be used on this machine.
    #[error("fuse unavailable: {0}")]
    FuseUnavailable(String),
    /// A file system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A request to a node's HTTP API failed.
    #[error("http request to {url} failed: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A node index outside the cluster was given.
    #[error("no node {index}: the cluster has {nodes} nodes")]
    NoSuchNode {
        /// The index given.
        index: usize,
        /// How many nodes the cluster has.
        nodes: usize,
    },
    /// The operation needs the node's LiteFS to be running (or stopped) and it is not.
    #[error("node {index} is {state}")]
    BadState {
        /// The node index.
        index: usize,
        /// Its state, e.g. "not running".
        state: &'static str,
    },
    /// A `-pos` file did not hold `%016x/%016x\n`.
    #[error("malformed position file {path}: {content:?}")]
    BadPos {
        /// The file read.
        path: PathBuf,
        /// What it held.
        content: String,
    },
    /// A LiteFS process exited while it was expected to run.
    #[error("litefs of node {index} exited ({status}); log:\n{log}")]
    Exited {
        /// The node index.
        index: usize,
        /// Its exit status.
        status: String,
        /// The tail of its log.
        log: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited, with the state seen last.
        what: String,
        /// How long was waited.
        after: Duration,
    },
    /// The operation needs another kind of lease than the cluster's.
    #[error("{op} needs {needs}")]
    WrongLease {
        /// The operation, e.g. `set_primary`.
        op: &'static str,
        /// What it needs and what to do instead.
        needs: &'static str,
    },
    /// A node's HTTP API answered with an error.
    #[error("{url} answered {status}: {body}")]
    Api {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body of the answer.
        body: String,
    },
    /// An invalid option was given.
    #[error("invalid options: {0}")]
    Options(String),
}

impl RealError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
