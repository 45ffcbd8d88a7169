//! `run -- <app>`: restore the database, migrate, back up, and start the app; its signals and
//! exit code pass through.

use std::ffi::OsString;
use std::fmt;
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::select_all;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use tokio::signal::unix::{SignalKind, signal};

use super::{Error, fail};
use crate::backup::process::{self, Exit, Signal};
use crate::backup::{self, BackupConfig, BackupFiles, Litestream, Prepared, Replicator};
use crate::config::Config;
use crate::litefs::role::{Role, RoleWatch};
use crate::migrate::{self, Target, UpOptions};

/// How the app started by `run` ended; `run` exits with [`exit_code`](Self::exit_code).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppExit {
    /// The app's command line.
    pub app: String,
    /// False when `run` was stopped by a signal before it started the app.
    pub started: bool,
    /// The app's exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended the app (or interrupted `run` before it started it).
    pub signal: Option<i32>,
    /// What went wrong with the backup while or after the app ran: Litestream failed
    /// `LITEFS_ORM_BACKUP_MAX_FAILURES` times in a row (and the app was stopped), or the final
    /// sync failed. `run` exits 1 then, whatever the app's exit code.
    pub backup_error: Option<String>,
}

impl AppExit {
    /// The app's exit code, or 128 + the signal that ended it (or interrupted `run`), as
    /// shells report it.
    pub fn exit_code(&self) -> u8 {
        if self.backup_error.is_some() {
            return 1;
        }
        match (self.code, self.signal) {
            (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
            (None, Some(signal)) => u8::try_from((128 + signal) & 0xff).unwrap_or(1),
            (None, None) => 1,
        }
    }

    fn exit(&self) -> Exit {
        Exit {
            code: self.code,
            signal: self.signal,
        }
    }
}

impl fmt::Display for AppExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.started {
            write!(f, "the app `{}` ended: {}", self.app, self.exit())?;
            match &self.backup_error {
                Some(e) => write!(f, "; but {e}"),
                None => Ok(()),
            }
        } else {
            let how = self
                .exit()
                .to_string()
                .replace("killed by", "interrupted by");
            write!(f, "{how} before the app `{}` started", self.app)
        }
    }
}

/// The signals `run` passes on to the app: SIGTERM and SIGINT stop it; the others are for
/// apps that use them.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// The options of `run`, resolved by the caller.
pub(super) struct RunOptions {
    pub config: Config,
    pub backup: Option<BackupConfig>,
    pub wait_timeout: Duration,
    pub command: Vec<OsString>,
    /// Where to answer `/health` and `/metrics` about the backup, if anywhere.
    pub health_addr: Option<String>,
}

/// Runs the whole command: see the module docs of [`cli`](super).
pub(super) async fn run<M: MigratorTrait>(opts: RunOptions) -> Result<AppExit, Error> {
    let app = shell_words(&opts.command);
    let Some((program, args)) = opts.command.split_first() else {
        return Err(Error {
            action: "`run` needs the app to start, after `--`".into(),
            source: crate::Error::Config("no app command given".into()).into(),
        });
    };
    let mut signals =
        Signals::install().map_err(|e| io_error("cannot listen for signals", "signals", e))?;
    let interrupted = |signal: Signal| AppExit {
        app: app.clone(),
        started: false,
        code: None,
        signal: Some(signal as i32),
        backup_error: None,
    };
    let (role, backups) = tokio::select! {
        prepared = prepare::<M>(&opts) => prepared?,
        signal = signals.recv() => return Ok(interrupted(signal)),
    };
    let replicator = backups.map(|(ls, b)| Replicator::start(ls, role.clone(), &b));
    if let Some(addr) = &opts.health_addr {
        let status = replicator.as_ref().map(Replicator::status);
        serve_health(addr, status).await?;
    }
    if let Some(r) = &replicator {
        // As `litestream replicate -exec` does: the app starts once Litestream replicates.
        let started = tokio::select! {
            started = r.started() => started,
            signal = signals.recv() => return Ok(interrupted(signal)),
        };
        if let Err(e) = started {
            return Err(Error {
                action: "litestream did not start backing up; the app was not started".into(),
                source: e.into(),
            });
        }
    }
    tracing::info!("starting the app: {app}");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // Its own process group: a terminal's ctrl-c reaches `run` alone, which passes it on
        // once, instead of the app getting it twice.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            if let Some(r) = replicator {
                let _ = r.stop().await;
            }
            return Err(io_error("cannot start the app", &app, e));
        }
    };
    let mut gave_up: Option<backup::BackupStatus> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            signal = signals.recv() => {
                tracing::info!("{signal} received: passing it on to the app");
                process::send(&child, signal);
            }
            status = backups_gave_up(replicator.as_ref()), if gave_up.is_none() => {
                tracing::error!("{status}: stopping the app (SIGTERM), then exiting 1");
                process::send(&child, Signal::SIGTERM);
                gave_up = Some(status);
            }
        }
    };
    let status = status.map_err(|e| io_error("cannot wait for the app", &app, e))?;
    let exit = Exit::from_status(status);
    tracing::info!("the app ended: {exit}");
    let mut problems = Vec::new();
    if let Some(status) = &gave_up {
        problems.push(format!(
            "litestream failed {} times in a row, so the app was stopped (last: {})",
            status.consecutive_failures,
            status.last_error.as_deref().unwrap_or("unknown")
        ));
    }
    if let Some(r) = replicator {
        tokio::select! {
            stopped = r.stop() => if let Err(e) = stopped {
                problems.push(format!("the final sync of the backup failed: {e}"));
            },
            signal = signals.recv() => {
                tracing::warn!("{signal} received again: stopping litestream without its final sync");
                problems.push(format!("{signal} stopped litestream before its final sync"));
            }
        }
    }
    Ok(AppExit {
        app,
        started: true,
        code: exit.code,
        signal: exit.signal,
        backup_error: (!problems.is_empty()).then(|| problems.join("; and ")),
    })
}

/// Completes when the backup has given up; never without backups.
async fn backups_gave_up(replicator: Option<&Replicator>) -> backup::BackupStatus {
    match replicator {
        Some(r) => r.gave_up().await,
        None => std::future::pending().await,
    }
}

/// Answers `GET /health` (200, or 503 once Litestream has failed, with the status as text)
/// and `GET /metrics` (Prometheus text) on `addr`, for as long as `run` runs.
async fn serve_health(
    addr: &str,
    status: Option<tokio::sync::watch::Receiver<backup::BackupStatus>>,
) -> Result<(), Error> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| io_error("cannot listen on the backup health address", addr, e))?;
    let health = {
        let status = status.clone();
        move || {
            let status = status.clone();
            async move {
                match status {
                    None => (StatusCode::OK, "backup: none configured; ok\n".to_owned()),
                    Some(s) => {
                        let s = s.borrow().clone();
                        let code = if s.healthy() {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        (code, format!("{s}\n"))
                    }
                }
            }
        }
    };
    let metrics = move || {
        let status = status.clone();
        async move {
            match status {
                Some(s) => s.borrow().metrics(),
                None => backup::BackupStatus::default().metrics(),
            }
        }
    };
    let app = axum::Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics));
    tracing::info!(
        "backup health on http://{}/health and /metrics",
        listener
            .local_addr()
            .map_or(addr.to_owned(), |a| a.to_string())
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

/// `run --hold-on-failure`: instead of exiting at once after a failed start, stay up (so
/// that LiteFS, whose `exec:` ends with its last command, keeps the machine up for an
/// operator) and answer every HTTP request on `addr` with 503 and the failure, until a
/// signal (SIGTERM, SIGINT, ...); then return the error (exit 1).
pub(super) async fn hold(error: Error, addr: Option<&str>) -> Error {
    use axum::http::StatusCode;
    let report = error.report();
    eprintln!("{report}");
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for signals, so not holding: {e}");
            return error;
        }
    };
    let mut served = String::new();
    if let Some(addr) = addr {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let body = format!(
                    "litefs-orm run: the app was not started\n{report}\n(held by LITEFS_ORM_BACKUP_HOLD_ON_FAILURE until SIGTERM)\n"
                );
                let app = axum::Router::new().fallback(move || {
                    let body = body.clone();
                    async move { (StatusCode::SERVICE_UNAVAILABLE, body) }
                });
                served = format!(
                    ", answering 503 with the failure on http://{}",
                    listener
                        .local_addr()
                        .map_or(addr.to_owned(), |a| a.to_string())
                );
                tokio::spawn(async move { axum::serve(listener, app).await });
            }
            Err(e) => tracing::error!("cannot answer on {addr} while holding: {e}"),
        }
    }
    tracing::error!(
        "the start failed; holding (LITEFS_ORM_BACKUP_HOLD_ON_FAILURE){served} until SIGTERM, then exiting 1"
    );
    let signal = signals.recv().await;
    tracing::info!("{signal} received: exiting 1 after the failed start");
    error
}

/// Everything before the app starts: Litestream found, the database restored or checked
/// (primary or standalone), the schema migrated or waited for, WAL mode for Litestream.
async fn prepare<M: MigratorTrait>(
    opts: &RunOptions,
) -> Result<(RoleWatch, Option<(Litestream, BackupConfig)>), Error> {
    let config = &opts.config;
    let db = config.db_path();
    let database = db.display().to_string();
    let mut backups = match &opts.backup {
        Some(b) => {
            let files =
                BackupFiles::write(b, config).map_err(fail_backup("cannot set up backups"))?;
            tracing::info!(
                "backups to {} (config {})",
                b.location(),
                files.config_file.display()
            );
            let ls = Litestream::unverified(b, &files.config_file);
            Some((ls, b.clone(), files))
        }
        None => None,
    };
    let target = Target::connect(config.clone())
        .await
        .map_err(fail(format!("cannot open {database}")))?;
    let mut role = target.role();
    if role == Role::NoPrimary {
        tracing::info!(
            "no primary known yet: waiting up to {} for one",
            migrate::human(config.primary_wait)
        );
        role = target
            .role_watch()
            .wait_for_primary(config.primary_wait)
            .await
            .unwrap_or(Role::NoPrimary);
    }
    if let Some((ls, b, files)) = &mut backups {
        if role.writes_locally() {
            // Only a node that backs up needs `litestream`; a replica checks it when it
            // becomes primary.
            *ls = ls.verified().await.map_err(fail_backup(
                "backups are configured, but litestream cannot run",
            ))?;
            tracing::info!("litestream {}", ls.version());
            let prepared = backup::prepare(ls, b, files, config)
                .await
                .map_err(fail_backup(format!(
                    "backups of {database} are not working, so the app was not started"
                )))?;
            match prepared {
                Prepared::Existing => {
                    tracing::info!("{database} exists; the backup storage answers")
                }
                Prepared::Restored => tracing::info!("restored {database} from {}", b.url),
                _ => tracing::warn!(
                    "no backup at {} yet: starting with a new database, as LITEFS_ORM_BACKUP_NEW_DATABASE allows (a first deploy; unset it afterwards)",
                    b.location()
                ),
            }
        } else if role == Role::NoPrimary && !db.exists() {
            return Err(Error {
                action: format!(
                    "cannot tell whether to restore {database}: no LiteFS primary is known"
                ),
                source: crate::Error::NoPrimary {
                    waited: config.primary_wait,
                }
                .into(),
            });
        } else {
            tracing::info!(
                "this node is a {role}: LiteFS brings the database, the primary restores and backs it up"
            );
        }
    }
    let report = migrate::up::<M>(&target, UpOptions::default().wait(opts.wait_timeout))
        .await
        .map_err(fail(format!("`up` on {database} failed")))?;
    tracing::info!("{report}");
    if backups.is_some() && target.role().writes_locally() {
        wal_mode(&target).await.map_err(fail(format!(
            "cannot switch {database} to WAL mode for litestream"
        )))?;
    }
    Ok((
        target.role_watch().clone(),
        backups.map(|(ls, b, _)| (ls, b)),
    ))
}

/// Litestream needs WAL mode; switched here, before the app holds connections, rather than
/// by Litestream while the app may be writing.
async fn wal_mode(target: &Target) -> crate::Result<()> {
    let conn = target.writer().await?;
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode = WAL",
        ))
        .await?;
    let mode: String = match row {
        Some(row) => row.try_get("", "journal_mode")?,
        None => String::new(),
    };
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(crate::Error::Config(format!(
            "the database stayed in journal mode {mode:?}"
        )))
    }
}

/// The command line as a shell would take it back: arguments with spaces or quotes in
/// single quotes.
fn shell_words(args: &[OsString]) -> String {
    let quote = |a: &OsString| {
        let a = a.to_string_lossy();
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
        if plain {
            a.into_owned()
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    args.iter().map(quote).collect::<Vec<_>>().join(" ")
}

fn io_error(action: &str, what: &str, source: std::io::Error) -> Error {
    Error {
        action: action.to_owned(),
        source: backup::BackupError::Io {
            action: format!("`{what}`"),
            source,
        }
        .into(),
    }
}

fn fail_backup(action: impl Into<String>) -> impl FnOnce(backup::BackupError) -> Error {
    let action = action.into();
    move |e| Error {
        action,
        source: e.into(),
    }
}

/// The signals `run` passes on to the app, listened for from the start, so that a signal
/// before the app starts stops `run` cleanly (its Litestream children are killed).
struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        let streams = FORWARDED
            .iter()
            .map(|&s| Ok((s, signal(SignalKind::from_raw(s as i32))?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Signals { streams })
    }

    async fn recv(&mut self) -> Signal {
        let waits = self.streams.iter_mut().map(|(s, stream)| {
            Box::pin(async move {
                stream.recv().await;
                *s
            })
        });
        select_all(waits).await.0
    }
}

#[cfg(test)]
mod tests;
