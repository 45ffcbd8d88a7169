//! Configuration of a node: from code, or from `LITEFS_ORM_*` environment variables.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// How a node finds its database, LiteFS, and the primary's RPC endpoint.
///
/// With no [`litefs_mount`](Config::litefs_mount) the node is **standalone**: one node on a
/// plain SQLite file, every write local. That is the default, so local development needs
/// no configuration at all.
///
/// | field | variable | default |
/// |---|---|---|
/// | [`database`](Config::database) | `LITEFS_ORM_DATABASE` | `app.db` |
/// | [`litefs_mount`](Config::litefs_mount) | `LITEFS_ORM_MOUNT` | unset: standalone |
/// | [`litefs_http`](Config::litefs_http) | `LITEFS_ORM_LITEFS_HTTP` | unset: role from `.primary` |
/// | [`primary_url`](Config::primary_url) | `LITEFS_ORM_PRIMARY_URL` | `http://{primary}:8080` |
/// | [`primary_urls`](Config::primary_urls) | `LITEFS_ORM_PRIMARY_URLS` | none: every hostname through the template |
/// | [`rpc_secret`](Config::rpc_secret) | `LITEFS_ORM_SECRET` | unset (required with a mount) |
/// | [`write_timeout`](Config::write_timeout) | `LITEFS_ORM_WRITE_TIMEOUT_MS` | 10 000 |
/// | [`replication_timeout`](Config::replication_timeout) | `LITEFS_ORM_REPLICATION_TIMEOUT_MS` | 5 000 |
/// | [`primary_wait`](Config::primary_wait) | `LITEFS_ORM_PRIMARY_WAIT_MS` | 5 000 |
/// | [`max_clock_skew`](Config::max_clock_skew) | `LITEFS_ORM_MAX_CLOCK_SKEW_MS` | 30 000 |
/// | [`max_body_bytes`](Config::max_body_bytes) | `LITEFS_ORM_MAX_BODY_BYTES` | 1 048 576 |
/// | [`read_connections`](Config::read_connections) | `LITEFS_ORM_READ_CONNECTIONS` | 4 |
/// | [`idempotency_window`](Config::idempotency_window) | `LITEFS_ORM_IDEMPOTENCY_WINDOW_MS` | 120 000 |
/// | [`journal_mode`](Config::journal_mode) | `LITEFS_ORM_JOURNAL_MODE` | `wal` |
/// | [`durability`](Config::durability) | `LITEFS_ORM_DURABILITY` | `local` |
/// | [`durability_timeout`](Config::durability_timeout) | `LITEFS_ORM_DURABILITY_TIMEOUT_MS` | 1 000 |
///
/// ```
/// use litefs_orm::Config;
/// let standalone = Config::standalone("dev.db");
/// assert!(standalone.litefs_mount.is_none());
///
/// let node = Config::litefs("/litefs", "app.db")
///     .with_primary_url("http://{primary}.vm.myapp.internal:8080")
///     .with_rpc_secret("a long random shared secret");
/// assert_eq!(node.db_path(), std::path::Path::new("/litefs/app.db"));
/// assert_eq!(node.primary_rpc_url("n1"), "http://n1.vm.myapp.internal:8080/litefs-orm/v1/write");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Database file name inside the mount, or a path when standalone.
    pub database: PathBuf,
    /// LiteFS's FUSE mount directory (`fuse.dir`). Unset: standalone.
    pub litefs_mount: Option<PathBuf>,
    /// LiteFS's HTTP API base URL (e.g. `http://127.0.0.1:20202`): the role is read from
    /// `/info` and followed on `/events`. Unset: the role is read from `.primary` and `.lag`.
    pub litefs_http: Option<String>,
    /// Template of the primary's base URL; `{primary}` is replaced by the hostname in
    /// `.primary` (LiteFS's `lease.hostname`).
    pub primary_url: String,
    /// The primary's base URL by its LiteFS hostname, used before the
    /// [`primary_url`](Config::primary_url) template: for hostnames that do not resolve by DNS
    /// (a static lease's `n1`), or several nodes on one host with a port each. From
    /// `LITEFS_ORM_PRIMARY_URLS`: `n1=http://10.0.0.1:8080,n2=http://10.0.0.2:8080`.
    pub primary_urls: BTreeMap<String, String>,
    /// Shared secret that signs forwarded writes. Required with a mount; every node needs
    /// the same one.
    pub rpc_secret: Option<String>,
    /// Deadline of a whole replicated write, forwarding and retries included (the
    /// replication wait has its own). On the primary it bounds the whole write: the wait for
    /// the writer behind other writes ([`Error::WriterBusy`](crate::Error::WriterBusy)), and
    /// the write itself when its database does not answer (a paused LiteFS:
    /// [`Error::WriteStalled`](crate::Error::WriteStalled)).
    pub write_timeout: Duration,
    /// How long a forwarded write waits for the local replica to reach the primary's TXID.
    pub replication_timeout: Duration,
    /// How long a write waits for a primary when none is known.
    pub primary_wait: Duration,
    /// Largest accepted difference between a request's timestamp and this node's clock.
    pub max_clock_skew: Duration,
    /// Largest accepted forwarded-write body.
    pub max_body_bytes: usize,
    /// Connections of the local read pool.
    pub read_connections: u32,
    /// How long the primary remembers a forwarded write's idempotency key (and its answer,
    /// in the `_litefs_orm_idempotency` table): a retry within it is answered from the
    /// record instead of writing again. At least twice [`write_timeout`](Config::write_timeout)
    /// plus [`max_clock_skew`](Config::max_clock_skew), since retries span a whole write
    /// deadline and may reach a new primary with another clock.
    pub idempotency_window: Duration,
    /// SQLite's journal mode, set when the database is opened on the primary (or
    /// standalone). WAL by default: through a LiteFS mount it commits more than twice as fast
    /// as SQLite's default, DELETE (286 against 126 single-row commits/s, measured on LiteFS
    /// v0.5.14). LiteFS supports DELETE, TRUNCATE, PERSIST and WAL, and replicates the mode
    /// from the primary (switching it is itself a LiteFS transaction), so a replica does not
    /// set it: it reads what the primary chose. Give every node the same mode.
    ///
    /// In WAL mode SQLite maps `<db>-shm` from the mount. If LiteFS is stopped or restarted
    /// under a running app, the app's next query ends the process with `SIGBUS` — nothing a
    /// library can catch. Run the app under LiteFS's `exec:` (LiteFS stops it first), or let
    /// the supervisor restart it. In DELETE, TRUNCATE and PERSIST modes the handle instead
    /// sees I/O errors ([`Error::Io`](crate::Error::Io)), reopens its connections once LiteFS
    /// has mounted again, and recovers by itself.
    pub journal_mode: JournalMode,
    /// How many nodes must hold a commit before the primary acknowledges it: `local`
    /// (LiteFS's own guarantee), `candidates` (every live candidate, so that whichever
    /// LiteFS elects next has it) or a number of nodes. See [`crate::durability`].
    pub durability: crate::durability::Durability,
    /// How long the primary waits for the nodes [`durability`](Config::durability) asks for
    /// to hold a commit, and how long a node may stay silent and still count as live. A node
    /// that misses it is not waited for until it has caught up; the write then fails with
    /// [`Error::NotDurable`](crate::Error::NotDurable) (committed, not yet durable).
    pub durability_timeout: Duration,
}

/// SQLite journal modes LiteFS supports ([`Config::journal_mode`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalMode {
    /// `PRAGMA journal_mode = WAL`: the fastest through LiteFS; see the `SIGBUS` caveat at
    /// [`Config::journal_mode`].
    #[default]
    Wal,
    /// `PRAGMA journal_mode = DELETE`, SQLite's default.
    Delete,
    /// `PRAGMA journal_mode = TRUNCATE`.
    Truncate,
    /// `PRAGMA journal_mode = PERSIST`.
    Persist,
}

impl JournalMode {
    /// The mode as `PRAGMA journal_mode` names it, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalMode::Wal => "wal",
            JournalMode::Delete => "delete",
            JournalMode::Truncate => "truncate",
            JournalMode::Persist => "persist",
        }
    }
}

impl std::str::FromStr for JournalMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wal" => Ok(JournalMode::Wal),
            "delete" => Ok(JournalMode::Delete),
            "truncate" => Ok(JournalMode::Truncate),
            "persist" => Ok(JournalMode::Persist),
            _ => Err(Error::Config(format!(
                "LITEFS_ORM_JOURNAL_MODE must be one of wal, delete, truncate, persist (the modes LiteFS supports), got {s:?}"
            ))),
        }
    }
}

impl std::fmt::Display for JournalMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The path the RPC router serves forwarded writes on.
pub const RPC_PATH: &str = "/litefs-orm/v1/write";
/// The path the RPC router serves operations on.
pub const OPERATION_PATH: &str = "/litefs-orm/v1/operation";
/// The path the RPC router serves batches of calls on ([`wire::BatchRequest`](crate::wire::BatchRequest)).
pub const BATCH_PATH: &str = "/litefs-orm/v1/batch";
/// Path of a replica's position report to the primary (see [`crate::durability`]).
pub const POSITIONS_PATH: &str = "/litefs-orm/v1/positions";

impl Default for Config {
    fn default() -> Self {
        Config {
            database: PathBuf::from("app.db"),
            litefs_mount: None,
            litefs_http: None,
            primary_url: "http://{primary}:8080".to_owned(),
            primary_urls: BTreeMap::new(),
            rpc_secret: None,
            write_timeout: Duration::from_secs(10),
            replication_timeout: Duration::from_secs(5),
            primary_wait: Duration::from_secs(5),
            max_clock_skew: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            read_connections: 4,
            idempotency_window: Duration::from_secs(120),
            journal_mode: JournalMode::Wal,
            durability: crate::durability::Durability::Local,
            durability_timeout: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// A standalone node on a plain SQLite file.
    pub fn standalone(database: impl Into<PathBuf>) -> Self {
        Config {
            database: database.into(),
            ..Config::default()
        }
    }

    /// A node on a LiteFS mount.
    pub fn litefs(mount: impl Into<PathBuf>, database: impl Into<PathBuf>) -> Self {
        Config {
            database: database.into(),
            litefs_mount: Some(mount.into()),
            ..Config::default()
        }
    }

    /// Reads every `LITEFS_ORM_*` variable (see the table above); unset ones keep defaults.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Config::from_env), reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut c = Config::default();
        let ms = |key: &str, slot: &mut Duration| -> Result<()> {
            if let Some(v) = get(key) {
                let n: u64 = v.trim().parse().map_err(|_| {
                    Error::Config(format!("{key} must be a number of milliseconds, got {v:?}"))
                })?;
                *slot = Duration::from_millis(n);
            }
            Ok(())
        };
        ms("LITEFS_ORM_WRITE_TIMEOUT_MS", &mut c.write_timeout)?;
        ms(
            "LITEFS_ORM_REPLICATION_TIMEOUT_MS",
            &mut c.replication_timeout,
        )?;
        ms("LITEFS_ORM_PRIMARY_WAIT_MS", &mut c.primary_wait)?;
        ms("LITEFS_ORM_MAX_CLOCK_SKEW_MS", &mut c.max_clock_skew)?;
        ms(
            "LITEFS_ORM_IDEMPOTENCY_WINDOW_MS",
            &mut c.idempotency_window,
        )?;
        ms(
            "LITEFS_ORM_DURABILITY_TIMEOUT_MS",
            &mut c.durability_timeout,
        )?;
        let nonempty = |key: &str| get(key).filter(|v| !v.trim().is_empty());
        if let Some(v) = nonempty("LITEFS_ORM_DATABASE") {
            c.database = v.into();
        }
        c.litefs_mount = nonempty("LITEFS_ORM_MOUNT").map(PathBuf::from);
        c.litefs_http = nonempty("LITEFS_ORM_LITEFS_HTTP");
        if let Some(v) = nonempty("LITEFS_ORM_PRIMARY_URL") {
            c.primary_url = v;
        }
        if let Some(v) = nonempty("LITEFS_ORM_PRIMARY_URLS") {
            c.primary_urls = parse_url_map(&v)?;
        }
        c.rpc_secret = nonempty("LITEFS_ORM_SECRET");
        if let Some(v) = nonempty("LITEFS_ORM_MAX_BODY_BYTES") {
            c.max_body_bytes = v.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "LITEFS_ORM_MAX_BODY_BYTES must be a byte count, got {v:?}"
                ))
            })?;
        }
        if let Some(v) = nonempty("LITEFS_ORM_READ_CONNECTIONS") {
            c.read_connections = v.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "LITEFS_ORM_READ_CONNECTIONS must be a number, got {v:?}"
                ))
            })?;
        }
        if let Some(v) = nonempty("LITEFS_ORM_JOURNAL_MODE") {
            c.journal_mode = v.parse()?;
        }
        if let Some(v) = nonempty("LITEFS_ORM_DURABILITY") {
            c.durability = v.parse()?;
        }
        Ok(c)
    }

    /// Sets [`durability`](Config::durability).
    pub fn with_durability(mut self, durability: crate::durability::Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`durability_timeout`](Config::durability_timeout).
    pub fn with_durability_timeout(mut self, d: Duration) -> Self {
        self.durability_timeout = d;
        self
    }

    /// Sets [`journal_mode`](Config::journal_mode).
    pub fn with_journal_mode(mut self, mode: JournalMode) -> Self {
        self.journal_mode = mode;
        self
    }

    /// Sets [`litefs_http`](Config::litefs_http).
    pub fn with_litefs_http(mut self, url: impl Into<String>) -> Self {
        self.litefs_http = Some(url.into());
        self
    }

    /// Sets [`primary_url`](Config::primary_url).
    pub fn with_primary_url(mut self, template: impl Into<String>) -> Self {
        self.primary_url = template.into();
        self
    }

    /// Sets the primary's base URL for LiteFS hostname `hostname` (see
    /// [`primary_urls`](Config::primary_urls)).
    ///
    /// ```
    /// let config = litefs_orm::Config::litefs("/litefs", "app.db")
    ///     .with_primary_url_for("n1", "http://127.0.0.1:8081");
    /// assert_eq!(config.primary_rpc_url("n1"), "http://127.0.0.1:8081/litefs-orm/v1/write");
    /// ```
    pub fn with_primary_url_for(
        mut self,
        hostname: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        self.primary_urls.insert(hostname.into(), url.into());
        self
    }

    /// Sets [`rpc_secret`](Config::rpc_secret).
    pub fn with_rpc_secret(mut self, secret: impl Into<String>) -> Self {
        self.rpc_secret = Some(secret.into());
        self
    }

    /// Sets [`write_timeout`](Config::write_timeout).
    pub fn with_write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = d;
        self
    }

    /// Sets [`replication_timeout`](Config::replication_timeout).
    pub fn with_replication_timeout(mut self, d: Duration) -> Self {
        self.replication_timeout = d;
        self
    }

    /// Sets [`primary_wait`](Config::primary_wait).
    pub fn with_primary_wait(mut self, d: Duration) -> Self {
        self.primary_wait = d;
        self
    }

    /// How long a consistency token this node issues is honoured: the
    /// [`idempotency_window`](Config::idempotency_window) less what may pass between a
    /// commit's record and its token (a write's whole deadline and its read-your-writes
    /// wait) and twice [`max_clock_skew`](Config::max_clock_skew) (the clocks of the node
    /// that issues it and of the one that reads it, against the primary's) — at most half
    /// the window. So the record that proves a token's commit is never pruned while the
    /// token is honoured. 45 s with the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = litefs_orm::Config::litefs("/litefs", "app.db");
    /// assert_eq!(config.token_lifetime(), Duration::from_secs(45));
    /// ```
    pub fn token_lifetime(&self) -> Duration {
        let spent = self.write_timeout + self.replication_timeout + self.max_clock_skew * 2;
        self.idempotency_window
            .saturating_sub(spent)
            .min(self.idempotency_window / 2)
    }

    /// Sets [`idempotency_window`](Config::idempotency_window).
    pub fn with_idempotency_window(mut self, d: Duration) -> Self {
        self.idempotency_window = d;
        self
    }

    /// Sets [`max_body_bytes`](Config::max_body_bytes).
    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// The database's name: its file name, as LiteFS's events name it, and as requests and
    /// tokens for it do.
    ///
    /// ```
    /// let config = litefs_orm::Config::litefs("/litefs", "app.db");
    /// assert_eq!(config.database_name(), "app.db");
    /// ```
    pub fn database_name(&self) -> String {
        self.database
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The database file: inside the mount when there is one.
    pub fn db_path(&self) -> PathBuf {
        match &self.litefs_mount {
            Some(m) => m.join(&self.database),
            None => self.database.clone(),
        }
    }

    /// The URL forwarded writes are POSTed to for primary `hostname`.
    pub fn primary_rpc_url(&self, hostname: &str) -> String {
        self.primary_url_for(hostname, RPC_PATH)
    }

    /// The URL of `path` on primary `hostname`.
    pub(crate) fn primary_url_for(&self, hostname: &str, path: &str) -> String {
        let base = match self.primary_urls.get(hostname) {
            Some(url) => url.clone(),
            None => self.primary_url.replace("{primary}", hostname),
        };
        format!("{}{path}", base.trim_end_matches('/'))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database", &self.database)
            .field("litefs_mount", &self.litefs_mount)
            .field("litefs_http", &self.litefs_http)
            .field("primary_url", &self.primary_url)
            .field("primary_urls", &self.primary_urls)
            .field(
                "rpc_secret",
                &self.rpc_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("write_timeout", &self.write_timeout)
            .field("replication_timeout", &self.replication_timeout)
            .field("primary_wait", &self.primary_wait)
            .field("max_clock_skew", &self.max_clock_skew)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("read_connections", &self.read_connections)
            .field("idempotency_window", &self.idempotency_window)
            .field("journal_mode", &self.journal_mode)
            .field("durability", &self.durability)
            .field("durability_timeout", &self.durability_timeout)
            .finish()
    }
}

/// Parses `host=url,host=url` (spaces around items allowed).
fn parse_url_map(v: &str) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((host, url)) = item.split_once('=') else {
            return Err(Error::Config(format!(
                "LITEFS_ORM_PRIMARY_URLS must be hostname=url pairs separated by commas, got {item:?}"
            )));
        };
        map.insert(host.trim().to_owned(), url.trim().to_owned());
    }
    Ok(map)
}

mod validate;

#[cfg(test)]
mod tests;
