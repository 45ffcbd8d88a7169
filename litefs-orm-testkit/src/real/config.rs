//! Each node's `litefs.yml`: a static lease, or a Consul lease through the node's gate.

use super::consul::go_duration;
use super::error::{RealError, Result};
use super::lease::ConsulLease;
use super::node::NodeSpec;

/// A YAML (and JSON) double-quoted string.
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The sections every config has: the mount, the data directory and the HTTP address.
fn common(spec: &NodeSpec) -> String {
    format!(
        "fuse:\n  dir: {}\ndata:\n  dir: {}\nhttp:\n  addr: {}\n",
        q(&spec.mnt.to_string_lossy()),
        q(&spec.data.to_string_lossy()),
        q(&format!("127.0.0.1:{}", spec.port)),
    )
}

fn write(spec: &NodeSpec, text: String) -> Result<()> {
    std::fs::write(&spec.config, text)
        .map_err(|e| RealError::io(format!("write {}", spec.config.display()), e))
}

/// Writes `spec`'s `litefs.yml` with a static lease naming `primary` as the primary.
pub(crate) fn write_static(spec: &NodeSpec, primary: &NodeSpec, candidate: bool) -> Result<()> {
    let text = format!(
        "{}lease:\n  type: \"static\"\n  hostname: {}\n  advertise-url: {}\n  \
         candidate: {candidate}\n",
        common(spec),
        q(&primary.hostname),
        q(&primary.http_url()),
    );
    write(spec, text)
}

/// Writes `spec`'s `litefs.yml` with a Consul lease reached at `consul_url` (the node's gate).
/// LiteFS's log lines then carry their time (`log.timestamp`), to set beside the lease
/// server's events.
pub(crate) fn write_consul(spec: &NodeSpec, lease: &ConsulLease, consul_url: &str) -> Result<()> {
    let text = format!(
        "{}log:\n  timestamp: true\nlease:\n  type: \"consul\"\n  hostname: {}\n  \
         advertise-url: {}\n  candidate: true\n  promote: {}\n  consul:\n    url: {}\n    \
         key: {}\n    ttl: {}\n    lock-delay: {}\n",
        common(spec),
        q(&spec.hostname),
        q(&spec.http_url()),
        lease.promote,
        q(consul_url),
        q(&lease.key),
        q(&go_duration(lease.ttl)),
        q(&go_duration(lease.lock_delay)),
    );
    write(spec, text)
}
