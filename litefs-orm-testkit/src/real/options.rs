//! Options for starting a real LiteFS cluster.

use std::path::PathBuf;
use std::time::Duration;

use super::lease::Lease;

/// How to lay out and start a [`RealCluster`](super::RealCluster).
///
/// Build it with [`RealOptions::default`] and change the fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RealOptions {
    /// Number of nodes. Default: 3.
    pub nodes: usize,
    /// The database file name inside each mount. Default: `app.db`.
    pub db: String,
    /// Each node's hostname; empty means `n1..nN`. Default: empty.
    pub hostnames: Vec<String>,
    /// Index of the static primary. With a Consul lease: the node started first, which takes
    /// the lease first (with [`ConsulLease::promote`](super::ConsulLease::promote), each node
    /// started after it takes the lease in turn, so the last one started is the primary when
    /// [`RealCluster::start`](super::RealCluster::start) returns). Default: 0.
    pub primary: usize,
    /// Folder holding the nodes' directories; `None` means a temporary directory removed when
    /// the cluster is dropped. Default: `None`.
    pub root: Option<PathBuf>,
    /// How long a node may take to mount, answer `/info` and (replicas, while the primary runs)
    /// connect to the primary. Default: 15 s.
    pub start_timeout: Duration,
    /// How long SIGTERM may take before SIGKILL follows. Default: 10 s.
    pub stop_timeout: Duration,
    /// How the nodes agree on a primary. Default: [`Lease::Static`].
    pub lease: Lease,
}

impl Default for RealOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            db: "app.db".to_owned(),
            hostnames: Vec::new(),
            primary: 0,
            root: None,
            start_timeout: Duration::from_secs(15),
            stop_timeout: Duration::from_secs(10),
            lease: Lease::Static,
        }
    }
}

impl RealOptions {
    /// Sets the number of nodes.
    pub fn with_nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }

    /// Sets the database file name.
    pub fn with_db(mut self, db: impl Into<String>) -> Self {
        self.db = db.into();
        self
    }

    /// Sets the nodes' hostnames (what `.primary` and `/info` name), in node order.
    pub fn with_hostnames<S: Into<String>>(
        mut self,
        hostnames: impl IntoIterator<Item = S>,
    ) -> Self {
        self.hostnames = hostnames.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the static primary's index.
    pub fn with_primary(mut self, primary: usize) -> Self {
        self.primary = primary;
        self
    }

    /// Sets the root folder (kept after the cluster is dropped).
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Sets how the nodes agree on a primary.
    ///
    /// ```
    /// use litefs_orm_testkit::real::{ConsulLease, Lease, RealOptions};
    ///
    /// let opts = RealOptions::default().with_lease(Lease::Consul(ConsulLease::default()));
    /// assert!(matches!(opts.lease, Lease::Consul(ref c) if c.promote));
    /// ```
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = lease;
        self
    }

    /// The hostname of node `index`.
    pub(crate) fn hostname(&self, index: usize) -> String {
        self.hostnames
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("n{}", index + 1))
    }
}
