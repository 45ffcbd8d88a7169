//! Litestream backups: restore a missing database at start, back up from the primary only.
//!
//! Enabled by the `backup` feature (the `cli` feature includes it); the migrations CLI's
//! `run -- <app>` command is built on it. [Litestream] 0.5 ships every transaction to a
//! replica (S3 or S3-compatible storage, a directory, ...) and restores the database from it.
//! litefs-orm runs Litestream as a child process, configured by [`BackupConfig`]
//! (`LITEFS_ORM_BACKUP_*`) through a generated `litestream.yml`.
//!
//! # In a LiteFS cluster
//!
//! | node | at start ([`prepare`]) | while running ([`Replicator`]) |
//! |---|---|---|
//! | standalone | database missing: restore it; present: check the storage | `litestream replicate` |
//! | primary | the same; a restore is imported into LiteFS through its HTTP API | `litestream replicate` |
//! | replica | nothing: LiteFS brings the database from the primary | nothing, until it becomes primary |
//!
//! Only the primary writes the backup. On failover the new primary starts Litestream as
//! soon as it sees its new role, and the old one stops its own: Litestream on the new
//! primary finds the replica ahead of its (empty) local state and writes a fresh snapshot
//! of the database, which LiteFS had already replicated there, so the backup continues
//! without a gap. A node that is demoted stops Litestream after at most one role poll.
//!
//! # Never an empty database over a backup
//!
//! A new, empty database whose Litestream finds an existing backup *replaces* that backup
//! with its own snapshot. So [`prepare`] starts fresh only when the replica holds no backup
//! at all (Litestream's `-if-replica-exists`) *and* [`BackupConfig::new_database`] says this
//! is a first deploy (a mistyped location looks the same: [`BackupError::NoBackup`]); an
//! unreachable storage, refused credentials, a missing bucket, a corrupt backup or a timeout
//! are errors ([`BackupError`]) and the app must not start.
//!
//! # Failures after start-up
//!
//! [`Replicator`] restarts a Litestream that logs an error or exits, with backoff, keeps the
//! last failure in a [`BackupStatus`], and gives up after [`BackupConfig::max_failures`] in a
//! row; [`BackupFiles::write`] resets Litestream's local state when the location changes.
//!
//! [Litestream]: https://litestream.io

mod config;
mod error;
mod import;
mod litestream;
pub(crate) mod process;
mod replicator;
mod status;

use std::path::{Path, PathBuf};

pub use config::BackupConfig;
pub(crate) use config::parse_bool;
pub use error::BackupError;
pub use litestream::{Litestream, Restore, check_reachable};
pub use replicator::{Replicator, STABLE};
pub use status::BackupStatus;

use crate::config::Config;

/// The files litefs-orm writes for one database's backups, in its state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupFiles {
    /// The state directory ([`BackupConfig::state_dir`]).
    pub dir: PathBuf,
    /// The generated `litestream.yml`.
    pub config_file: PathBuf,
    /// Litestream's local state for the database (`meta-path`).
    pub meta: PathBuf,
    /// The database, as an absolute path (the one in `litestream.yml`).
    pub database: PathBuf,
}

impl BackupFiles {
    /// Writes `litestream.yml` for the database of `config` into the state directory.
    ///
    /// Litestream's local state (`meta/`) describes what it has shipped to one location: when
    /// the location ([`BackupConfig::location`]) differs from the one recorded beside it (or
    /// none is recorded), the state is removed, so that Litestream starts the new location
    /// with a full snapshot instead of failing on files only the old one has.
    pub fn write(backup: &BackupConfig, config: &Config) -> Result<Self, BackupError> {
        let io = |action: String| move |source| BackupError::Io { action, source };
        let database = std::path::absolute(config.db_path())
            .map_err(io("cannot resolve the database path".into()))?;
        let dir = backup.state_dir(&database);
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let config_file = dir.join("litestream.yml");
        let meta = dir.join("meta");
        let recorded = dir.join(LOCATION_FILE);
        let location = backup.location();
        let before = std::fs::read_to_string(&recorded).ok();
        if before.as_deref().map(str::trim) != Some(location.as_str()) {
            if meta.exists() {
                match &before {
                    Some(old) => tracing::warn!(
                        "the backup location changed from {} to {location}: resetting litestream's local state ({}); the new location starts with a full snapshot",
                        old.trim(),
                        meta.display()
                    ),
                    None => tracing::warn!(
                        "litestream's local state {} belongs to no recorded backup location: resetting it; {location} gets a full snapshot",
                        meta.display()
                    ),
                }
            }
            remove(&meta, true)?;
            std::fs::write(&recorded, format!("{location}\n"))
                .map_err(io(format!("cannot write {}", recorded.display())))?;
        }
        std::fs::write(&config_file, backup.render(&database, &meta))
            .map_err(io(format!("cannot write {}", config_file.display())))?;
        Ok(BackupFiles {
            dir,
            config_file,
            meta,
            database,
        })
    }
}

/// The file beside `meta/` naming the backup location that state belongs to.
const LOCATION_FILE: &str = "location";

/// What [`prepare`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prepared {
    /// The database was there; the storage answered.
    Existing,
    /// The database was missing and was restored from the backup.
    Restored,
    /// The database was missing, the replica holds no backup, and a new database was allowed
    /// ([`BackupConfig::new_database`]): start fresh.
    Fresh,
}

/// Makes the database safe to start on, on a node that writes locally (primary or
/// standalone): restores it when it is missing, checks the storage when it is there.
/// Any failure is an error: do not start the app then. "No backup exists" is one too
/// ([`BackupError::NoBackup`]), unless [`BackupConfig::new_database`] allows a first deploy.
///
/// On a LiteFS mount the restore is imported through LiteFS's HTTP API
/// ([`Config::litefs_http`], required then).
pub async fn prepare(
    litestream: &Litestream,
    backup: &BackupConfig,
    files: &BackupFiles,
    config: &Config,
) -> Result<Prepared, BackupError> {
    check_reachable(backup).await?;
    let db = &files.database;
    if db.exists() {
        litestream.check(db).await?;
        return Ok(Prepared::Existing);
    }
    // The local state describes the lost database: Litestream must not resume from it.
    remove(&files.meta, true)?;
    if config.litefs_mount.is_none() {
        return match litestream.restore(db, db).await? {
            Restore::Restored => Ok(Prepared::Restored),
            Restore::NoBackup => fresh(backup, db),
        };
    }
    let api = config
        .litefs_http
        .as_deref()
        .ok_or_else(|| BackupError::Io {
            action: "restoring into a LiteFS mount goes through LiteFS's HTTP API".into(),
            source: std::io::Error::other(
                "set LITEFS_ORM_LITEFS_HTTP (--litefs-http), e.g. http://127.0.0.1:20202",
            ),
        })?;
    let out = files
        .dir
        .join("restore")
        .join(db.file_name().unwrap_or_else(|| std::ffi::OsStr::new("db")));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|source| BackupError::Io {
            action: format!("cannot create {}", parent.display()),
            source,
        })?;
    }
    for stale in sqlite_files(&out) {
        remove(&stale, false)?;
    }
    if litestream.restore(db, &out).await? == Restore::NoBackup {
        return fresh(backup, db);
    }
    let name = config.database.to_string_lossy();
    import::import(api, &name, &out, backup.timeout).await?;
    if !db.exists() {
        return Err(BackupError::Import {
            url: api.to_owned(),
            detail: format!(
                "LiteFS accepted the import, but {} did not appear",
                db.display()
            ),
            kept: out.display().to_string(),
        });
    }
    for done in sqlite_files(&out) {
        remove(&done, false)?;
    }
    Ok(Prepared::Restored)
}

/// The database is missing and the replica holds no backup: a first deploy if the operator
/// said so, else (a mistyped location looks the same) an error naming where we looked.
fn fresh(backup: &BackupConfig, db: &Path) -> Result<Prepared, BackupError> {
    if backup.new_database {
        return Ok(Prepared::Fresh);
    }
    Err(BackupError::NoBackup {
        location: backup.location(),
        database: db.display().to_string(),
    })
}

/// A database file and its sidecars.
fn sqlite_files(db: &Path) -> [PathBuf; 4] {
    let with = |suffix: &str| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [db.to_owned(), with("-wal"), with("-shm"), with("-journal")]
}

fn remove(path: &Path, dir: bool) -> Result<(), BackupError> {
    let result = if dir {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackupError::Io {
            action: format!("cannot remove {}", path.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}
