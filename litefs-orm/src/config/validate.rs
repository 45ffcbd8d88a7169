//! The configuration checked as a whole, before anything is opened.

use std::time::Duration;

use super::Config;
use crate::error::{Error, Result};

impl Config {
    /// Checks the configuration as a whole; every mistake is an [`Error::Config`] that names
    /// the variable to fix. What needs the machine (the mount, LiteFS's API) is checked when
    /// the database is opened.
    ///
    /// ```
    /// use litefs_orm::Config;
    /// let err = Config::litefs("/litefs", "app.db")
    ///     .with_rpc_secret("a long random shared secret")
    ///     .with_primary_url("{primary}:8080")
    ///     .validate()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("LITEFS_ORM_PRIMARY_URL"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        // A secret, when there is one, is a real one: a standalone node that merges the
        // router must not accept writes signed with a guessable key.
        if let Some(secret) = &self.rpc_secret {
            crate::protocol::auth::Secret::new(secret)?;
        }
        for (variable, value) in [
            ("LITEFS_ORM_WRITE_TIMEOUT_MS", self.write_timeout),
            (
                "LITEFS_ORM_REPLICATION_TIMEOUT_MS",
                self.replication_timeout,
            ),
            ("LITEFS_ORM_PRIMARY_WAIT_MS", self.primary_wait),
            ("LITEFS_ORM_MAX_CLOCK_SKEW_MS", self.max_clock_skew),
            ("LITEFS_ORM_IDEMPOTENCY_WINDOW_MS", self.idempotency_window),
            ("LITEFS_ORM_DURABILITY_TIMEOUT_MS", self.durability_timeout),
        ] {
            if value.is_zero() || value > MAX_DURATION {
                return Err(Error::Config(format!(
                    "{variable} must be from 1 to {} milliseconds, got {}",
                    MAX_DURATION.as_millis(),
                    value.as_millis()
                )));
            }
        }
        if self.read_connections == 0 {
            return Err(Error::Config(
                "LITEFS_ORM_READ_CONNECTIONS (read_connections) must be at least 1".into(),
            ));
        }
        if self.max_body_bytes < MIN_BODY_BYTES {
            return Err(Error::Config(format!(
                "LITEFS_ORM_MAX_BODY_BYTES (max_body_bytes) must be at least {MIN_BODY_BYTES}, got {}",
                self.max_body_bytes
            )));
        }
        if let Some(mount) = &self.litefs_mount {
            self.validate_litefs(mount)?;
            if self.token_lifetime() < MIN_TOKEN_LIFETIME {
                return Err(Error::Config(format!(
                    "idempotency_window (LITEFS_ORM_IDEMPOTENCY_WINDOW_MS) is {:?}: a consistency \
                     token would be honoured for {:?}, under {MIN_TOKEN_LIFETIME:?}; the window must \
                     exceed write_timeout plus replication_timeout plus twice max_clock_skew \
                     ({:?}) by at least that, so that the record proving a token's commit outlives \
                     the token",
                    self.idempotency_window,
                    self.token_lifetime(),
                    self.write_timeout + self.replication_timeout + self.max_clock_skew * 2,
                )));
            }
        }
        let shortest = self.write_timeout * 2 + self.max_clock_skew;
        if self.idempotency_window < shortest {
            return Err(Error::Config(format!(
                "idempotency_window (LITEFS_ORM_IDEMPOTENCY_WINDOW_MS) is {:?}, shorter than twice \
                 write_timeout plus max_clock_skew ({shortest:?}): a retried write could be applied twice",
                self.idempotency_window
            )));
        }
        Ok(())
    }

    /// What a node on a LiteFS mount needs on top: a secret, URLs with a scheme, a database
    /// in the mount.
    fn validate_litefs(&self, mount: &std::path::Path) -> Result<()> {
        if self.rpc_secret.is_none() {
            return Err(Error::Config(format!(
                "a LiteFS node needs LITEFS_ORM_SECRET (at least {} characters, the same on every node) to sign forwarded writes",
                crate::protocol::auth::MIN_SECRET_LEN
            )));
        }
        let has_scheme = |url: &str| url.starts_with("http://") || url.starts_with("https://");
        for (host, url) in &self.primary_urls {
            if !has_scheme(url) {
                return Err(Error::Config(format!(
                    "LITEFS_ORM_PRIMARY_URLS: the URL of {host:?} must start with http:// or https://, got {url:?}"
                )));
            }
        }
        if !self.primary_url.contains("{primary}") {
            return Err(Error::Config(format!(
                "LITEFS_ORM_PRIMARY_URL {:?} must contain {{primary}}",
                self.primary_url
            )));
        }
        if !has_scheme(&self.primary_url) {
            return Err(Error::Config(format!(
                "LITEFS_ORM_PRIMARY_URL {:?} must start with http:// or https://",
                self.primary_url
            )));
        }
        if let Some(http) = &self.litefs_http
            && !has_scheme(http)
        {
            return Err(Error::Config(format!(
                "LITEFS_ORM_LITEFS_HTTP {http:?} must start with http:// or https:// (LiteFS's http.addr, e.g. http://127.0.0.1:20202)"
            )));
        }
        // LiteFS serves databases at the top of its mount only.
        let name = match self.database.strip_prefix(mount) {
            Ok(inside) => inside,
            Err(_) if self.database.is_absolute() => {
                return Err(Error::Config(format!(
                    "LITEFS_ORM_DATABASE {} is outside the LiteFS mount {} (LITEFS_ORM_MOUNT): give the database's file name in the mount",
                    self.database.display(),
                    mount.display()
                )));
            }
            Err(_) => self.database.as_path(),
        };
        let mut parts = name
            .components()
            .filter(|c| *c != std::path::Component::CurDir);
        let plain_file = matches!(
            (parts.next(), parts.next()),
            (Some(std::path::Component::Normal(_)), None)
        );
        if !plain_file {
            return Err(Error::Config(format!(
                "LITEFS_ORM_DATABASE {} must be a file name at the top of the LiteFS mount {} (LiteFS has no subdirectories)",
                self.database.display(),
                mount.display()
            )));
        }
        Ok(())
    }
}

/// Longest accepted timeout or window: a year. Longer ones overflow the clock arithmetic
/// they take part in, and are mistakes.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Shortest accepted consistency token lifetime ([`Config::token_lifetime`]).
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(1);

/// Smallest accepted body limit: a batch of one small call must fit.
const MIN_BODY_BYTES: usize = 1024;
