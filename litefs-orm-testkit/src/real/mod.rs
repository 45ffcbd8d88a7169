//! Starts and controls a real LiteFS v0.5.14 cluster on loopback, for tests.
//!
//! Needs the LiteFS binary (see [`litefs_binary`]) and FUSE (see [`check_fuse`]).

mod binary;
mod cluster;
mod error;
mod node;
mod options;
mod wait;

pub use binary::{check_fuse, litefs_binary};
pub use cluster::RealCluster;
pub use error::{RealError, Result};
pub use node::{MountState, clear_mount, is_listed, mount_state, read_pos};
pub use options::RealOptions;
