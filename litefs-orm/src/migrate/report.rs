//! What a migration command did ([`Report`]) and where the schema stands ([`Status`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::litefs::Pos;
use crate::litefs::role::Role;

/// A migration command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// Apply pending migrations (all, or the first N).
    Up,
    /// Roll back applied migrations (the last N).
    Down,
    /// Drop every table, then apply every migration.
    Fresh,
    /// Roll back every applied migration, then apply every migration.
    Refresh,
    /// Roll back every applied migration and drop the migrations table.
    Reset,
}

impl Command {
    /// The command's name, as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Up => "up",
            Command::Down => "down",
            Command::Fresh => "fresh",
            Command::Refresh => "refresh",
            Command::Reset => "reset",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The command ran on this node's database (the primary, or standalone).
    Ran {
        /// Migrations rolled back, in the order they were rolled back.
        rolled_back: Vec<String>,
        /// Migrations applied, in the order they were applied.
        applied: Vec<String>,
    },
    /// `up` on a replica: nothing was done here; the primary runs migrations and the schema
    /// arrives by replication.
    Skipped {
        /// The primary's LiteFS hostname.
        primary: String,
    },
    /// `up` with a wait on a replica: the replicated schema had every migration after `waited`.
    Replicated {
        /// How long the node waited (zero when the schema was already there).
        waited: Duration,
        /// Number of migrations the binary holds, all applied.
        migrations: usize,
    },
}

/// The result of a migration command: what happened, on which node, to which database.
///
/// Its `Display` is what the CLI prints: a summary line, then one line per migration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The command.
    pub command: Command,
    /// The node's role when the command finished.
    pub role: Role,
    /// The database file.
    pub database: PathBuf,
    /// What happened.
    pub outcome: Outcome,
}

impl Report {
    /// True when the command changed this node's database.
    pub fn changed_schema(&self) -> bool {
        match &self.outcome {
            Outcome::Ran {
                rolled_back,
                applied,
            } => !rolled_back.is_empty() || !applied.is_empty() || self.command == Command::Fresh,
            _ => false,
        }
    }

    /// True when this node skipped `up` because it is a replica.
    pub fn skipped(&self) -> bool {
        matches!(self.outcome, Outcome::Skipped { .. })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "migration" } else { "migrations" }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (cmd, db, role) = (self.command, self.database.display(), &self.role);
        match &self.outcome {
            Outcome::Ran {
                rolled_back,
                applied,
            } => {
                let (r, a) = (rolled_back.len(), applied.len());
                match self.command {
                    Command::Up if a == 0 => write!(
                        f,
                        "{cmd}: nothing to apply on {db} ({role}): every migration is applied"
                    )?,
                    Command::Up => write!(f, "{cmd}: applied {a} {} on {db} ({role})", plural(a))?,
                    Command::Down if r == 0 => write!(
                        f,
                        "{cmd}: nothing to roll back on {db} ({role}): no migration is applied"
                    )?,
                    Command::Down => {
                        write!(f, "{cmd}: rolled back {r} {} on {db} ({role})", plural(r))?
                    }
                    Command::Fresh => write!(
                        f,
                        "{cmd}: dropped every table, then applied {a} {} on {db} ({role})",
                        plural(a)
                    )?,
                    Command::Refresh => write!(
                        f,
                        "{cmd}: rolled back {r} and applied {a} {} on {db} ({role})",
                        plural(a)
                    )?,
                    Command::Reset => write!(
                        f,
                        "{cmd}: rolled back {r} {} and dropped the migrations table on {db} ({role})",
                        plural(r)
                    )?,
                }
                for name in rolled_back {
                    write!(f, "\n  rolled back  {name}")?;
                }
                for name in applied {
                    write!(f, "\n  applied      {name}")?;
                }
                Ok(())
            }
            Outcome::Skipped { primary } => write!(
                f,
                "{cmd}: skipped on {db}: this node is a {role}, and migrations run on the primary ({primary}); \
                 the schema arrives here by replication (`up --wait` waits for it)"
            ),
            Outcome::Replicated { waited, migrations } => write!(
                f,
                "{cmd}: {db} has all {migrations} {} applied by the primary ({role}; waited {})",
                plural(*migrations),
                human(*waited)
            ),
        }
    }
}

/// One migration of the binary and whether this node's database has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationState {
    /// The migration's name (`mYYYYMMDD_HHMMSS_what`).
    pub name: String,
    /// True when the migrations table records it.
    pub applied: bool,
}

/// Where this node's schema stands against the binary's migrations.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The node's role.
    pub role: Role,
    /// The database file.
    pub database: PathBuf,
    /// False when the database file does not exist yet (every migration is then pending).
    pub exists: bool,
    /// The local LiteFS position (`None` when standalone).
    pub position: Option<Pos>,
    /// Every migration of the binary, oldest first.
    pub migrations: Vec<MigrationState>,
    /// Migrations the database records that this binary does not hold (applied by a newer
    /// version of the app).
    pub unknown: Vec<String>,
}

impl Status {
    /// Names of the binary's migrations not applied here, oldest first.
    pub fn pending(&self) -> Vec<&str> {
        self.migrations
            .iter()
            .filter(|m| !m.applied)
            .map(|m| m.name.as_str())
            .collect()
    }

    /// Names of the binary's migrations applied here, oldest first.
    pub fn applied(&self) -> Vec<&str> {
        self.migrations
            .iter()
            .filter(|m| m.applied)
            .map(|m| m.name.as_str())
            .collect()
    }

    /// True when every migration of the binary is applied here.
    pub fn is_up_to_date(&self) -> bool {
        self.migrations.iter().all(|m| m.applied)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node: {}", self.role)?;
        write!(f, "\ndatabase: {}", self.database.display())?;
        if !self.exists {
            f.write_str(" (does not exist yet)")?;
        }
        if let Some(pos) = self.position {
            write!(f, "\ntxid: {:016x}", pos.txid)?;
        }
        for m in &self.migrations {
            let state = if m.applied { "applied" } else { "pending" };
            write!(f, "\n  {state:<8} {}", m.name)?;
        }
        for name in &self.unknown {
            write!(f, "\n  unknown  {name} (applied, but not in this binary)")?;
        }
        let (a, p) = (self.applied().len(), self.pending().len());
        write!(f, "\n{a} applied, {p} pending")?;
        if !self.unknown.is_empty() {
            write!(f, ", {} unknown", self.unknown.len())?;
        }
        Ok(())
    }
}

/// A duration for people: `850ms`, `2.4s`.
pub(crate) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
