//! The runner: checks the role, runs commands on the primary, waits for the schema on a replica.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use sea_orm_migration::MigratorTrait;

use super::report::{Command, MigrationState, Outcome, Report, Status};
use super::target::Target;
use crate::error::{Error, Result, is_replica_write_error};
use crate::litefs::role::Role;

/// How often a waiting replica re-reads the migrations table (sooner on a role change).
const SCHEMA_POLL: Duration = Duration::from_millis(100);

/// `up`: applies where writes are local; on a replica skips, or waits for the schema.
pub(crate) async fn up<M: MigratorTrait>(
    target: &Target,
    steps: Option<u32>,
    wait: Option<Duration>,
) -> Result<Report> {
    if let Some(wait) = wait {
        return wait_for_schema::<M>(target, steps, wait).await;
    }
    let start = Instant::now();
    let limit = target.config().primary_wait;
    loop {
        match target.role() {
            role if role.writes_locally() => {
                return run_here::<M>(target, Command::Up, steps).await;
            }
            Role::Replica { primary } => {
                tracing::info!(%primary, "migrations run on the primary; skipping `up` on this replica");
                return Ok(Report {
                    command: Command::Up,
                    role: Role::Replica {
                        primary: primary.clone(),
                    },
                    database: target.database(),
                    outcome: Outcome::Skipped { primary },
                });
            }
            _ => {
                let left = limit.saturating_sub(start.elapsed());
                if target.role_watch().wait_for_primary(left).await.is_none() {
                    return Err(Error::NoPrimary {
                        waited: start.elapsed(),
                    });
                }
            }
        }
    }
}

/// `down`, `fresh`, `refresh`, `reset`: only where writes are local.
pub(crate) async fn destructive<M: MigratorTrait>(
    target: &Target,
    command: Command,
    steps: Option<u32>,
) -> Result<Report> {
    let role = target.role();
    if !role.writes_locally() {
        return Err(Error::NotPrimary {
            primary: role.primary().map(str::to_owned),
            hint: format!(
                "`{command}` changes the schema, so it runs only on the primary: run it there \
                 (on a replica, `up` changes nothing and `up --wait` waits for the schema)"
            ),
        });
    }
    run_here::<M>(target, command, steps).await
}

/// Where the schema of `target` stands, read without writing anything.
pub(crate) async fn status<M: MigratorTrait>(target: &Target) -> Result<Status> {
    let names = migration_names::<M>();
    let (exists, recorded) = match target.reader().await? {
        Some(conn) => (true, recorded::<M>(conn).await?),
        None => (false, Vec::new()),
    };
    let set: HashSet<&str> = recorded.iter().map(String::as_str).collect();
    let known: HashSet<&str> = names.iter().map(String::as_str).collect();
    Ok(Status {
        role: target.role(),
        database: target.database(),
        exists,
        position: target.position(),
        migrations: names
            .iter()
            .map(|name| MigrationState {
                name: name.clone(),
                applied: set.contains(name.as_str()),
            })
            .collect(),
        unknown: recorded
            .iter()
            .filter(|v| !known.contains(v.as_str()))
            .cloned()
            .collect(),
    })
}

/// Runs `command` on this node's own database, reporting what it changed.
async fn run_here<M: MigratorTrait>(
    target: &Target,
    command: Command,
    steps: Option<u32>,
) -> Result<Report> {
    let conn = target.writer().await?;
    let names = migration_names::<M>();
    let before: HashSet<String> = recorded::<M>(conn).await?.into_iter().collect();
    tracing::info!(%command, database = %target.database().display(), "running migrations");
    let result = match command {
        Command::Up => M::up(conn, steps).await,
        Command::Down => M::down(conn, steps).await,
        Command::Fresh => M::fresh(conn).await,
        Command::Refresh => M::refresh(conn).await,
        Command::Reset => M::reset(conn).await,
    };
    if let Err(e) = result {
        return Err(failed(target, command, e).await);
    }
    let after: HashSet<String> = recorded::<M>(conn).await?.into_iter().collect();
    let in_order = |keep: &dyn Fn(&String) -> bool| -> Vec<String> {
        names.iter().filter(|n| keep(n)).cloned().collect()
    };
    let (mut rolled_back, applied) = match command {
        Command::Up => (
            vec![],
            in_order(&|n| !before.contains(n) && after.contains(n)),
        ),
        Command::Down => (
            in_order(&|n| before.contains(n) && !after.contains(n)),
            vec![],
        ),
        Command::Fresh => (vec![], in_order(&|n| after.contains(n))),
        Command::Refresh => (
            in_order(&|n| before.contains(n)),
            in_order(&|n| after.contains(n)),
        ),
        Command::Reset => (in_order(&|n| before.contains(n)), vec![]),
    };
    rolled_back.reverse();
    Ok(Report {
        command,
        role: target.role(),
        database: target.database(),
        outcome: Outcome::Ran {
            rolled_back,
            applied,
        },
    })
}

/// Waits until the replicated migrations table records every migration of the binary; if
/// the node becomes primary meanwhile, applies them itself.
async fn wait_for_schema<M: MigratorTrait>(
    target: &Target,
    steps: Option<u32>,
    wait: Duration,
) -> Result<Report> {
    let start = Instant::now();
    let names = migration_names::<M>();
    let mut logged = false;
    loop {
        let role = target.role();
        if role.writes_locally() {
            return run_here::<M>(target, Command::Up, steps).await;
        }
        let read = match target.reader().await {
            Ok(Some(conn)) => recorded::<M>(conn).await.map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let (pending, read_error) = match read {
            Ok(recorded) => {
                let set: HashSet<String> = recorded.unwrap_or_default().into_iter().collect();
                (
                    names
                        .iter()
                        .filter(|n| !set.contains(*n))
                        .cloned()
                        .collect::<Vec<_>>(),
                    None,
                )
            }
            // Transient while LiteFS applies a transaction; retried until the deadline.
            Err(e) => (names.clone(), Some(e)),
        };
        if pending.is_empty() {
            return Ok(Report {
                command: Command::Up,
                role,
                database: target.database(),
                outcome: Outcome::Replicated {
                    waited: start.elapsed(),
                    migrations: names.len(),
                },
            });
        }
        let left = wait.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(match read_error {
                Some(e) => e,
                None => Error::SchemaWaitTimeout {
                    waited: start.elapsed(),
                    pending,
                    primary: role.primary().map(str::to_owned),
                },
            });
        }
        if !logged {
            tracing::info!(%role, pending = pending.len(), "waiting for the primary's migrations to replicate");
            logged = true;
        }
        target
            .role_watch()
            .changed_from(&role, SCHEMA_POLL.min(left))
            .await;
    }
}

/// The names of the binary's migrations, oldest first.
fn migration_names<M: MigratorTrait>() -> Vec<String> {
    M::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

/// The versions the migrations table records (none when the table does not exist), read
/// without writing: unlike `MigratorTrait::get_migration_with_status`, this never creates
/// the table and accepts versions the binary does not hold.
async fn recorded<M: MigratorTrait>(conn: &DatabaseConnection) -> Result<Vec<String>> {
    let table = M::migration_table_name().to_string();
    let exists = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            [table.clone().into()],
        ))
        .await?
        .is_some();
    if !exists {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT version FROM \"{}\" ORDER BY version",
        table.replace('"', "\"\"")
    );
    let rows = conn
        .query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
        .await?;
    let versions = rows
        .iter()
        .map(|row| row.try_get::<String>("", "version"))
        .collect::<Result<Vec<_>, DbErr>>()?;
    Ok(versions)
}

/// A failed migration: "not primary" only when SQLite refused the way a LiteFS replica does
/// and a fresh look at the role agrees; otherwise the database's own error.
async fn failed(target: &Target, command: Command, e: DbErr) -> Error {
    let demoted = is_replica_write_error(&e)
        && matches!(target.role_watch().check().await, Some(role) if !role.writes_locally());
    if demoted {
        target.role_watch().refresh();
        return Error::NotPrimary {
            primary: target.role().primary().map(str::to_owned),
            hint: format!(
                "this node stopped being the primary during `{command}`; migrations completed \
                 before that stay applied: run `{command}` on the primary"
            ),
        };
    }
    Error::MigrationFailed {
        command: command.as_str(),
        database: target.database().display().to_string(),
        source: e,
    }
}
