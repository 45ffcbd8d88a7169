//! Starts and controls a real LiteFS v0.5.14 cluster on loopback, for tests.
//!
//! Needs the LiteFS binary (see [`litefs_binary`]) and FUSE (see [`check_fuse`]). Each node
//! gets `<root>/nN/{mnt,data}`, a `litefs.yml` with a static lease (node 0 the primary unless
//! [`RealOptions::with_primary`] says otherwise) and an HTTP port on 127.0.0.1; its output goes
//! to `<root>/nN/litefs.log` ([`RealCluster::log`]).
//!
//! Stop the apps before the cluster is dropped (or their LiteFS is stopped): in WAL mode
//! SQLite maps `<db>-shm` from the mount, and an app's next use of it once LiteFS is gone ends
//! the process with SIGBUS — close the handles first (`ReplicatedDb::close`), or run the
//! database in a rollback journal mode. Dropping the cluster SIGKILLs every LiteFS and aborts
//! the FUSE connections of their mounts, so nothing can block on them afterwards.
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

mod binary;
mod cluster;
mod config;
// The cluster option that runs it comes next.
#[allow(dead_code)]
mod consul;
mod error;
mod fusectl;
mod lease;
mod node;
mod options;
mod wait;

pub use binary::{check_fuse, litefs_binary};
pub use cluster::RealCluster;
pub use error::{RealError, Result};
pub use lease::Cut;
pub use node::{MountState, clear_mount, is_listed, mount_state, read_pos};
pub use options::RealOptions;
