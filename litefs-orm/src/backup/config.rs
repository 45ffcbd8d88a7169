//! [`BackupConfig`]: where backups go and how Litestream reaches them, from `LITEFS_ORM_BACKUP_*`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Litestream backups of one database.
///
/// | field | variable | default |
/// |---|---|---|
/// | [`url`](Self::url) | `LITEFS_ORM_BACKUP_URL` | unset: no backups |
/// | [`endpoint`](Self::endpoint) | `LITEFS_ORM_BACKUP_ENDPOINT`, else `AWS_ENDPOINT_URL_S3` (s3 URLs) | unset: AWS S3 |
/// | [`region`](Self::region) | `LITEFS_ORM_BACKUP_REGION` | unset: Litestream's choice |
/// | [`force_path_style`](Self::force_path_style) | `LITEFS_ORM_BACKUP_FORCE_PATH_STYLE` (`true`/`false`) | true with an endpoint |
/// | [`sync_interval`](Self::sync_interval) | `LITEFS_ORM_BACKUP_SYNC_INTERVAL_MS` | 1 000 |
/// | [`timeout`](Self::timeout) | `LITEFS_ORM_BACKUP_TIMEOUT_MS` | 300 000 |
/// | [`stop_timeout`](Self::stop_timeout) | `LITEFS_ORM_BACKUP_STOP_TIMEOUT_MS` | 10 000 |
/// | [`new_database`](Self::new_database) | `LITEFS_ORM_BACKUP_NEW_DATABASE` (`1`/`true`) | false |
/// | [`max_failures`](Self::max_failures) | `LITEFS_ORM_BACKUP_MAX_FAILURES` (`0`: never give up) | 5 |
/// | [`dir`](Self::dir) | `LITEFS_ORM_BACKUP_DIR` | a directory per database under the system temp dir |
/// | [`litestream`](Self::litestream) | `LITEFS_ORM_LITESTREAM` | `litestream` on `PATH` |
///
/// Credentials are never written to the generated `litestream.yml`: Litestream reads them
/// from its environment (`LITESTREAM_ACCESS_KEY_ID` / `LITESTREAM_SECRET_ACCESS_KEY`, or
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`), which it inherits from `run`.
///
/// ```
/// use litefs_orm::backup::BackupConfig;
/// let c = BackupConfig::new("s3://backups/app").with_endpoint("http://127.0.0.1:9000");
/// assert_eq!(c.force_path_style, None); // path-style, since an endpoint is set
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupConfig {
    /// Litestream replica URL: `s3://bucket/path`, `file:///dir`, or any URL Litestream takes
    /// (`gs://`, `abs://`, `sftp://`...).
    pub url: String,
    /// S3-compatible endpoint (MinIO, Tigris, R2...), e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// S3 path-style addressing; `None`: on when [`endpoint`](Self::endpoint) is set.
    pub force_path_style: Option<bool>,
    /// How often Litestream ships new WAL frames to the replica.
    pub sync_interval: Duration,
    /// Deadline of a restore, and of the storage check at start.
    pub timeout: Duration,
    /// The whole stop, once the app has ended: Litestream's own final sync (at most half of
    /// it; killed after that, or at once when its sync fails) and the last
    /// `litestream replicate -once` (the rest). `run` exits within it.
    pub stop_timeout: Duration,
    /// Start a new, empty database when it is missing and the replica holds no backup at all
    /// (a first deploy). Off: that is an error naming the location looked in, since a
    /// mistyped location looks exactly like it.
    pub new_database: bool,
    /// After this many Litestream failures in a row (it exited, or logged an error, after
    /// start-up; each one restarts it with backoff), give up: `run` stops the app and exits 1.
    /// `0`: never give up. A Litestream that runs a minute without an error resets the count.
    pub max_failures: u32,
    /// Where the generated `litestream.yml` and Litestream's local state (`meta/`) live;
    /// `None`: `<temp>/litefs-orm-<db name>-<hash of the db path>`. Never inside a LiteFS
    /// mount, which holds only databases.
    pub dir: Option<PathBuf>,
    /// The `litestream` binary.
    pub litestream: PathBuf,
}

impl BackupConfig {
    /// Backups to `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        BackupConfig {
            url: url.into(),
            endpoint: None,
            region: None,
            force_path_style: None,
            sync_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(300),
            stop_timeout: Duration::from_secs(10),
            new_database: false,
            max_failures: 5,
            dir: None,
            litestream: PathBuf::from("litestream"),
        }
    }

    /// Reads the variables of the table above; `None` when `LITEFS_ORM_BACKUP_URL` is unset.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let nonempty = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(url) = nonempty("LITEFS_ORM_BACKUP_URL") else {
            return Ok(None);
        };
        let mut c = BackupConfig::new(url);
        c.endpoint = nonempty("LITEFS_ORM_BACKUP_ENDPOINT").or_else(|| {
            c.url
                .starts_with("s3://")
                .then(|| nonempty("AWS_ENDPOINT_URL_S3"))
                .flatten()
        });
        c.region = nonempty("LITEFS_ORM_BACKUP_REGION");
        if let Some(v) = nonempty("LITEFS_ORM_BACKUP_FORCE_PATH_STYLE") {
            c.force_path_style = Some(parse_bool("LITEFS_ORM_BACKUP_FORCE_PATH_STYLE", &v)?);
        }
        let ms = |key: &str, slot: &mut Duration| -> Result<()> {
            if let Some(v) = nonempty(key) {
                let n: u64 = v.parse().map_err(|_| {
                    Error::Config(format!("{key} must be a number of milliseconds, got {v:?}"))
                })?;
                *slot = Duration::from_millis(n);
            }
            Ok(())
        };
        ms("LITEFS_ORM_BACKUP_SYNC_INTERVAL_MS", &mut c.sync_interval)?;
        ms("LITEFS_ORM_BACKUP_TIMEOUT_MS", &mut c.timeout)?;
        ms("LITEFS_ORM_BACKUP_STOP_TIMEOUT_MS", &mut c.stop_timeout)?;
        if let Some(v) = nonempty("LITEFS_ORM_BACKUP_NEW_DATABASE") {
            c.new_database = parse_bool("LITEFS_ORM_BACKUP_NEW_DATABASE", &v)?;
        }
        if let Some(v) = nonempty("LITEFS_ORM_BACKUP_MAX_FAILURES") {
            c.max_failures = v.parse().map_err(|_| {
                Error::Config(format!(
                    "LITEFS_ORM_BACKUP_MAX_FAILURES must be a number (0: never give up), got {v:?}"
                ))
            })?;
        }
        c.dir = nonempty("LITEFS_ORM_BACKUP_DIR").map(PathBuf::from);
        if let Some(bin) = nonempty("LITEFS_ORM_LITESTREAM") {
            c.litestream = bin.into();
        }
        c.validate()?;
        Ok(Some(c))
    }

    /// Sets [`endpoint`](Self::endpoint).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets [`new_database`](Self::new_database).
    pub fn with_new_database(mut self, allowed: bool) -> Self {
        self.new_database = allowed;
        self
    }

    /// Where the backup goes, as the operator wrote it: the URL, and the endpoint if any.
    /// Litestream's local state belongs to one location: it is reset when this changes.
    pub fn location(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{} (endpoint {endpoint})", self.url),
            None => self.url.clone(),
        }
    }

    /// Sets [`dir`](Self::dir).
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Sets [`litestream`](Self::litestream).
    pub fn with_litestream(mut self, bin: impl Into<PathBuf>) -> Self {
        self.litestream = bin.into();
        self
    }

    /// Checks the URL's shape and the durations.
    pub fn validate(&self) -> Result<()> {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return Err(Error::Config(format!(
                "LITEFS_ORM_BACKUP_URL must be a replica URL such as s3://bucket/path or file:///var/backups/app, got {:?}",
                self.url
            )));
        };
        if scheme == "file" && !rest.starts_with('/') {
            return Err(Error::Config(format!(
                "a file:// backup URL needs an absolute path (file:///dir), got {:?}",
                self.url
            )));
        }
        if scheme != "file" && rest.trim_matches('/').is_empty() {
            return Err(Error::Config(format!(
                "the backup URL {:?} names no bucket",
                self.url
            )));
        }
        if self.sync_interval.is_zero() || self.timeout.is_zero() {
            return Err(Error::Config(
                "LITEFS_ORM_BACKUP_SYNC_INTERVAL_MS and LITEFS_ORM_BACKUP_TIMEOUT_MS must be above zero"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The state directory for the database at `db` (absolute).
    pub fn state_dir(&self, db: &Path) -> PathBuf {
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        let hash = Sha256::digest(db.as_os_str().as_encoded_bytes());
        let name = db
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "db".into());
        std::env::temp_dir().join(format!("litefs-orm-{name}-{}", hex::encode(&hash[..8])))
    }

    /// The `litestream.yml` for the database at `db` (absolute), its state in `meta`.
    pub fn render(&self, db: &Path, meta: &Path) -> String {
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let mut out = String::from(
            "# Generated by litefs-orm `run` at every start: edit LITEFS_ORM_BACKUP_* instead.\n\
             # Credentials come from the environment (LITESTREAM_ACCESS_KEY_ID and\n\
             # LITESTREAM_SECRET_ACCESS_KEY, or AWS_*), never from this file.\n\
             dbs:\n",
        );
        out += &format!("  - path: {}\n", q(&db.to_string_lossy()));
        out += &format!("    meta-path: {}\n", q(&meta.to_string_lossy()));
        out += "    replica:\n";
        out += &format!("      url: {}\n", q(&self.url));
        if let Some(endpoint) = &self.endpoint {
            out += &format!("      endpoint: {}\n", q(endpoint));
        }
        if let Some(region) = &self.region {
            out += &format!("      region: {}\n", q(region));
        }
        if let Some(path_style) = self
            .force_path_style
            .or(self.endpoint.as_ref().map(|_| true))
        {
            out += &format!("      force-path-style: {path_style}\n");
        }
        out += &format!(
            "      sync-interval: {}ms\n",
            self.sync_interval.as_millis()
        );
        out
    }
}

/// `true`/`1`/`yes` or `false`/`0`/`no`, for variable `key`.
pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!(
            "{key} must be true or false, got {v:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn no_url_means_no_backups() {
        assert_eq!(BackupConfig::from_lookup(lookup(&[])).unwrap(), None);
    }

    #[test]
    fn variables_set_every_field() {
        let c = BackupConfig::from_lookup(lookup(&[
            ("LITEFS_ORM_BACKUP_URL", "s3://bkt/app"),
            ("AWS_ENDPOINT_URL_S3", "https://fly.storage.tigris.dev"),
            ("LITEFS_ORM_BACKUP_REGION", "auto"),
            ("LITEFS_ORM_BACKUP_FORCE_PATH_STYLE", "false"),
            ("LITEFS_ORM_BACKUP_SYNC_INTERVAL_MS", "250"),
            ("LITEFS_ORM_BACKUP_TIMEOUT_MS", "2000"),
            ("LITEFS_ORM_BACKUP_DIR", "/var/lib/backup"),
            ("LITEFS_ORM_BACKUP_NEW_DATABASE", "1"),
            ("LITEFS_ORM_BACKUP_MAX_FAILURES", "3"),
            ("LITEFS_ORM_LITESTREAM", "/usr/local/bin/litestream"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            c.endpoint.as_deref(),
            Some("https://fly.storage.tigris.dev")
        );
        assert_eq!(c.region.as_deref(), Some("auto"));
        assert_eq!(c.force_path_style, Some(false));
        assert_eq!(c.sync_interval, Duration::from_millis(250));
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(
            c.state_dir(Path::new("/x/app.db")),
            Path::new("/var/lib/backup")
        );
        assert_eq!(c.litestream, Path::new("/usr/local/bin/litestream"));
        assert!(c.new_database);
        assert_eq!(c.max_failures, 3);
    }

    #[test]
    fn a_new_database_is_not_allowed_by_default() {
        let c = BackupConfig::from_lookup(lookup(&[("LITEFS_ORM_BACKUP_URL", "s3://bkt/app")]))
            .unwrap()
            .unwrap();
        assert!(!c.new_database);
    }

    #[test]
    fn the_location_names_the_endpoint() {
        let c = BackupConfig::new("s3://bkt/app").with_endpoint("http://127.0.0.1:9000");
        assert_eq!(
            c.location(),
            "s3://bkt/app (endpoint http://127.0.0.1:9000)"
        );
    }

    #[test]
    fn a_path_is_not_a_backup_url() {
        let err = BackupConfig::from_lookup(lookup(&[("LITEFS_ORM_BACKUP_URL", "/backups")]))
            .unwrap_err();
        assert!(err.to_string().contains("s3://bucket/path"), "{err}");
    }

    #[test]
    fn a_relative_file_url_is_refused() {
        let err = BackupConfig::new("file://backups").validate().unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn the_default_state_dir_differs_per_database() {
        let c = BackupConfig::new("file:///b");
        let a = c.state_dir(Path::new("/n1/app.db"));
        let b = c.state_dir(Path::new("/n2/app.db"));
        assert_ne!(a, b);
        assert!(a.starts_with(std::env::temp_dir()), "{}", a.display());
    }

    #[test]
    fn an_endpoint_turns_on_path_style_in_the_generated_yaml() {
        let yml = BackupConfig::new("s3://bkt/app")
            .with_endpoint("http://127.0.0.1:9000")
            .render(Path::new("/data/app.db"), Path::new("/state/meta"));
        assert!(yml.contains("  - path: \"/data/app.db\"\n"), "{yml}");
        assert!(yml.contains("    meta-path: \"/state/meta\"\n"), "{yml}");
        assert!(yml.contains("      url: \"s3://bkt/app\"\n"), "{yml}");
        assert!(
            yml.contains("      endpoint: \"http://127.0.0.1:9000\"\n"),
            "{yml}"
        );
        assert!(yml.contains("      force-path-style: true\n"), "{yml}");
        assert!(yml.contains("      sync-interval: 1000ms\n"), "{yml}");
        assert!(!yml.contains("access-key"), "{yml}");
    }
}
