//! The command line: [`Opt`], its subcommands, and the configuration it resolves to.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::error::{Error, Result};

const AFTER_HELP: &str = "\
Configuration: flags override the environment variables of the library
(LITEFS_ORM_DATABASE, LITEFS_ORM_MOUNT, LITEFS_ORM_LITEFS_HTTP, LITEFS_ORM_PRIMARY_WAIT_MS).
Without a mount the node is standalone: one plain SQLite file, created if missing.
No RPC secret is needed: migrations are never forwarded.

Exit codes: 0 success (including `up` skipped on a replica), 1 error, 2 usage error.";

const RUN_AFTER_HELP: &str = "\
Backups (LITEFS_ORM_BACKUP_URL set): LITEFS_ORM_BACKUP_ENDPOINT, _REGION, _FORCE_PATH_STYLE,
_SYNC_INTERVAL_MS, _TIMEOUT_MS, _DIR, LITEFS_ORM_LITESTREAM (see the README's Backups section),
and:
  LITEFS_ORM_BACKUP_NEW_DATABASE=1     --new-database: a first deploy may start empty
  LITEFS_ORM_BACKUP_MAX_FAILURES=N     Litestream failures in a row (an error logged, or an
                                       exit) before `run` stops the app and exits 1; each
                                       one restarts it with backoff; 0: never [default: 5]
  LITEFS_ORM_BACKUP_STOP_TIMEOUT_MS=MS `run` exits within this after the app has ended
                                       (Litestream's final sync) [default: 10000]
  LITEFS_ORM_BACKUP_HEALTH_ADDR=ADDR   --health-addr: /health and /metrics of the backup
  LITEFS_ORM_BACKUP_HOLD_ON_FAILURE=1  --hold-on-failure: stay up after a failed start
  LITEFS_ORM_BACKUP_HOLD_ADDR=ADDR     --hold-addr: where it answers 503 [default: $PORT]
Only the primary (or a standalone node) needs `litestream`; a replica checks it when it
becomes primary.";

/// The migrations CLI: primary-only migrations of a sea-orm-migration `Migrator`.
#[derive(Clone, Debug, Parser)]
#[command(
    about = "Schema migrations that run only on the LiteFS primary",
    long_about = None,
    after_help = AFTER_HELP
)]
pub struct Opt {
    /// Where the database is and how to read the node's role.
    #[command(flatten)]
    pub connect: ConnectOpts,
    /// Print the migrator's progress to stderr (or set RUST_LOG).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Database and LiteFS options, shared by every subcommand.
#[derive(Clone, Debug, Default, Args)]
pub struct ConnectOpts {
    /// Database file: a name inside the mount, or a path when standalone
    /// [env: LITEFS_ORM_DATABASE] [default: app.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub database: Option<PathBuf>,
    /// LiteFS mount directory (`fuse.dir`); without one the node is standalone
    /// [env: LITEFS_ORM_MOUNT]
    #[arg(long, global = true, value_name = "DIR")]
    pub mount: Option<PathBuf>,
    /// LiteFS HTTP API to read the role from, e.g. http://127.0.0.1:20202; without it the
    /// role comes from the mount's `.primary` and `.lag` [env: LITEFS_ORM_LITEFS_HTTP]
    #[arg(long, global = true, value_name = "URL")]
    pub litefs_http: Option<String>,
    /// How long `up` waits for a primary when none is known, e.g. 5s, 500ms
    /// [env: LITEFS_ORM_PRIMARY_WAIT_MS] [default: 5s]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub primary_wait: Option<Duration>,
}

/// The subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum Cmd {
    /// Apply pending migrations on the primary or standalone; on a replica change nothing
    /// (or, with --wait, wait until the primary's migrations have replicated)
    Up {
        /// Apply only the first N pending migrations
        #[arg(short = 'n', long = "num", value_name = "N")]
        num: Option<u32>,
        /// On a replica, wait until the schema has every migration of this binary
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, e.g. 30s, 2m (implies --wait) [default: 60s]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        wait_timeout: Option<Duration>,
    },
    /// Roll back the last N applied migrations (primary or standalone only)
    Down {
        /// How many to roll back
        #[arg(short = 'n', long = "num", value_name = "N", default_value_t = 1)]
        num: u32,
    },
    /// Show applied and pending migrations, and this node's role (reads only)
    Status,
    /// Drop every table, then apply every migration (primary or standalone only)
    Fresh,
    /// Roll back every migration, then apply every migration (primary or standalone only)
    Refresh,
    /// Roll back every migration and drop the migrations table (primary or standalone only)
    Reset,
    /// Show this node's role: standalone, primary or replica of which primary; its TXID and lag
    Role,
    /// Start the app the way a deploy script would: restore the database if it is missing
    /// (primary or standalone, with backups), apply migrations (or wait for them on a
    /// replica), then run the app with Litestream backing up while this node is primary.
    /// Signals pass on to the app; `run` exits with the app's exit code (1 when the backup
    /// failed: Litestream gave up, or the final sync failed)
    #[command(after_help = RUN_AFTER_HELP)]
    Run {
        /// Litestream replica URL, e.g. s3://bucket/app or file:///backups/app; without one
        /// there are no backups [env: LITEFS_ORM_BACKUP_URL]
        #[arg(long, value_name = "URL")]
        backup_url: Option<String>,
        /// First deploy: when the database is missing and the backup location holds no
        /// backup, start a new, empty database (without it, that is an error, since a
        /// mistyped location looks the same); unset it once deployed
        /// [env: LITEFS_ORM_BACKUP_NEW_DATABASE=1]
        #[arg(long)]
        new_database: bool,
        /// When the start fails (before the app runs), do not exit: log the failure, answer
        /// every HTTP request on --hold-addr with 503 and the failure, and exit 1 on SIGTERM,
        /// so that LiteFS keeps the machine up for inspection
        /// [env: LITEFS_ORM_BACKUP_HOLD_ON_FAILURE=1]
        #[arg(long)]
        hold_on_failure: bool,
        /// Where --hold-on-failure answers, e.g. `[::]:8080` (the app's port)
        /// [env: LITEFS_ORM_BACKUP_HOLD_ADDR] [default: 0.0.0.0:$PORT when PORT is set]
        #[arg(long, value_name = "ADDR")]
        hold_addr: Option<String>,
        /// Answer GET /health (503 once Litestream has failed) and GET /metrics (Prometheus)
        /// about the backup on this address, e.g. 127.0.0.1:9091
        /// [env: LITEFS_ORM_BACKUP_HEALTH_ADDR]
        #[arg(long, value_name = "ADDR")]
        health_addr: Option<String>,
        /// How long a replica waits for the primary's migrations, e.g. 30s, 2m [default: 60s]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        wait_timeout: Option<Duration>,
        /// The app and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "APP")]
        app: Vec<OsString>,
    },
}

impl ConnectOpts {
    /// The library's configuration from the environment, overridden by these flags.
    pub fn config(&self) -> Result<Config> {
        self.config_from(|k| std::env::var(k).ok())
    }

    /// Like [`config`](Self::config), reading environment variables through `get`.
    pub fn config_from(&self, get: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let mut config = Config::from_lookup(get)?;
        if let Some(database) = &self.database {
            config.database = database.clone();
        }
        if let Some(mount) = &self.mount {
            config.litefs_mount = Some(mount.clone());
        }
        if let Some(url) = &self.litefs_http {
            config.litefs_http = Some(url.clone());
        }
        if let Some(wait) = self.primary_wait {
            config.primary_wait = wait;
        }
        if config.database.as_os_str().is_empty() {
            return Err(Error::Config("the database name is empty".into()));
        }
        Ok(config)
    }
}

/// Parses `500ms`, `30s`, `2m`; a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 500ms, 30s or 2m"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        other => Err(format!("unknown unit {other:?} in {s:?}: use ms, s or m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_ms_s_and_m() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn flags_override_the_environment() {
        let opt =
            Opt::try_parse_from(["m", "status", "--database", "x.db", "--mount", "/lfs"]).unwrap();
        let config = opt
            .connect
            .config_from(|k| match k {
                "LITEFS_ORM_DATABASE" => Some("env.db".into()),
                "LITEFS_ORM_LITEFS_HTTP" => Some("http://127.0.0.1:20202".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.db_path(), PathBuf::from("/lfs/x.db"));
        assert_eq!(
            config.litefs_http.as_deref(),
            Some("http://127.0.0.1:20202")
        );
    }

    #[test]
    fn down_rolls_back_one_by_default() {
        let opt = Opt::try_parse_from(["m", "down"]).unwrap();
        assert!(matches!(opt.command, Cmd::Down { num: 1 }));
    }

    #[test]
    fn run_takes_the_app_after_a_double_dash() {
        let opt = Opt::try_parse_from(["m", "run", "--backup-url", "file:///b", "--", "app", "-x"])
            .unwrap();
        let Cmd::Run {
            backup_url,
            app,
            new_database,
            hold_on_failure,
            ..
        } = opt.command
        else {
            panic!("not run: {:?}", opt.command);
        };
        assert_eq!(backup_url.as_deref(), Some("file:///b"));
        assert_eq!(app, ["app", "-x"]);
        assert!(!new_database && !hold_on_failure);
    }

    #[test]
    fn run_without_an_app_is_a_usage_error() {
        let err = Opt::try_parse_from(["m", "run"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn an_unknown_flag_is_a_usage_error() {
        let err = Opt::try_parse_from(["m", "up", "--bogus"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
