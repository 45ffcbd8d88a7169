//! Durable acknowledgements: a write acknowledged only once the nodes LiteFS could elect
//! next hold it.
//!
//! LiteFS replicates asynchronously, and a Consul lease goes to whichever candidate takes it
//! first, not to the most up-to-date one: a commit the primary acknowledged and no survivor
//! had is gone when the primary dies. With [`Durability::Candidates`] the primary answers a
//! write only once every live candidate holds its commit, so whichever of them LiteFS
//! elects has it.
//!
//! **How the primary knows.** Every replica's handle reports its own LiteFS position —
//! each transaction's TXID and post-apply checksum, as LiteFS's `/events` reports them — to
//! the primary's endpoint over one long-lived signed request ([`POSITIONS_PATH`]), and
//! again as a heartbeat while nothing changes. The primary counts a node as holding a commit
//! when the node reported a position at or past the commit's TXID **whose checksum is the
//! primary's own at that TXID**: a node on an abandoned history (a higher TXID, another
//! checksum) never counts. No configuration beyond what forwarding needs: replicas already
//! know the primary's URL.
//!
//! **Who counts.** A node is *live* while its report stream is open and it spoke within
//! [`Config::durability_timeout`](crate::Config::durability_timeout), and a *candidate* when
//! its LiteFS says so (`/info`). A live node that does not hold a commit within that bound
//! is set aside — the write is answered [`Error::NotDurable`](crate::Error::NotDurable)
//! (committed, not yet durable) — and counts again once it has caught up: a dead or stuck
//! replica costs one bounded wait, not every write.
//!
//! [`POSITIONS_PATH`]: crate::POSITIONS_PATH

mod level;
mod peers;
mod report;
mod stream;

pub use level::Durability;
pub(crate) use peers::Peers;
pub use peers::{NotDurable, PeerStatus};
pub(crate) use report::report_positions;
pub(crate) use stream::handle_positions;
