//! [`Target`]: one node's database and role, as the migration runner sees them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sea_orm::{DatabaseConnection, DbErr, SqlxSqliteConnector};
use tokio::sync::OnceCell;

use crate::config::Config;
use crate::db::ReplicatedDb;
use crate::error::{Error, Result};
use crate::litefs::role::{Role, RoleWatch};
use crate::litefs::{self, Pos};

/// Where migrations run: one node's database file and the node's LiteFS role.
///
/// Every function of [`migrate`](crate::migrate) takes anything that converts into a
/// `Target`: an app passes its [`ReplicatedDb`] (the target then shares its connections),
/// and the migrations CLI opens one with [`Target::connect`], which needs no RPC secret
/// since migrations are never forwarded. Cheap to clone.
///
/// Connections are opened on first use: the read-only one to read the migrations table,
/// the read-write one only where writes are local (primary or standalone), so a replica's
/// database is never opened for writing.
#[derive(Clone, Debug)]
pub struct Target {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    role: RoleWatch,
    reader: OnceCell<DatabaseConnection>,
    writer: OnceCell<DatabaseConnection>,
}

impl Target {
    /// Follows the node's role as `config` says (standalone without a mount) and prepares
    /// to open its database; no RPC secret is needed.
    ///
    /// Fails when the mount, or the directory of a standalone database, does not exist.
    ///
    /// ```no_run
    /// # async fn run() -> litefs_orm::Result<()> {
    /// use litefs_orm::{Config, migrate::Target};
    /// let target = Target::connect(Config::from_env()?).await?;
    /// println!("{} is {}", target.database().display(), target.role());
    /// # Ok(()) }
    /// ```
    pub async fn connect(config: Config) -> Result<Self> {
        let role = match &config.litefs_mount {
            Some(mount) => {
                if !mount.is_dir() {
                    return Err(Error::Config(format!(
                        "the LiteFS mount {} is not a directory: is LiteFS running, and is LITEFS_ORM_MOUNT (--mount) right?",
                        mount.display()
                    )));
                }
                RoleWatch::litefs(mount.clone(), config.litefs_http.clone()).await
            }
            None => {
                let path = config.db_path();
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                if let Some(dir) = dir.filter(|d| !d.is_dir()) {
                    return Err(Error::Config(format!(
                        "the directory {} of the database does not exist",
                        dir.display()
                    )));
                }
                RoleWatch::standalone()
            }
        };
        Ok(Target::from_parts(config, role, None, None))
    }

    fn from_parts(
        config: Config,
        role: RoleWatch,
        reader: Option<DatabaseConnection>,
        writer: Option<DatabaseConnection>,
    ) -> Self {
        Target {
            inner: Arc::new(Inner {
                config,
                role,
                reader: OnceCell::new_with(reader),
                writer: OnceCell::new_with(writer),
            }),
        }
    }

    /// The node's role as last seen.
    pub fn role(&self) -> Role {
        self.inner.role.current()
    }

    /// The role watcher.
    pub fn role_watch(&self) -> &RoleWatch {
        &self.inner.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.inner.config.db_path()
    }

    /// The local LiteFS position; `None` when standalone or when `-pos` cannot be read.
    pub fn position(&self) -> Option<Pos> {
        self.inner.config.litefs_mount.as_ref()?;
        litefs::read_pos(&litefs::pos_path(&self.database())).ok()
    }

    /// Milliseconds since the last contact with the primary, from `.lag`; `None` when
    /// standalone or when `.lag` is absent.
    pub fn lag_ms(&self) -> Option<i64> {
        let mount = self.inner.config.litefs_mount.as_ref()?;
        litefs::read_lag(&mount.join(litefs::LAG_FILE))
            .ok()
            .flatten()
    }

    /// The read-only connection, or `None` while the database file does not exist.
    pub(crate) async fn reader(&self) -> Result<Option<&DatabaseConnection>> {
        if let Some(conn) = self.inner.reader.get() {
            return Ok(Some(conn));
        }
        let path = self.database();
        if !path.exists() {
            return Ok(None);
        }
        let conn = self
            .inner
            .reader
            .get_or_try_init(|| open(&path, true))
            .await?;
        Ok(Some(conn))
    }

    /// The read-write connection, creating the database file if needed. Only called where
    /// writes are local.
    pub(crate) async fn writer(&self) -> Result<&DatabaseConnection> {
        let path = self.database();
        self.inner
            .writer
            .get_or_try_init(|| open(&path, false))
            .await
    }
}

impl From<&ReplicatedDb> for Target {
    fn from(db: &ReplicatedDb) -> Self {
        Target::from_parts(
            db.config().clone(),
            db.role_watch().clone(),
            Some(db.reader().clone()),
            Some(db.writer().clone()),
        )
    }
}

impl From<&Target> for Target {
    fn from(target: &Target) -> Self {
        target.clone()
    }
}

/// Opens one connection to `path`: read-only (`PRAGMA query_only`, never created) or
/// read-write (created if missing). The journal mode is left as the file has it.
async fn open(path: &Path, read_only: bool) -> Result<DatabaseConnection> {
    let mut options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(!read_only)
        .busy_timeout(Duration::from_secs(5));
    if read_only {
        options = options.pragma("query_only", "ON");
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .connect_with(options)
        .await
        .map_err(|e| Error::Database(DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(e)))))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_does_not_show_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::standalone(dir.path().join("app.db"))
            .with_rpc_secret("a long random shared secret");
        let target = Target::connect(config).await.unwrap();
        let shown = format!("{target:?}");
        assert!(!shown.contains("shared secret"), "{shown}");
    }
}
