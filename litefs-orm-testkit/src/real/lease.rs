//! How a real cluster's nodes agree on a primary: a static lease, or a Consul lease served by
//! the testkit's own lease server.

use std::time::Duration;

/// How the cluster's nodes agree on a primary.
///
/// ```
/// use std::time::Duration;
/// use litefs_orm_testkit::real::{ConsulLease, Lease, RealOptions};
///
/// let opts = RealOptions::default().with_lease(Lease::Consul(
///     ConsulLease::default().with_ttl(Duration::from_secs(4)),
/// ));
/// assert!(matches!(opts.lease, Lease::Consul(_)));
/// assert!(matches!(RealOptions::default().lease, Lease::Static));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Lease {
    /// A static lease: [`RealOptions::primary`](super::RealOptions::primary) is the primary
    /// until the test changes it ([`RealCluster::change_primary`](super::RealCluster::change_primary)).
    /// Nothing fails over by itself.
    #[default]
    Static,
    /// A Consul lease: every node a candidate; whoever holds the lease key is the primary.
    Consul(ConsulLease),
}

/// A Consul lease served by the testkit's lease server: every node a candidate.
///
/// Each field is written to every node's `litefs.yml` (`lease.promote`, `lease.consul.key`,
/// `lease.consul.ttl`, `lease.consul.lock-delay`).
///
/// ```
/// use std::time::Duration;
/// use litefs_orm_testkit::real::ConsulLease;
///
/// let lease = ConsulLease::default()
///     .with_ttl(Duration::from_secs(4))
///     .with_lock_delay(Duration::from_millis(500))
///     .with_promote(false);
/// assert_eq!(lease.ttl, Duration::from_secs(4));
/// assert_eq!(lease.key, "litefs/app");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsulLease {
    /// The session TTL: how long after its last renewal a primary's lease runs out. LiteFS
    /// renews every TTL/2. Default: 10 s (LiteFS's default).
    pub ttl: Duration,
    /// How long the key stays locked after its holder's session is invalidated (expired or
    /// destroyed). Default: 1 s (LiteFS's default).
    pub lock_delay: Duration,
    /// LiteFS's `promote`: a candidate that connects to the cluster asks the primary to hand
    /// it the lease, so every start of a node makes it the primary. Default: true.
    pub promote: bool,
    /// The KV key of the lease (LiteFS keeps the cluster id under `<key>/clusterid`).
    /// Default: `litefs/app`.
    pub key: String,
}

impl Default for ConsulLease {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            lock_delay: Duration::from_secs(1),
            promote: true,
            key: "litefs/app".to_owned(),
        }
    }
}

impl ConsulLease {
    /// Sets the session TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the lock delay.
    pub fn with_lock_delay(mut self, lock_delay: Duration) -> Self {
        self.lock_delay = lock_delay;
        self
    }

    /// Sets whether a starting candidate takes the lease by handoff.
    pub fn with_promote(mut self, promote: bool) -> Self {
        self.promote = promote;
        self
    }

    /// Sets the KV key of the lease.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }
}

/// How a node is cut off the lease server
/// ([`RealCluster::cut_lease`](super::RealCluster::cut_lease)).
///
/// ```
/// use litefs_orm_testkit::real::Cut;
///
/// assert_ne!(Cut::Hang, Cut::Refuse);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A network partition: the node's requests, on new and already open connections, get no
    /// answer until healed; then what was held goes through. LiteFS's Consul client sets no
    /// timeout, so a renewal hangs for as long as the cut lasts.
    Hang,
    /// The lease server is down for that node: open connections are reset and new ones refused
    /// until healed.
    Refuse,
}
