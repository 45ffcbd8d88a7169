//! The migrations command line: any sea-orm-migration crate gets it with a three-line `main`.
//!
//! Enabled by the `cli` feature. A migration crate's binary is:
//!
//! ```no_run
//! # use sea_orm_migration::prelude::*;
//! # struct Migrator;
//! # #[async_trait::async_trait]
//! # impl MigratorTrait for Migrator {
//! #     fn migrations() -> Vec<Box<dyn MigrationTrait>> { vec![] }
//! # }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     litefs_orm::cli::main::<Migrator>().await
//! }
//! ```
//!
//! | command | on the primary or standalone | on a replica |
//! |---|---|---|
//! | `up [-n N]` | applies pending migrations (all, or the first N) | changes nothing, says the primary runs migrations and names it; exit 0 |
//! | `up --wait [--wait-timeout 60s]` | applies | waits until the replicated schema has every migration; past the deadline, exit 1 |
//! | `down [-n N]` (default 1), `fresh`, `refresh`, `reset` | runs | refused, exit 1 |
//! | `status` | applied and pending migrations, the role, the TXID | the same, read-only |
//! | `role` | standalone / primary / replica of X, TXID, lag | the same |
//!
//! With no primary known, `up` waits `--primary-wait` (default 5 s) for one, then fails.
//!
//! # `run -- <app>`: start a node
//!
//! What a deploy script of a single-node SQLite app does (restore the database from its
//! Litestream backup, migrate, start the app under `litestream replicate`), made safe for a
//! LiteFS cluster:
//!
//! 1. With backups configured (`LITEFS_ORM_BACKUP_URL`, see
//!    [`BackupConfig`](crate::backup::BackupConfig)), writes `litestream.yml` into the state
//!    directory (resetting Litestream's local state when the backup location changed).
//! 2. On the primary or standalone: checks that `litestream` runs, restores the database if
//!    it is missing, else checks that the storage answers. A missing database with no backup
//!    at the location is an error naming it, unless `--new-database`
//!    (`LITEFS_ORM_BACKUP_NEW_DATABASE=1`) says this is a first deploy. On a replica:
//!    nothing, LiteFS brings the database (and `litestream` is checked once it is primary).
//! 3. `up`, waiting on a replica until the schema has replicated (`--wait-timeout`).
//! 4. Starts `litestream replicate` while this node is primary or standalone, following
//!    role changes ([`Replicator`](crate::backup::Replicator)), and the app beside it. A
//!    Litestream that logs an error or exits is restarted with backoff; after
//!    `LITEFS_ORM_BACKUP_MAX_FAILURES` failures in a row, `run` stops the app and exits 1.
//!    `--health-addr` serves the backup's `/health` and `/metrics`.
//! 5. Passes SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 on to the app; when the
//!    app has exited, stops Litestream after its final sync (within
//!    `LITEFS_ORM_BACKUP_STOP_TIMEOUT_MS` in all) and exits with the app's exit code (128 + N
//!    when signal N ended it), or 1 when that final sync failed.
//!
//! Any failure before the app starts is an error (exit 1) and the app is not started: an
//! app on an empty database would overwrite the backup. With `--hold-on-failure`
//! (`LITEFS_ORM_BACKUP_HOLD_ON_FAILURE=1`), `run` then stays up, answering 503 with the
//! failure on `--hold-addr` (or `0.0.0.0:$PORT`), until SIGTERM: LiteFS, which exits when its
//! last `exec:` command exits, keeps the machine up for inspection. Litestream is not the
//! app's parent (`litestream replicate -exec`) but its sibling, so that it can start and
//! stop with the node's role and so that the app's exit code is not reduced to 0 or 1.
//!
//! Configuration comes from the library's environment variables (`LITEFS_ORM_DATABASE`,
//! `LITEFS_ORM_MOUNT`, `LITEFS_ORM_LITEFS_HTTP`, `LITEFS_ORM_PRIMARY_WAIT_MS`), overridden by
//! the flags `--database`, `--mount`, `--litefs-http`, `--primary-wait`. Without a mount the
//! node is standalone and the database file (default `app.db`) is created if missing. No RPC
//! secret is needed: migrations are never forwarded.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success, including `up` skipped on a replica |
//! | any | `run`: the app's exit code, or 128 + N when signal N ended it |
//! | 1 | `run`: the backup failed while or after the app ran (Litestream gave up, or the final sync failed) |
//! | 1 | error: one line saying what failed, then its cause, on stderr |
//! | 2 | usage error (unknown flag, bad value), from the argument parser |
//!
//! Like sqlx-cli, the work is in [`run`], which returns a typed [`Output`] or [`Error`];
//! [`main`] parses the arguments, runs, prints, and picks the exit code.

mod args;
mod output;
#[cfg(unix)]
mod run;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use sea_orm_migration::MigratorTrait;

use crate::migrate::{self, Target, UpOptions};

pub use args::{Cmd, ConnectOpts, Opt};
pub use output::{Output, RoleInfo};
#[cfg(unix)]
pub use run::AppExit;

/// How long `up --wait` waits when `--wait-timeout` is not given.
pub const DEFAULT_WAIT_TIMEOUT: std::time::Duration = migrate::DEFAULT_SCHEMA_WAIT;

/// A failed command: what failed, and the library error that caused it (its `source`).
#[derive(Debug, thiserror::Error)]
#[error("{action}")]
pub struct Error {
    action: String,
    #[source]
    source: Cause,
}

/// What made a command fail: the library, or a backup step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Cause {
    /// The library failed (configuration, database, migrations, the node's role).
    #[error(transparent)]
    Db(#[from] crate::Error),
    /// Restoring or backing up the database with Litestream failed.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
}

impl Error {
    /// What made the command fail.
    pub fn cause(&self) -> &Cause {
        &self.source
    }

    /// The error as the CLI prints it: `error: <what failed>`, then `cause: <why>` for each
    /// cause in the chain that the line before does not already say.
    pub fn report(&self) -> String {
        let mut out = format!("error: {}", self.action);
        let mut said = self.action.clone();
        let mut next: Option<&dyn std::error::Error> = Some(&self.source);
        while let Some(e) = next {
            let text = e.to_string();
            if !said.contains(&text) {
                out.push_str("\ncause: ");
                out.push_str(&text);
                said = text;
            }
            next = e.source();
        }
        out
    }
}

fn fail(action: impl Into<String>) -> impl FnOnce(crate::Error) -> Error {
    let action = action.into();
    move |source| Error {
        action,
        source: source.into(),
    }
}

/// Runs one command for migrator `M` and returns what to print.
pub async fn run<M: MigratorTrait>(opt: Opt) -> Result<Output, Error> {
    if let Cmd::Run {
        backup_url,
        new_database,
        hold_on_failure,
        hold_addr,
        health_addr,
        wait_timeout,
        app,
    } = opt.command
    {
        let run = RunFlags {
            backup_url,
            new_database,
            health_addr,
            wait_timeout,
            app,
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let hold = hold_on_failure
            || env("LITEFS_ORM_BACKUP_HOLD_ON_FAILURE").is_some_and(|v| {
                crate::backup::parse_bool("LITEFS_ORM_BACKUP_HOLD_ON_FAILURE", &v).unwrap_or(true)
            });
        let result = async {
            let config = opt
                .connect
                .config()
                .map_err(fail("cannot read the configuration"))?;
            run_app::<M>(config, run).await
        }
        .await;
        return match result {
            #[cfg(unix)]
            Err(e) if hold => {
                let addr = hold_addr
                    .or_else(|| env("LITEFS_ORM_BACKUP_HOLD_ADDR"))
                    .or_else(|| env("PORT").map(|p| format!("0.0.0.0:{}", p.trim())));
                Err(run::hold(e, addr.as_deref()).await)
            }
            other => other,
        };
    }
    let config = opt
        .connect
        .config()
        .map_err(fail("cannot read the configuration"))?;
    let database = config.db_path().display().to_string();
    let target = Target::connect(config.clone())
        .await
        .map_err(fail(format!("cannot open {database}")))?;
    let action = |name: &str| format!("`{name}` on {database} failed");
    let report = match opt.command {
        Cmd::Role => return Ok(Output::Role(RoleInfo::read(&target))),
        Cmd::Run { .. } => unreachable!("handled above"),
        Cmd::Status => {
            let status = migrate::status::<M>(&target)
                .await
                .map_err(fail(action("status")))?;
            return Ok(Output::Status(status));
        }
        Cmd::Up {
            num,
            wait,
            wait_timeout,
        } => {
            let mut options = UpOptions {
                steps: num,
                wait: None,
            };
            if wait || wait_timeout.is_some() {
                let timeout = wait_timeout.unwrap_or(DEFAULT_WAIT_TIMEOUT);
                options = options.wait(timeout);
                let role = target.role();
                if !role.writes_locally() {
                    eprintln!(
                        "this node is a {role}: waiting up to {} for the primary's migrations to replicate",
                        migrate::human(timeout)
                    );
                }
            }
            migrate::up::<M>(&target, options)
                .await
                .map_err(fail(action("up")))?
        }
        Cmd::Down { num } => migrate::down::<M>(&target, Some(num))
            .await
            .map_err(fail(action("down")))?,
        Cmd::Fresh => migrate::fresh::<M>(&target)
            .await
            .map_err(fail(action("fresh")))?,
        Cmd::Refresh => migrate::refresh::<M>(&target)
            .await
            .map_err(fail(action("refresh")))?,
        Cmd::Reset => migrate::reset::<M>(&target)
            .await
            .map_err(fail(action("reset")))?,
    };
    Ok(Output::Report(report))
}

/// The flags of `run`.
struct RunFlags {
    backup_url: Option<String>,
    new_database: bool,
    health_addr: Option<String>,
    wait_timeout: Option<std::time::Duration>,
    app: Vec<std::ffi::OsString>,
}

#[cfg(unix)]
async fn run_app<M: MigratorTrait>(
    config: crate::Config,
    flags: RunFlags,
) -> Result<Output, Error> {
    let RunFlags {
        backup_url,
        new_database,
        health_addr,
        wait_timeout,
        app,
    } = flags;
    let config_error = fail("cannot read the backup configuration");
    let mut backup = match (crate::backup::BackupConfig::from_env(), backup_url) {
        (Err(e), _) => return Err(config_error(e)),
        (Ok(Some(mut b)), Some(url)) => {
            b.url = url;
            Some(b)
        }
        (Ok(None), Some(url)) => Some(crate::backup::BackupConfig::new(url)),
        (Ok(b), None) => b,
    };
    if let Some(b) = &mut backup {
        b.new_database |= new_database;
        b.validate().map_err(config_error)?;
    }
    let health_addr = health_addr.or_else(|| {
        std::env::var("LITEFS_ORM_BACKUP_HEALTH_ADDR")
            .ok()
            .filter(|v| !v.trim().is_empty())
    });
    let opts = run::RunOptions {
        config,
        backup,
        wait_timeout: wait_timeout.unwrap_or(DEFAULT_WAIT_TIMEOUT),
        command: app,
        health_addr,
    };
    run::run::<M>(opts).await.map(Output::Run)
}

#[cfg(not(unix))]
async fn run_app<M: MigratorTrait>(_: crate::Config, _: RunFlags) -> Result<Output, Error> {
    Err(fail("`run` needs a Unix system")(crate::Error::Config(
        "signals and process groups are Unix-only".into(),
    )))
}

/// The whole CLI: parses the arguments, runs, prints the output (stdout) or the error
/// (stderr), and returns the exit code (see the module docs).
pub async fn main<M: MigratorTrait>() -> ExitCode {
    let name = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "migrations".to_owned());
    let matches = Opt::command()
        .name(name.clone())
        .bin_name(name)
        .try_get_matches();
    let opt = match matches.and_then(|m| Opt::from_arg_matches(&m)) {
        Ok(opt) => opt,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    // `run` always says what it does: restores, roles, Litestream, the app's end.
    let is_run = matches!(opt.command, Cmd::Run { .. });
    if opt.verbose || is_run || std::env::var_os("RUST_LOG").is_some() {
        let default = if is_run && !opt.verbose {
            "litefs_orm=info"
        } else {
            "info"
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        // The process's only subscriber, unless the binary installed its own first.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(!is_run)
            .try_init();
    }
    match run::<M>(opt).await {
        #[cfg(unix)]
        Ok(Output::Run(exit)) => {
            eprintln!("{exit}");
            ExitCode::from(exit.exit_code())
        }
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", e.report());
            ExitCode::FAILURE
        }
    }
}
