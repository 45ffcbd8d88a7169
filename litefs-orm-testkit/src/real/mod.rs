//! Starts and controls a real LiteFS v0.5.14 cluster on loopback, for tests.
//!
//! Needs the LiteFS binary (see [`litefs_binary`]) and FUSE (see [`check_fuse`]). Each node
//! gets `<root>/nN/{mnt,data}`, a `litefs.yml` and an HTTP port on 127.0.0.1; its output goes
//! to `<root>/nN/litefs.log` ([`RealCluster::log`]).
//!
//! Stop the apps before the cluster is dropped (or their LiteFS is stopped): in WAL mode
//! SQLite maps `<db>-shm` from the mount, and an app's next use of it once LiteFS is gone ends
//! the process with SIGBUS — close the handles first (`ReplicatedDb::close`), or run the
//! database in a rollback journal mode. Dropping the cluster SIGKILLs every LiteFS (resuming
//! paused ones first), aborts the FUSE connections of their mounts, so nothing can block on
//! them afterwards, and stops the lease server.
//!
//! # Leases
//!
//! By default ([`Lease::Static`]) node [`RealOptions::primary`] (0 unless
//! [`RealOptions::with_primary`] says otherwise) is the static primary, and only the test
//! changes it ([`RealCluster::change_primary`]).
//!
//! With [`Lease::Consul`] every node is a candidate and LiteFS elects the primary through a
//! Consul lease. Consul's server is not needed: the cluster runs a small lease server of its
//! own that speaks the part of Consul's HTTP API LiteFS calls (sessions with a TTL and a lock
//! delay, KV acquire and release), and each node reaches it through a gate of its own
//! ([`RealCluster::consul_url`]). The faults of an automatic failover are then at hand:
//!
//! - [`RealCluster::kill_node`]: the primary's session runs out one TTL after its last
//!   renewal (LiteFS renews every TTL/2) and another node takes the lease, within
//!   TTL + lock delay + about a second of LiteFS's retry;
//! - [`RealCluster::cut_lease`] with [`Cut::Hang`]: a partition from the lease server. The
//!   primary's renewal hangs (LiteFS's Consul client has no timeout), it goes on as primary,
//!   and nobody else takes over while its replicas' streams stay up; on
//!   [`heal`](RealCluster::heal_lease) it learns its session is gone, steps down and retakes
//!   the lease. With [`Cut::Refuse`] the renewals fail, so it steps down at its TTL and
//!   another node takes over;
//! - [`RealCluster::pause_node`] (SIGSTOP): a frozen primary is not replaced — the replicas'
//!   streams stay open and nobody reads the lease — and at
//!   [`resume`](RealCluster::resume_node) it steps down and takes the lease again;
//! - with [`ConsulLease::promote`] (the default), every start of a node makes it the primary
//!   by handoff, [`RealCluster::change_primary`] too.
//!
//! [`RealCluster::wait_for_primary`] and [`RealCluster::current_primary`] say who is primary;
//! [`RealCluster::lease_events`] is the lease server's log of sessions and keys, with times to
//! set beside the LiteFS logs (which then carry timestamps).
//!
//! ```no_run
//! # async fn demo() -> litefs_orm_testkit::real::Result<()> {
//! use std::time::Duration;
//! use litefs_orm_testkit::real::{RealCluster, RealOptions};
//!
//! let mut cluster = RealCluster::start(RealOptions::default().with_nodes(3)).await?;
//! // An app opens cluster.db_path(i) and follows cluster.http_url(i)'s /info and /events.
//! cluster.sync(Duration::from_secs(5)).await?;
//! cluster.restart_node(0).await?; // LiteFS restarted under whatever holds the mount
//! cluster.change_primary(1).await?; // a planned primary change
//! # Ok(()) }
//! ```
//!
//! A failover:
//!
//! ```no_run
//! # async fn demo() -> litefs_orm_testkit::real::Result<()> {
//! use std::time::Duration;
//! use litefs_orm_testkit::real::{ConsulLease, Cut, Lease, RealCluster, RealOptions};
//!
//! let lease = ConsulLease::default().with_ttl(Duration::from_secs(4));
//! let opts = RealOptions::default().with_lease(Lease::Consul(lease));
//! let mut cluster = RealCluster::start(opts).await?;
//! let old = cluster.wait_for_primary(Duration::from_secs(5)).await?;
//! cluster.kill_node(old).await?;
//! let new = cluster.wait_for_primary(Duration::from_secs(10)).await?;
//! assert_ne!(new, old);
//! cluster.cut_lease(new, Cut::Hang)?; // it stays primary while cut
//! cluster.heal_lease(new)?; // then steps down and takes the lease again
//! println!("{}", cluster.lease_events().join("\n"));
//! # Ok(()) }
//! ```

mod binary;
mod cluster;
mod config;
mod consul;
mod error;
mod failover;
mod fusectl;
mod lease;
mod lifecycle;
mod node;
mod options;
mod wait;

pub use binary::{check_fuse, litefs_binary};
pub use cluster::RealCluster;
pub use error::{RealError, Result};
pub use lease::{ConsulLease, Cut, Lease};
pub use node::{MountState, clear_mount, is_listed, mount_state, read_pos};
pub use options::RealOptions;
