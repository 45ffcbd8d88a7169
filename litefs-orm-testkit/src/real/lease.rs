//! How a node is cut off the lease server of a Consul lease.

/// How a node is cut off the lease server.
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
