//! Schema migrations that run only on the LiteFS primary; replicas get the schema by replication.
//!
//! Every node of a LiteFS cluster starts the same binary, but only the primary may change
//! the schema. These functions wrap any sea-orm-migration [`MigratorTrait`] and check the
//! node's role first:
//!
//! | role | [`up`] | [`up`] with a wait, [`prepare`] | [`down`], [`fresh`], [`refresh`], [`reset`] |
//! |---|---|---|---|
//! | standalone, primary | applies | applies | runs |
//! | replica | changes nothing: [`Outcome::Skipped`], naming the primary | waits until the replicated migrations table has every migration of the binary ([`Outcome::Replicated`]), or fails with [`Error::SchemaWaitTimeout`](crate::Error::SchemaWaitTimeout) | refused: [`Error::NotPrimary`](crate::Error::NotPrimary) |
//! | no primary known | waits up to [`Config::primary_wait`](crate::Config::primary_wait) for one, then [`Error::NoPrimary`](crate::Error::NoPrimary) | waits for the schema, as a replica | refused |
//!
//! A replica that becomes primary while waiting applies the migrations itself. A replica
//! never opens its database for writing: the migrations table is read on a read-only
//! connection, never created there.
//!
//! Each migration runs as the migrator defines it (`MigrationTrait::use_transaction`; the
//! example schema commits each migration with its record). Run one migrator at a time on
//! the primary: the LiteFS `exec:` steps and the app's start-up call run one after the other.
//!
//! The migrator's own methods do the work (`up`, `down`, `fresh`, ...); nothing here
//! installs a tracing subscriber. The migrations CLI ([`cli`](crate::cli), feature `cli`)
//! is built on these functions.
//!
//! # At app start-up
//!
//! ```no_run
//! # use sea_orm_migration::prelude::*;
//! # struct Migrator;
//! # #[async_trait::async_trait]
//! # impl MigratorTrait for Migrator {
//! #     fn migrations() -> Vec<Box<dyn MigrationTrait>> { vec![] }
//! # }
//! # async fn start() -> litefs_orm::Result<()> {
//! use litefs_orm::{Config, Registry, ReplicatedDb, migrate};
//!
//! let db = ReplicatedDb::connect(Config::from_env()?, Registry::new()).await?;
//! // The primary applies; a replica waits (up to a minute) until the schema has arrived.
//! let report = migrate::prepare::<Migrator>(&db).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! # From a deploy step
//!
//! ```no_run
//! # use sea_orm_migration::prelude::*;
//! # struct Migrator;
//! # #[async_trait::async_trait]
//! # impl MigratorTrait for Migrator {
//! #     fn migrations() -> Vec<Box<dyn MigrationTrait>> { vec![] }
//! # }
//! # async fn deploy() -> litefs_orm::Result<()> {
//! use litefs_orm::Config;
//! use litefs_orm::migrate::{self, Outcome, Target, UpOptions};
//!
//! // A migrations-only handle: no RPC secret needed.
//! let target = Target::connect(Config::from_env()?).await?;
//! let report = migrate::up::<Migrator>(&target, UpOptions::default()).await?;
//! if let Outcome::Skipped { primary } = &report.outcome {
//!     println!("the primary, {primary}, runs migrations");
//! }
//! # Ok(()) }
//! ```

mod report;
mod run;
mod target;

use std::time::Duration;

use sea_orm_migration::MigratorTrait;

use crate::error::Result;

#[cfg(feature = "cli")]
pub(crate) use report::human;
pub use report::{Command, MigrationState, Outcome, Report, Status};
pub use target::Target;

/// How long [`prepare`] waits on a replica for the primary's migrations to replicate.
pub const DEFAULT_SCHEMA_WAIT: Duration = Duration::from_secs(60);

/// Options of [`up`].
///
/// ```
/// use std::time::Duration;
/// use litefs_orm::migrate::UpOptions;
/// let options = UpOptions::default().steps(1).wait(Duration::from_secs(30));
/// assert_eq!(options.wait, Some(Duration::from_secs(30)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpOptions {
    /// Apply only the first `steps` pending migrations. Default: `None`, all of them.
    /// Ignored on a replica, which waits for every migration.
    pub steps: Option<u32>,
    /// On a replica, wait up to this long for the schema instead of skipping. Default:
    /// `None`, skip.
    pub wait: Option<Duration>,
}

impl UpOptions {
    /// Sets [`steps`](Self::steps).
    pub fn steps(mut self, steps: u32) -> Self {
        self.steps = Some(steps);
        self
    }

    /// Sets [`wait`](Self::wait).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }
}

/// Applies pending migrations on the primary or standalone; on a replica skips them (the
/// report names the primary), or with [`UpOptions::wait`] waits until they have replicated.
///
/// With no primary known, waits up to [`Config::primary_wait`](crate::Config::primary_wait)
/// for one, then fails with [`Error::NoPrimary`](crate::Error::NoPrimary).
pub async fn up<M: MigratorTrait>(target: impl Into<Target>, options: UpOptions) -> Result<Report> {
    run::up::<M>(&target.into(), options.steps, options.wait).await
}

/// The one call an app makes at start: applies pending migrations on the primary or
/// standalone; on a replica waits up to [`DEFAULT_SCHEMA_WAIT`] until the schema has every
/// migration of the binary.
pub async fn prepare<M: MigratorTrait>(target: impl Into<Target>) -> Result<Report> {
    up::<M>(target, UpOptions::default().wait(DEFAULT_SCHEMA_WAIT)).await
}

/// Rolls back the last `steps` applied migrations (all with `None`); primary or standalone only.
pub async fn down<M: MigratorTrait>(
    target: impl Into<Target>,
    steps: Option<u32>,
) -> Result<Report> {
    run::destructive::<M>(&target.into(), Command::Down, steps).await
}

/// Drops every table, then applies every migration; primary or standalone only.
pub async fn fresh<M: MigratorTrait>(target: impl Into<Target>) -> Result<Report> {
    run::destructive::<M>(&target.into(), Command::Fresh, None).await
}

/// Rolls back every applied migration, then applies every migration; primary or standalone only.
pub async fn refresh<M: MigratorTrait>(target: impl Into<Target>) -> Result<Report> {
    run::destructive::<M>(&target.into(), Command::Refresh, None).await
}

/// Rolls back every applied migration and drops the migrations table; primary or standalone only.
pub async fn reset<M: MigratorTrait>(target: impl Into<Target>) -> Result<Report> {
    run::destructive::<M>(&target.into(), Command::Reset, None).await
}

/// Which migrations of the binary this node's database has, read without writing anything
/// (on any node).
pub async fn status<M: MigratorTrait>(target: impl Into<Target>) -> Result<Status> {
    run::status::<M>(&target.into()).await
}
