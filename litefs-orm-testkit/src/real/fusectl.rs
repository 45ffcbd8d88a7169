//! The FUSE connections behind LiteFS mounts: abort the one of a mount whose LiteFS is gone, so
//! nothing — the test process included — waits forever on a file system nobody serves.
//!
//! A LiteFS killed while a thread of its own waits on its own mount can stay half-exited,
//! holding the connection open; every later access to the mount then blocks in the kernel.
//! Aborting the connection (`/sys/fs/fuse/connections/<N>/abort`) fails those accesses with
//! `ENOTCONN` instead.

use std::path::{Path, PathBuf};

/// Where the kernel's `fusectl` file system lists FUSE connections.
const CONNECTIONS: &str = "/sys/fs/fuse/connections";

/// Aborts the FUSE connection of every mount stacked at `dir`, if any. Best effort.
pub(crate) fn abort(dir: &Path) {
    let ids = connections_of(dir);
    if ids.is_empty() {
        return;
    }
    ensure_fusectl();
    for id in ids {
        let _ = std::fs::write(
            Path::new(CONNECTIONS).join(id.to_string()).join("abort"),
            "1",
        );
    }
}

/// The connection numbers of the FUSE mounts at `dir`: the minor device numbers that
/// `/proc/self/mountinfo` gives them (FUSE mounts have major 0).
fn connections_of(dir: &Path) -> Vec<u32> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let want = dir.to_string_lossy();
    info.lines()
        .filter(|l| l.contains(" - fuse"))
        .filter_map(|l| {
            let mut fields = l.split(' ');
            let dev = fields.nth(2)?;
            let point = fields.nth(1)?;
            (super::node::unescape(point) == want).then_some(dev)
        })
        .filter_map(|dev| dev.strip_prefix("0:")?.parse().ok())
        .collect()
}

/// Mounts `fusectl` at its usual place when it is not there (needs root; best effort).
fn ensure_fusectl() {
    let listed = std::fs::read_dir(CONNECTIONS).is_ok_and(|mut d| d.next().is_some());
    if !listed {
        let _ = std::process::Command::new("mount")
            .args(["-t", "fusectl", "fusectl", CONNECTIONS])
            .output();
    }
}

/// Whether the LiteFS whose pid `pid_file` records still runs (a live process named `litefs`,
/// not a zombie). Reads only `/proc/<pid>/stat`, which never blocks on a dead mount.
pub(crate) fn litefs_alive(pid_file: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return false;
    };
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    let Ok(stat) = std::fs::read_to_string(stat) else {
        return false;
    };
    // `pid (comm) state ...`: comm may hold spaces, so read around the parentheses.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].split_whitespace().next();
    comm == "litefs" && state != Some("Z")
}
