//! What LiteFS tells a node: the mount's files and HTTP API, the node's role, and its
//! replication position.

mod files;
mod mount_io;
pub mod position;
pub mod role;
pub(crate) mod startup;

pub use files::{
    EVENT_INIT, EVENT_PRIMARY_CHANGE, EVENT_TX, Event, FormatError, LAG_FILE, LAG_NEVER_SYNCED_MS,
    MountPaths, NodeInfo, POS_LEN, POS_SUFFIX, PRIMARY_FILE, Pos, PrimaryEventData, PrimaryInfo,
    TxEventData, format_lag, lag_duration, parse_lag, pos_path, read_lag, read_pos, read_primary,
};
pub(crate) use mount_io::off_runtime;
