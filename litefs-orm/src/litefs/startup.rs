//! What a node checks of LiteFS when it opens its database: that the mount is LiteFS's, and
//! that LiteFS's HTTP API answers — so that a mistake is an error at start that names the
//! variable, not a wait and a wrong diagnosis at the first write.

use std::path::Path;
use std::time::{Duration, Instant};

use super::files::{LAG_FILE, NodeInfo};
use crate::config::Config;
use crate::error::{Error, Result};

/// How often the mount is looked at while LiteFS is still mounting it.
const MOUNT_POLL: Duration = Duration::from_millis(50);

/// Checks the mount and, when configured, LiteFS's HTTP API; logs the role LiteFS gives.
pub(crate) async fn check(config: &Config, mount: &Path) -> Result<()> {
    check_mount(mount, config.primary_wait).await?;
    if let Some(url) = &config.litefs_http {
        let info = fetch_info(url).await?;
        tracing::info!(
            litefs_http = %url,
            is_primary = info.is_primary,
            primary = %info.primary.hostname,
            "LiteFS answers"
        );
    }
    Ok(())
}

/// The mount is a directory holding LiteFS's `.lag` file (every LiteFS node has one, primary
/// or replica). A directory that LiteFS is still mounting gets `wait` to become one.
async fn check_mount(mount: &Path, wait: Duration) -> Result<()> {
    match std::fs::metadata(mount) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Config(format!(
                "LITEFS_ORM_MOUNT {} is not a directory: give LiteFS's fuse.dir",
                mount.display()
            )));
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "LITEFS_ORM_MOUNT {}: {e}; give LiteFS's fuse.dir, and start the app once LiteFS has mounted it (under LiteFS's exec:)",
                mount.display()
            )));
        }
    }
    let since = Instant::now();
    while !mount.join(LAG_FILE).exists() {
        if since.elapsed() >= wait {
            return Err(Error::Config(format!(
                "LITEFS_ORM_MOUNT {} is not a LiteFS mount: it has no {LAG_FILE} file after {wait:?}; is LiteFS running with fuse.dir set to this directory?",
                mount.display()
            )));
        }
        tokio::time::sleep(MOUNT_POLL).await;
    }
    Ok(())
}

/// LiteFS's `/info` at `base`, or the error that names `LITEFS_ORM_LITEFS_HTTP`.
async fn fetch_info(base: &str) -> Result<NodeInfo> {
    super::role::fetch_info(&super::role::http_client(), base)
        .await
        .map_err(|e| {
            Error::Config(format!(
                "LITEFS_ORM_LITEFS_HTTP {base}: LiteFS's HTTP API does not answer /info ({e}); give LiteFS's http.addr, e.g. http://127.0.0.1:20202"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mount: &Path) -> Config {
        Config::litefs(mount, "app.db").with_primary_wait(Duration::from_millis(100))
    }

    #[tokio::test]
    async fn a_missing_mount_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let e = check(&config(&missing), &missing).await.unwrap_err();
        assert!(e.to_string().contains("LITEFS_ORM_MOUNT"), "{e}");
    }

    #[tokio::test]
    async fn a_plain_directory_is_not_a_litefs_mount() {
        let dir = tempfile::tempdir().unwrap();
        let e = check(&config(dir.path()), dir.path()).await.unwrap_err();
        assert!(e.to_string().contains("is not a LiteFS mount"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_litefs_api_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LAG_FILE), "+000000000\n").unwrap();
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = config(dir.path()).with_litefs_http(format!("http://127.0.0.1:{port}"));
        let e = check(&c, dir.path()).await.unwrap_err();
        assert!(e.to_string().contains("LITEFS_ORM_LITEFS_HTTP"), "{e}");
    }
}
