//! [`BackupStatus`]: how the backup of this node is doing, for health checks and metrics.

use std::fmt;

#[cfg(doc)]
use super::BackupConfig;
#[cfg(doc)]
use super::replicator::STABLE;

/// How the backup of this node is doing, for health checks and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupStatus {
    /// This node writes locally (primary or standalone), so it should be backing up.
    pub wanted: bool,
    /// A Litestream process runs and has opened the database.
    pub replicating: bool,
    /// Failures since Litestream last replicated [`STABLE`] without an error.
    pub consecutive_failures: u32,
    /// Every failure since start.
    pub failures_total: u64,
    /// The last failure: Litestream's error line, or how it exited.
    pub last_error: Option<String>,
    /// [`BackupConfig::max_failures`] failures in a row: no more restarts.
    pub gave_up: bool,
    /// The configured [`BackupConfig::max_failures`].
    pub max_failures: u32,
}

impl BackupStatus {
    /// No failure since the backup was last healthy (or this node does not back up).
    pub fn healthy(&self) -> bool {
        !self.gave_up && self.consecutive_failures == 0
    }

    /// The status in the Prometheus text format (`litefs_orm_backup_*`).
    pub fn metrics(&self) -> String {
        let line = |name: &str, kind: &str, help: &str, value: u64| {
            format!(
                "# HELP litefs_orm_backup_{name} {help}\n# TYPE litefs_orm_backup_{name} {kind}\nlitefs_orm_backup_{name} {value}\n"
            )
        };
        [
            line(
                "healthy",
                "gauge",
                "1 when backups work (or this node does not back up), 0 after a Litestream failure",
                self.healthy().into(),
            ),
            line(
                "wanted",
                "gauge",
                "1 when this node writes locally (primary or standalone) and so backs up",
                self.wanted.into(),
            ),
            line(
                "replicating",
                "gauge",
                "1 while a Litestream process replicates",
                self.replicating.into(),
            ),
            line(
                "consecutive_failures",
                "gauge",
                "Litestream failures in a row",
                self.consecutive_failures.into(),
            ),
            line(
                "failures_total",
                "counter",
                "Litestream failures (an error logged, or an exit) since start",
                self.failures_total,
            ),
            line(
                "gave_up",
                "gauge",
                "1 once LITEFS_ORM_BACKUP_MAX_FAILURES failures in a row stopped the backup",
                self.gave_up.into(),
            ),
        ]
        .concat()
    }
}

impl fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failing = |f: &mut fmt::Formatter<'_>, what: &str| {
            write!(
                f,
                "backup {what}: {} failure(s) in a row",
                self.consecutive_failures
            )?;
            if let Some(e) = &self.last_error {
                write!(f, "; last: {e}")?;
            }
            Ok(())
        };
        if self.gave_up {
            failing(f, "stopped (LITEFS_ORM_BACKUP_MAX_FAILURES reached)")
        } else if self.consecutive_failures > 0 {
            failing(f, "failing")
        } else if !self.wanted {
            f.write_str("backup: not this node's job (a replica); ok")
        } else if self.replicating {
            f.write_str("backup: replicating; ok")
        } else {
            f.write_str("backup: starting litestream; ok")
        }
    }
}
