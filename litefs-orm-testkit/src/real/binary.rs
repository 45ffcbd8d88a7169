//! Finding the LiteFS binary and checking that FUSE can be used.

use std::path::{Path, PathBuf};

use super::error::{RealError, Result};

/// Where the LiteFS binary sits relative to a folder that holds the project.
const SHARED_REL: &str = "shared/litefs/litefs";

/// Finds the LiteFS binary to run.
///
/// Looks, in order, at the `LITEFS_BIN` environment variable, `litefs` on `PATH`, and
/// `shared/litefs/litefs` in any ancestor of the current directory or of `CARGO_MANIFEST_DIR`
/// (the runtime variable, then the one this crate was compiled with). Never skips silently:
/// without a binary the error says how to get one.
pub fn litefs_binary() -> Result<PathBuf> {
    let mut looked = Vec::new();
    if let Some(bin) = std::env::var_os("LITEFS_BIN") {
        let bin = PathBuf::from(bin);
        if is_executable(&bin) {
            return Ok(bin);
        }
        looked.push(format!("LITEFS_BIN={}", bin.display()));
    }
    if let Some(found) = find_on_path("litefs") {
        return Ok(found);
    }
    looked.push("litefs on PATH".to_owned());
    let mut starts: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        starts.push(PathBuf::from(dir));
    }
    if let Some(dir) = option_env!("CARGO_MANIFEST_DIR") {
        starts.push(PathBuf::from(dir));
    }
    for start in &starts {
        for dir in start.ancestors() {
            let candidate = dir.join(SHARED_REL);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
        looked.push(format!("{SHARED_REL} above {}", start.display()));
    }
    Err(RealError::BinaryNotFound {
        looked: looked.join(", "),
    })
}

/// Checks that this process can mount FUSE file systems and unmount them again.
///
/// Needs `/dev/fuse`, and `fusermount3` on `PATH` or root (then `umount -l` clears mounts).
pub fn check_fuse() -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        return Err(RealError::FuseUnavailable(
            "/dev/fuse does not exist; LiteFS needs a FUSE device (load the fuse module, or \
             run the container with --device /dev/fuse --cap-add SYS_ADMIN)"
                .to_owned(),
        ));
    }
    if fusermount().is_none() && !nix::unistd::geteuid().is_root() {
        return Err(RealError::FuseUnavailable(
            "fusermount3 is not on PATH and this process is not root; install it with \
             `apt-get install fuse3`"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The `fusermount3` binary, if it is on `PATH`.
pub(crate) fn fusermount() -> Option<PathBuf> {
    find_on_path("fusermount3")
}

/// Finds an executable by name in the directories of `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// Whether `path` is a regular file with an execute bit set.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
