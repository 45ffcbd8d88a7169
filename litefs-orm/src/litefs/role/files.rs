//! The role read from the mount's files: `.primary` names a primary; its absence with zero
//! `.lag`, twice, means this node is the primary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{CONFIRM_GAP, Role};
use crate::litefs;

/// Reads the role from `.primary` and `.lag`.
#[derive(Debug)]
pub(super) struct FileSource {
    mount: PathBuf,
    /// Whether the last read failed, to log the failure once when it starts and once when
    /// it ends rather than at every poll.
    failing: AtomicBool,
}

/// A change in whether the role files can be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Health {
    Failing,
    Recovered,
}

impl FileSource {
    pub(super) fn new(mount: PathBuf) -> Self {
        FileSource {
            mount,
            failing: AtomicBool::new(false),
        }
    }

    /// Notes whether a read failed; returns the change, if this read changes it.
    pub(super) fn note(&self, failed: bool) -> Option<Health> {
        match (self.failing.swap(failed, Ordering::Relaxed), failed) {
            (false, true) => Some(Health::Failing),
            (true, false) => Some(Health::Recovered),
            _ => None,
        }
    }

    /// The role the files say; while they cannot be read, "no primary" (logged once).
    pub(super) async fn read(&self) -> Role {
        match self.try_read().await {
            Ok(role) => role,
            Err(_) => Role::NoPrimary,
        }
    }

    /// The role the files say, or the error reading them.
    pub(super) async fn try_read(&self) -> std::io::Result<Role> {
        let result = self.read_files().await;
        match (self.note(result.is_err()), &result) {
            (Some(Health::Failing), Err(e)) => {
                tracing::warn!(mount = %self.mount.display(), error = %e, "cannot read the LiteFS role files; taking this node for a replica with no primary until they can be read");
            }
            (Some(Health::Recovered), _) => {
                tracing::info!(mount = %self.mount.display(), "the LiteFS role files can be read again");
            }
            _ => {}
        }
        result
    }

    async fn read_files(&self) -> std::io::Result<Role> {
        let primary_file = self.mount.join(litefs::PRIMARY_FILE);
        let lag_file = self.mount.join(litefs::LAG_FILE);
        let read = || {
            let (primary_file, lag_file) = (primary_file.clone(), lag_file.clone());
            async move {
                let both = litefs::off_runtime(move || {
                    Ok((
                        litefs::read_primary(&primary_file),
                        litefs::read_lag(&lag_file),
                    ))
                });
                both.await.unwrap_or_else(|e| {
                    let again = std::io::Error::new(e.kind(), e.to_string());
                    (Err(e), Err(again))
                })
            }
        };
        Ok(match read().await {
            (Ok(Some(host)), _) if !host.is_empty() => Role::Replica { primary: host },
            (Ok(_), Ok(Some(0))) => {
                // Absent `.primary` and zero lag: confirm, since a replica that just lost
                // its primary may read zero lag for a moment.
                tokio::time::sleep(CONFIRM_GAP).await;
                match read().await {
                    (Ok(None), Ok(Some(0))) => Role::Primary,
                    (Ok(Some(host)), _) if !host.is_empty() => Role::Replica { primary: host },
                    _ => Role::NoPrimary,
                }
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
            _ => Role::NoPrimary,
        })
    }
}
