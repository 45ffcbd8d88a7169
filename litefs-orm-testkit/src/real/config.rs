//! Each node's `litefs.yml`.

use super::error::{RealError, Result};
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
