//! The FUSE mount in front of each node's files: a replica refuses the app's writes as LiteFS
//! does, so SQLite fails them with LiteFS's errors.
//!
//! Every node's directory is a FUSE mount passing everything through to a store directory
//! of its own. On a node that is not the primary, the mount answers `EACCES` — what LiteFS
//! answers (`ErrReadOnlyReplica`) — to creating `<db>-journal`, and to writing, truncating,
//! renaming or removing `<db>`, `<db>-journal` or `<db>-wal`. SQLite turns the first into
//! `SQLITE_READONLY` (8: rollback journal modes) and a refused WAL write into
//! `SQLITE_IOERR` (10: WAL mode). `-shm` stays writable: readers write it.
//!
//! The stand-in's own replication connections must write a replica, on the same files (so
//! that SQLite's locks between them and the app's connections hold). A FUSE request names
//! the thread that made it, and a sqlx connection makes all its file calls on one worker
//! thread; so a replication connection, once open, trusts itself: it opens
//! [`trust_path`], and the mount records the thread that looked that name up.
//!
//! Files other than `-shm` are opened for direct I/O: no page cache to go stale, and every
//! write reaches the mount from the thread that made it. Attributes and entries are not
//! cached, so a file the stand-in renames into place is seen at once.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fuser::{BackgroundSession, Config, MountOption};
use sea_orm::sqlx::{self, sqlite::SqliteConnection};

use super::sqlite::SqlResult;
use super::state::lock;

mod passthrough;

use passthrough::PassThrough;

/// Prefix of the names that make a thread trusted.
const TRUST_PREFIX: &str = ".litefs-testkit-trust-";

/// Threads of the stand-in allowed to write a replica, shared by a cluster's mounts.
#[derive(Debug, Default)]
pub(crate) struct Trusted {
    secret: String,
    threads: Mutex<HashMap<u64, u32>>,
    next: AtomicU64,
}

impl Trusted {
    pub(crate) fn new() -> Arc<Trusted> {
        Arc::new(Trusted {
            secret: format!("{:016x}", rand::random::<u64>()),
            ..Trusted::default()
        })
    }

    /// A fresh name under `mount` whose look-up trusts the looking thread, and its ticket.
    pub(crate) fn trust_path(&self, mount: &Path) -> (PathBuf, u64) {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("{TRUST_PREFIX}{}-{ticket}", self.secret);
        (mount.join(name), ticket)
    }

    /// True once the look-up of `ticket`'s name has been seen.
    pub(crate) fn granted(&self, ticket: u64) -> bool {
        lock(&self.threads).contains_key(&ticket)
    }

    fn grant(&self, name: &OsStr, thread: u32) -> bool {
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TRUST_PREFIX)) else {
            return false;
        };
        let Some((secret, ticket)) = rest.split_once('-') else {
            return false;
        };
        match (secret == self.secret, ticket.parse()) {
            (true, Ok(ticket)) => {
                lock(&self.threads).insert(ticket, thread);
                true
            }
            _ => false,
        }
    }

    fn trusts(&self, thread: u32) -> bool {
        lock(&self.threads).values().any(|&t| t == thread)
    }
}

/// Makes `conn`'s worker thread trusted by the cluster's mounts: it opens a trust name in
/// `mount` (refused, as intended) and checks that the mount saw it.
pub(crate) async fn trust_connection(
    conn: &mut SqliteConnection,
    trusted: &Trusted,
    mount: &Path,
) -> SqlResult<()> {
    let (path, ticket) = trusted.trust_path(mount);
    // The attach fails: the mount refuses to create that file once it has seen the name.
    let _ = sqlx::query("ATTACH DATABASE ? AS litefs_testkit_trust")
        .bind(path.display().to_string())
        .execute(&mut *conn)
        .await;
    match trusted.granted(ticket) {
        true => Ok(()),
        false => Err(sqlx::Error::Protocol(format!(
            "the FUSE mount at {} did not see the stand-in's connection",
            mount.display()
        ))),
    }
}

/// One node's mount; aborted and unmounted when dropped.
pub(crate) struct NodeMount {
    mountpoint: PathBuf,
    _session: BackgroundSession,
}

impl Drop for NodeMount {
    fn drop(&mut self) {
        // A forced unmount first aborts the FUSE connection, even while files are open: every
        // request then fails at once, so no thread of this process (whose threads serve the
        // mount) can be left waiting on it. The detach then unmounts it while busy. Without
        // root both fail, and the session's own unmount (`fusermount -u`) takes over.
        use nix::mount::{MntFlags, umount2};
        let _ = umount2(&self.mountpoint, MntFlags::MNT_FORCE);
        let _ = umount2(&self.mountpoint, MntFlags::MNT_DETACH);
    }
}

impl std::fmt::Debug for NodeMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeMount")
    }
}

impl NodeMount {
    /// Serves `store` at `mountpoint` (both directories). Writes to database `db`'s files are
    /// refused while `primary` is false, except from `trusted` threads.
    pub(crate) fn start(
        store: &Path,
        mountpoint: &Path,
        db: &str,
        primary: Arc<AtomicBool>,
        trusted: Arc<Trusted>,
    ) -> io::Result<NodeMount> {
        let fs = PassThrough::new(store, db, primary, trusted);
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("litefs-testkit".into()),
            MountOption::NoAtime,
        ];
        config.n_threads = Some(2);
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(NodeMount {
            mountpoint: mountpoint.to_owned(),
            _session: session,
        })
    }
}

/// True when FUSE mounts can be made here: `/dev/fuse` opens, and this process is root (it
/// calls `mount(2)`) or has `fusermount3` / `fusermount` (from Debian's `fuse3`).
pub(crate) fn available() -> bool {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let helper = || {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .any(|dir| dir.join("fusermount3").exists() || dir.join("fusermount").exists())
    };
    let device = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    device && (root || helper())
}
