//! What a CLI command prints on success: a migration report, a status, or the node's role.

use std::fmt;
use std::path::PathBuf;

use super::run::AppExit;
use crate::litefs::role::Role;
use crate::litefs::{LAG_NEVER_SYNCED_MS, Pos};
use crate::migrate::{Report, Status, Target};

/// The result of a successful command; its `Display` is what the CLI prints to stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// `up`, `down`, `fresh`, `refresh`, `reset`.
    Report(Report),
    /// `status`.
    Status(Status),
    /// `role`.
    Role(RoleInfo),
    /// `run`: how the app ended. The CLI prints it to stderr (stdout is the app's) and exits
    /// with the app's exit code.
    Run(AppExit),
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Report(r) => r.fmt(f),
            Output::Status(s) => s.fmt(f),
            Output::Role(r) => r.fmt(f),
            Output::Run(r) => r.fmt(f),
        }
    }
}

/// Where this node stands in the LiteFS cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoleInfo {
    /// The node's role.
    pub role: Role,
    /// The database file.
    pub database: PathBuf,
    /// The local LiteFS position (`None` when standalone).
    pub position: Option<Pos>,
    /// Milliseconds since the last contact with the primary, from `.lag`.
    pub lag_ms: Option<i64>,
    /// Where the role was read from: LiteFS's HTTP API, the mount's files, or no mount.
    pub source: String,
}

impl RoleInfo {
    /// Reads the role, position and lag of `target`.
    pub fn read(target: &Target) -> Self {
        let config = target.config();
        let source = match (&config.litefs_mount, &config.litefs_http) {
            (None, _) => "no LiteFS mount configured".to_owned(),
            (Some(_), Some(url)) => format!("read from LiteFS's HTTP API at {url}"),
            (Some(mount), None) => format!("read from {}", mount.join(".primary").display()),
        };
        RoleInfo {
            role: target.role(),
            database: target.database(),
            position: target.position(),
            lag_ms: target.lag_ms(),
            source,
        }
    }
}

impl fmt::Display for RoleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "role: {} ({})", self.role, self.source)?;
        write!(f, "\ndatabase: {}", self.database.display())?;
        if let Some(pos) = self.position {
            write!(
                f,
                "\ntxid: {:016x} (checksum {:016x})",
                pos.txid, pos.checksum
            )?;
        }
        // The primary's `.lag` is always zero: it is the one others lag behind.
        match self.lag_ms.filter(|_| !self.role.writes_locally()) {
            Some(LAG_NEVER_SYNCED_MS) => f.write_str("\nlag: never synced with a primary")?,
            Some(ms) => write!(
                f,
                "\nlag: {}ms since the last contact with the primary",
                ms.max(0)
            )?,
            None => {}
        }
        Ok(())
    }
}
